"""Rescaled classifier-free guidance (Lin et al. 2023) against its definition."""

from __future__ import annotations

import pytest
import torch

from bfn.sampling import guided_network_output, rescale_guided, sample


def test_rescaling_gives_each_image_the_conditional_spread() -> None:
    g = torch.Generator().manual_seed(0)
    cond = torch.randn(3, 1, 6, 6, generator=g)
    guided = 4 * torch.randn(3, 1, 6, 6, generator=g) + 1
    full = rescale_guided(guided, cond, 1.0)
    torch.testing.assert_close(full.std(dim=(1, 2, 3)), cond.std(dim=(1, 2, 3)))
    torch.testing.assert_close(rescale_guided(guided, cond, 0.0), guided)
    torch.testing.assert_close(rescale_guided(guided, cond, 0.25), 0.25 * full + 0.75 * guided)


def test_rescaled_guidance_in_the_sampler(model) -> None:
    """φ changes a guided run, never the unguided one; w = 1 has nothing to rescale."""
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    labels = torch.tensor([3, 5])
    with torch.no_grad():
        plain = guided_network_output(model, x, 0.5, labels, 3.0)
        rescaled = guided_network_output(model, x, 0.5, labels, 3.0, rescaled_phi=1.0)
        cond = guided_network_output(model, x, 0.5, labels, 1.0)
    torch.testing.assert_close(rescaled.std(dim=(1, 2, 3)), cond.std(dim=(1, 2, 3)))
    assert not torch.allclose(plain, rescaled)
    torch.testing.assert_close(guided_network_output(model, x, 0.5, labels, 1.0, rescaled_phi=1.0), cond)
    a = sample(model, [3, None], steps=4, guidance=3.0, seed=1, guidance_interval=(0, 1), rescaled_phi=0.7)
    b = sample(model, [3, None], steps=4, guidance=3.0, seed=1, guidance_interval=(0, 1))
    assert not torch.equal(a.output[0], b.output[0])
    torch.testing.assert_close(a.output[1], b.output[1])  # the unconditional image has c = u: nothing to rescale


@pytest.mark.parametrize("phi", [-0.1, 1.5, True, "0.5"])
def test_bad_rescaled_phi_is_rejected(model, phi) -> None:
    with pytest.raises(ValueError, match="rescaled_phi"):
        sample(model, [3], steps=2, guidance=2.0, rescaled_phi=phi)
