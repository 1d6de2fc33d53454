"""Widen a trained U-Net by a whole factor without changing what it computes (Chen et al. 2016, "Net2Net").

A larger network trained from scratch on this project's CPU takes sessions to catch up with the shipped one;
a wider copy of the shipped one starts level with it and only has to improve. Every channel of the source
becomes `factor` copies (new channel j copies old channel j // factor), so each layer's output is the source's
with every channel repeated. A layer reading repeated channels splits each old weight over the copies so that
the sum is unchanged, and adds to each copy's share noise that sums to zero over the copies: the output stays
exactly the source's (up to rounding), yet the copies' outgoing weights differ, so their gradients differ and
they learn apart (with equal shares the copies would stay equal for ever under Adam, whose steps ignore scale).

What keeps it exact, layer by layer:
- GroupNorm: with the same number of groups, each new group holds an old group's channels `factor` times, so
  its mean and variance are the old group's.
- Self-attention: each head's width grows `factor`-fold, so q·k does too, while `scaled_dot_product_attention`
  divides by √(head width) only; the queries are scaled by 1/√factor to keep the attention weights.
- The time embedding: the sinusoid at width `factor`·d holds every frequency of width d (old frequency k is
  new frequency factor·k), so the first time layer reads the old features where they now are and starts at
  zero on the frequencies the source never saw.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from bfn.nets import UNet, UNetConfig

SPLIT_NOISE = 0.1  # std of each copy's zero-sum share noise, relative to the std of the source weight it splits


def widened(source: UNet, factor: int, generator: torch.Generator | None = None) -> UNet:
    """A U-Net with `factor` times the channels of `source` that computes what `source` computes."""
    if not (isinstance(factor, int) and factor >= 1):
        raise ValueError(f"the widening factor must be a whole number ≥ 1, got {factor!r}")
    config = source.config
    target = UNet(UNetConfig.from_dict({**config.to_dict(), "channels": [c * factor for c in config.channels]}))
    with torch.no_grad():
        for name, old in source.named_modules():
            new = target.get_submodule(name)
            if isinstance(old, nn.GroupNorm) and old.num_groups != new.num_groups:
                raise ValueError(f"{name} has {old.num_channels} channels, fewer than the GroupNorm groups "
                                 f"({config.groups}): widening it would change its groups, and so its output")
            if old is source.time_mlp[0]:
                _place_time_features(old, new, factor)
            elif isinstance(old, (nn.Conv2d, nn.Linear)):
                _copy_layer(old, new, factor, generator, out_dim=0)
            elif isinstance(old, nn.ConvTranspose2d):  # its weight is (in, out, ...)
                _copy_layer(old, new, factor, generator, out_dim=1)
            elif isinstance(old, (nn.GroupNorm, nn.Embedding)):
                for param in ("weight", "bias"):
                    if getattr(old, param, None) is not None:
                        getattr(new, param).copy_(_repeat(getattr(old, param), getattr(new, param).shape, dims=(0, 1)))
        _keep_attention_weights(target, factor)
    return target


def _copy_layer(old: nn.Module, new: nn.Module, factor: int, generator: torch.Generator | None, out_dim: int) -> None:
    """Outputs repeated, inputs split over their copies (the weight's output dim is `out_dim`, its input dim the other
    of its first two)."""
    weight = _repeat(old.weight, new.weight.shape, dims=(out_dim,))
    new.weight.copy_(_split(weight, new.weight.shape, 1 - out_dim, factor, generator))
    if old.bias is not None:
        new.bias.copy_(_repeat(old.bias, new.bias.shape, dims=(0,)))


def _repeat(old: Tensor, shape: torch.Size, dims: tuple[int, ...]) -> Tensor:
    """`old` with each index along every widened dim among `dims` repeated (new index j reads old j // factor)."""
    out = old
    for dim in dims:
        if dim < old.dim() and shape[dim] != old.shape[dim]:
            out = out.repeat_interleave(shape[dim] // old.shape[dim], dim=dim)
    return out


def _split(weight: Tensor, shape: torch.Size, dim: int, factor: int, generator: torch.Generator | None) -> Tensor:
    """Along the input dim `dim`, repeat each old weight over its copies as 1/factor of it plus zero-sum noise."""
    old_size = weight.shape[dim]
    if shape[dim] == old_size:
        return weight
    copies = weight.repeat_interleave(factor, dim=dim) / factor
    noise = torch.randn(copies.shape, generator=generator) * SPLIT_NOISE * weight.std().clamp_min(1e-12)
    grouped = noise.unflatten(dim, (old_size, factor))
    noise = (grouped - grouped.mean(dim=dim + 1, keepdim=True)).flatten(dim, dim + 1)
    return copies + noise


def _place_time_features(old: nn.Linear, new: nn.Linear, factor: int) -> None:
    """The first time layer reads sinusoid features, not channels: old sin/cos k sit at new sin/cos factor·k."""
    half = old.in_features // 2
    columns = torch.arange(half) * factor
    rows = _repeat(old.weight, torch.Size((new.weight.shape[0], old.weight.shape[1])), dims=(0,))
    new.weight.zero_()
    new.weight[:, columns] = rows[:, :half]
    new.weight[:, columns + half * factor] = rows[:, half:]
    new.bias.copy_(_repeat(old.bias, new.bias.shape, dims=(0,)))


def _keep_attention_weights(target: UNet, factor: int) -> None:
    """Scale each query by 1/√factor: q·k over a head `factor` times as wide is `factor` times as large."""
    qkv = getattr(target.mid_attn, "qkv", None)
    if qkv is None:  # no attention
        return
    width = qkv.out_channels // 3
    qkv.weight[:width] /= math.sqrt(factor)
    qkv.bias[:width] /= math.sqrt(factor)
