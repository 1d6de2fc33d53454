"""The U-Net's evidence skip: what it adds is exactly each pixel's own log-odds, and only where that means something."""

from __future__ import annotations

import pytest
import torch

from bfn.model import BFNModel, ConfigError


def test_evidence_skip_at_gate_one_returns_the_input_distribution():
    """A fresh network outputs zero logits (its head starts at zero), so with the gate fixed at 1 the output
    distribution is p_O(on) = sigmoid(log-odds of θ) = θ: the skip carries the pixel's evidence unchanged."""
    model = BFNModel("discrete", unet={"channels": [8], "patch": 4, "groups": 4, "evidence": True}).eval()
    with torch.no_grad():
        model.net.evidence.bias.fill_(1.0)
    flow = model.flow
    theta = flow.bayesian_flow(torch.randint(0, 2, (3, 1, 28, 28)), torch.tensor([0.2, 0.6, 1.0]), torch.Generator().manual_seed(0))
    t = torch.tensor([0.2, 0.6, 1.0])
    with torch.no_grad():
        output = flow.output(model(flow.network_input(theta), t, torch.tensor([1, 5, 10])), theta, t)
    torch.testing.assert_close(output[..., 1], theta[..., 1], rtol=0, atol=2e-5)
    assert (theta[..., 1] - 0.5).abs().max() > 0.3  # θ is far from uniform, so the check has teeth


def test_evidence_skip_is_refused_where_it_means_nothing():
    with pytest.raises(ValueError, match="binary data"):
        BFNModel("continuous", unet={"channels": [8], "groups": 4, "evidence": True})
    with pytest.raises(ValueError, match="binary data"):
        BFNModel("discrete", flow={"num_classes": 4}, unet={"channels": [8], "groups": 4, "evidence": True})


@pytest.mark.parametrize(("unet", "reason"), [
    ({"channels": []}, "channels must be a non-empty list"),
    ({"channels": [8, 16], "groups": 0}, "groups must be a positive integer"),
    ({"channels": [8, 16], "dropout": 1.5}, "dropout must be a number in"),
    ({"channels": [20000, 20000]}, "channels \\[20000, 20000\\] make .* parameters, over the limit of 50,000,000"),
])
def test_invalid_architectures_are_refused_when_the_model_is_made(unet, reason):
    """Training builds its model from the same fields a config.json holds, so it gets the same checks."""
    with pytest.raises(ConfigError, match=f"unet: {reason}"):
        BFNModel("discrete", unet=unet)
