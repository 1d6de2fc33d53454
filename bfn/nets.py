"""A small class-conditional U-Net for MNIST-sized images (28×28 by default; the size is configuration).

The network maps the input-distribution parameters (as image channels), the time t and a class label to the
raw output the flow turns into an output distribution (logits for discrete data; for continuous data
the noise ε̂ or a preconditioned output, `bfn.continuous`).
Label `num_labels` (10 for MNIST) is the learned "no class" label used for classifier-free guidance.

It is deliberately small: the demo samples 10 digits × 100 steps with guidance on a 2-core CPU, so every
layer at full 28×28 resolution costs real milliseconds. Sizes are configuration (`UNetConfig`).

For binary data the output logit can include each pixel's own log-odds log(θ/(1 − θ)) through a learned,
time-dependent gate (`evidence`). As θ starts at ½, those log-odds are exactly the summed evidence of the
sender samples about that pixel (the update θ' ∝ e^y θ of eq. 171 adds y), so the ideal logit is them plus what
the rest of the image says; passing them through a 4×4-patch network's narrow head is what such a network
does worst.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MAX_PARAMETERS = 50_000_000  # far above any MNIST model here: a config beyond it is a typo, not a network


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the U-Net; stored in each model's config.json."""

    in_channels: int = 1
    out_channels: int = 1
    channels: tuple[int, ...] = (32, 64)  # one entry per resolution, halving each time
    patch: int = 2  # pixels per side folded into channels before the first layer (2: work at 14×14)
    res_blocks: int = 1  # residual blocks per resolution on the way down (one more on the way up)
    attention: bool = True  # self-attention at the lowest resolution
    num_labels: int = 10  # class labels; label `num_labels` means "no class"
    dropout: float = 0.0
    groups: int = 8  # GroupNorm groups
    evidence: bool = False  # binary data: add a learned, time-dependent multiple of the input's log-odds
    image_size: tuple[int, int] = (28, 28)  # (height, width) of the images the network is built for

    def __post_init__(self) -> None:
        """Refuse what would fail later, deep inside a layer or at the first forward pass, naming the field.

        A config.json is user input: a wrong one must not get as far as an IndexError or a shape mismatch.
        """
        if not (isinstance(self.channels, (list, tuple)) and self.channels and all(_whole(c) for c in self.channels)):
            raise ValueError(f"channels must be a non-empty list of positive integers, got {self.channels!r}")
        object.__setattr__(self, "channels", tuple(self.channels))
        for name in ("in_channels", "out_channels", "patch", "num_labels", "groups"):
            if not _whole(getattr(self, name)):
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not _whole(self.res_blocks, low=0):
            raise ValueError(f"res_blocks must be a non-negative integer, got {self.res_blocks!r}")
        if isinstance(self.dropout, bool) or not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        size = self.image_size
        if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(_whole(n) for n in size)):
            raise ValueError(f"image_size must be [height, width], two positive integers, got {size!r}")
        object.__setattr__(self, "image_size", tuple(size))
        for name in ("attention", "evidence"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if any(n % (self.patch * 2 ** (len(self.channels) - 1)) for n in size):  # the way up must undo each halving
            raise ValueError(
                f"patch {self.patch} with {len(self.channels)} resolutions (entries of channels) does not fit "
                f"{size[0]}×{size[1]} images: each side must divide by the patch, then halve evenly at each "
                "resolution"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"no U-Net field {', '.join(unknown)}")
        return cls(**d)


def _whole(value: object, low: int = 1) -> bool:
    """An int (not a bool, which JSON's true would be) of at least `low`."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def check_network(config: UNetConfig) -> None:
    """Build the network on the meta device, which allocates nothing, and run it once on a blank image.

    A config asking for billions of weights is so refused before anything allocates them, and one whose layers
    do not fit together (channels a GroupNorm cannot split, an odd embedding width, ...) before it fails at the
    first sampling step.
    """
    with torch.device("meta"):
        image = torch.zeros(1, config.in_channels, *config.image_size)
        try:
            net = UNet(config)
            net(image, torch.zeros(1), torch.zeros(1, dtype=torch.long))
        except (ValueError, RuntimeError) as e:
            why = " ".join(str(e).split())
            raise ValueError(f"channels {list(config.channels)} with groups {config.groups} make no network that runs "
                             f"({why})") from None
    count = sum(p.numel() for p in net.parameters())
    if count > MAX_PARAMETERS:
        raise ValueError(f"channels {list(config.channels)} make {count:,} parameters, over the limit of {MAX_PARAMETERS:,}")


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal features of t ∈ [0, 1] at geometrically spaced frequencies (as in Transformers)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000 * t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class ResBlock(nn.Module):
    """Two 3×3 convolutions with a conditioning scale and shift in between."""

    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(min(groups, cout), cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention over pixels; used only at the lowest resolution, where it is cheap and
    sees the whole image."""

    def __init__(self, channels: int, groups: int, heads: int = 4):
        super().__init__()
        self.norm = nn.GroupNorm(min(groups, channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        self.heads = heads

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """Class- and time-conditional U-Net: (B, in, H, W), t (B,), labels (B,) → (B, out, H, W), (H, W) = image_size."""

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = config
        ch = config.channels
        emb_dim = 4 * ch[0]
        self.time_mlp = nn.Sequential(nn.Linear(ch[0], emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_emb = nn.Embedding(config.num_labels + 1, emb_dim)
        self.stem = nn.Conv2d(config.in_channels * config.patch**2, ch[0], 3, padding=1)

        block = lambda cin, cout: ResBlock(cin, cout, emb_dim, config.groups, config.dropout)  # noqa: E731
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips = [ch[0]]
        cin = ch[0]
        for level, cout in enumerate(ch):
            blocks = nn.ModuleList()
            for _ in range(config.res_blocks):
                blocks.append(block(cin, cout))
                cin = cout
                skips.append(cin)
            self.down.append(blocks)
            if level < len(ch) - 1:
                self.downsample.append(nn.Conv2d(cin, cin, 3, stride=2, padding=1))
                skips.append(cin)
        self.mid = block(cin, cin)
        self.mid_attn = SelfAttention(cin, config.groups) if config.attention else nn.Identity()
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level, cout in reversed(list(enumerate(ch))):
            blocks = nn.ModuleList()
            for _ in range(config.res_blocks + 1):
                blocks.append(block(cin + skips.pop(), cout))
                cin = cout
            self.up.append(blocks)
            if level > 0:
                self.upsample.append(nn.ConvTranspose2d(cin, cin, 4, stride=2, padding=1))
        self.head = nn.Sequential(nn.GroupNorm(min(config.groups, cin), cin), nn.SiLU(), nn.Conv2d(cin, config.out_channels * config.patch**2, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        if config.evidence and not config.in_channels == config.out_channels == 1:
            raise ValueError("evidence=True is for binary data: one input channel (2θ − 1) and one output logit")
        # The evidence gate starts at zero, so the skip can be added to a trained network without changing it.
        self.evidence = nn.Linear(emb_dim, 1) if config.evidence else None
        if self.evidence is not None:
            nn.init.zeros_(self.evidence.weight)
            nn.init.zeros_(self.evidence.bias)

    def forward(self, x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.config.channels[0])) + self.label_emb(labels)
        h = self.stem(F.pixel_unshuffle(x, self.config.patch))
        hs = [h]
        for level, blocks in enumerate(self.down):
            for blk in blocks:
                h = blk(h, emb)
                hs.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
                hs.append(h)
        h = self.mid_attn(self.mid(h, emb))
        for level, blocks in enumerate(self.up):
            for blk in blocks:
                h = blk(torch.cat([h, hs.pop()], dim=1), emb)
            if level < len(self.upsample):
                h = self.upsample[level](h)
        out = F.pixel_shuffle(self.head(h), self.config.patch)
        if self.evidence is not None:
            out = out + self.evidence(emb)[:, :, None, None] * 2 * torch.atanh(x.clamp(-1 + 1e-6, 1 - 1e-6))
        return out
