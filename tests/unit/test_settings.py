"""A model's recommended sampling settings travel in its config.json, and the CLI samples with them."""

from __future__ import annotations

import numpy as np
import pytest

from bfn.hub import load_model
from bfn.model import BFNModel
from bfn.cli.sample import main
from bfn.sampling import guidance_interval_for, sample
from bfn.settings import SamplingSettings
from tests.support.models import TINY_UNET

RECOMMENDED = {"sampler": "bfn", "steps": 7, "guidance": 2.5, "guidance_interval": [0.2, 0.4], "rescaled_phi": 0.5,
               "autoguidance": 1.0, "autoguidance_unconditional": 1.0, "autoguidance_interval": None, "few_steps_sampler": "ode2", "few_steps_below": 5}


def test_settings_are_saved_loaded_and_used_by_the_cli(tmp_path) -> None:
    BFNModel("discrete", {}, TINY_UNET, sampling=RECOMMENDED).save_pretrained(tmp_path / "m")
    model = load_model(tmp_path / "m")
    assert model.sampling.to_dict() == RECOMMENDED
    assert guidance_interval_for(model) == (0.2, 0.4) and guidance_interval_for(model, (0, 1)) == (0, 1)
    assert model.sampling.sampler_for(4) == "ode2" and model.sampling.sampler_for(5) == "bfn"
    npz = tmp_path / "s.npz"
    assert main(["--model", str(tmp_path / "m"), "--digits", "3", "none", "--seed", "2", "--out", str(tmp_path / "g.png"),
                 "--npz", str(npz)]) == 0
    expected = sample(model, [3, None], sampler="bfn", steps=7, guidance=2.5, rescaled_phi=0.5, seed=2)
    with np.load(npz) as archive:
        np.testing.assert_allclose(archive["images"], expected.output.numpy(), atol=1e-6)


def test_a_config_without_settings_gets_the_defaults() -> None:
    model = BFNModel("continuous", {}, TINY_UNET)
    assert model.sampling == SamplingSettings()
    assert guidance_interval_for(model) == model.flow.default_guidance_interval


@pytest.mark.parametrize("bad", [{"sampler": "nope"}, {"steps": 0}, {"guidance": float("nan")}, {"rescaled_phi": 2},
                                 {"guidance_interval": [0.5, 0.2]}, {"few_steps_below": 2.5}, {"colour": "red"}])
def test_bad_settings_are_refused_naming_the_field(bad: dict) -> None:
    field = next(iter(bad))
    with pytest.raises(ValueError, match=field):
        SamplingSettings.from_dict(bad)
