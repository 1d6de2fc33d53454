"""A widened U-Net computes what its source computes, and its copies of a channel learn apart."""

from __future__ import annotations

import pytest
import torch

import bfn.widening
from bfn.nets import UNet, UNetConfig
from bfn.widening import widened

SHAPES = {
    "one resolution, attention, evidence (the shipped shape)": UNetConfig(channels=(16,), patch=4, evidence=True),
    "two resolutions (down- and upsampling)": UNetConfig(channels=(8, 16), patch=2, groups=4),
    "no attention, two residual blocks": UNetConfig(channels=(8,), patch=4, attention=False, res_blocks=2, groups=4),
}


def trained_looking(config: UNetConfig) -> UNet:
    """A network with every weight away from its initial value (the head starts at zero, which would hide errors)."""
    torch.manual_seed(0)
    net = UNet(config)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return net


def inputs(n: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 28, 28, generator=g) * 2 - 1, torch.rand(n, generator=g), torch.randint(0, 11, (n,), generator=g)


@pytest.mark.parametrize("factor", [2, 3])
@pytest.mark.parametrize("shape", SHAPES)
def test_a_widened_network_computes_what_its_source_computes(shape, factor):
    source = trained_looking(SHAPES[shape])
    wide = widened(source, factor, torch.Generator().manual_seed(0))
    assert wide.config.channels == tuple(c * factor for c in source.config.channels)
    assert sum(p.numel() for p in wide.parameters()) > 2 * sum(p.numel() for p in source.parameters())
    with torch.no_grad():
        expected = source(*inputs())
        torch.testing.assert_close(wide(*inputs()), expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_widening_by_one_keeps_every_weight():
    source = trained_looking(SHAPES["two resolutions (down- and upsampling)"])
    same = widened(source, 1)
    for (name, a), (_, b) in zip(source.state_dict().items(), same.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def copies_after_a_step(source: UNet) -> tuple[torch.Tensor, torch.Tensor]:
    """The stem's weights for channel 0 and for its copy, after one Adam step on the widened network."""
    wide = widened(source, 2, torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(wide.parameters(), lr=1e-2)
    wide(*inputs()).square().mean().backward()
    optimizer.step()
    return wide.stem.weight[0], wide.stem.weight[1]


def test_the_copies_of_a_channel_learn_apart_and_would_not_with_even_shares(monkeypatch):
    source = trained_looking(SHAPES["one resolution, attention, evidence (the shipped shape)"])
    first, copy = copies_after_a_step(source)
    assert (first - copy).abs().max() > 1e-3
    # Without the zero-sum noise both copies read the same outgoing weights: Adam moves them alike for ever.
    monkeypatch.setattr(bfn.widening, "SPLIT_NOISE", 0.0)
    first, copy = copies_after_a_step(source)
    torch.testing.assert_close(first, copy)


def test_a_factor_or_a_network_that_cannot_widen_is_refused():
    source = trained_looking(SHAPES["two resolutions (down- and upsampling)"])
    for factor in (0, 1.5, -2):
        with pytest.raises(ValueError, match="whole number"):
            widened(source, factor)
    narrow = UNet(UNetConfig(channels=(4,), patch=4, groups=8))  # GroupNorm(min(8, 4)): 4 groups, 8 once doubled
    with pytest.raises(ValueError, match="fewer than the GroupNorm groups"):
        widened(narrow, 2)
