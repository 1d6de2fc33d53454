"""Autoguidance (Karras et al. 2024): a model guided by a weaker model of itself, its guide."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from bfn.hub import GUIDE_FOLDER, ModelLoadError, load_model
from bfn.model import BFNModel, ConfigError
from bfn.cli.sample import main as sample_main
from bfn.sampling import autoguided, get_sampler, guided_network_output, sample
from bfn.settings import SamplingSettings
from tests.support.models import make_tiny_model


@pytest.fixture(params=["discrete", "continuous"])
def guided(request: pytest.FixtureRequest) -> BFNModel:
    """A tiny model with a guide: another tiny model of the same flow and labels, other weights."""
    model = make_tiny_model(request.param)
    model.attach_guide(make_tiny_model(request.param, seed=1))
    return model


def test_autoguided_is_bad_plus_w_times_good_minus_bad() -> None:
    g = torch.Generator().manual_seed(0)
    good, bad = torch.randn(2, 3, 1, 4, 4, generator=g)
    assert autoguided(good, bad, 1.0) is good
    torch.testing.assert_close(autoguided(good, bad, 2.5), bad + 2.5 * (good - bad))
    torch.testing.assert_close(autoguided(good, bad, 3.0), 3 * good - 2 * bad)


def test_weight_one_is_exactly_the_plain_model(guided: BFNModel) -> None:
    """w = 1 never calls the guide: the run equals, bit for bit, the model's own run without a guide."""
    plain = make_tiny_model(guided.kind)
    for sampler in ("bfn", "solver"):
        a = sample(guided, [3, None], sampler=sampler, steps=5, guidance=2.0, seed=4, autoguidance=1.0)
        b = sample(plain, [3, None], sampler=sampler, steps=5, guidance=2.0, seed=4)
        assert torch.equal(a.sample, b.sample) and torch.equal(a.output, b.output)


def test_combined_with_guidance_it_guides_the_guided_output(guided: BFNModel) -> None:
    """With classifier-free guidance w and autoguidance a, the raw output is g + a (u + w (c − u) − g)."""
    labels, weight, auto = torch.tensor([3, 10]), 2.0, 1.7
    first = next(iter(get_sampler("bfn")(guided, [3, None], steps=4, guidance=weight, seed=0,
                                         guidance_interval=(0, 1), autoguidance=auto)))
    flow = guided.flow
    theta = flow.prior((2, *guided.data_shape), "cpu")
    net_input, times = flow.network_input(theta), torch.zeros(2)
    with torch.no_grad():
        cfg = guided_network_output(guided, net_input, 0.0, labels, weight)
        bad = guided.guide(net_input, times, labels)
    expected = flow.output_view(flow.output(bad + auto * (cfg - bad), theta, times))[:, 0]
    torch.testing.assert_close(first.output, expected)
    assert first.autoguidance == auto and first.guidance == weight


def test_it_acts_only_inside_its_interval(guided: BFNModel) -> None:
    states = list(get_sampler("bfn")(guided, [None, 2], steps=4, seed=0, autoguidance=3.0,
                                     autoguidance_interval=(0.4, 0.6)))
    assert [s.autoguidance for s in states] == [1.0, 1.0, 3.0, 1.0, 1.0]  # t = 0, 0.25, 0.5, 0.75, 1
    plain = list(get_sampler("bfn")(guided, [None, 2], steps=4, seed=0))
    assert torch.equal(states[1].output, plain[1].output) and not torch.equal(states[2].output, plain[2].output)


def test_it_changes_unconditional_samples(guided: BFNModel) -> None:
    a = sample(guided, [None], steps=4, seed=0, autoguidance=2.0)
    b = sample(guided, [None], steps=4, seed=0)
    assert not torch.equal(a.output, b.output)


@pytest.mark.parametrize("value", [0.5, float("nan"), True, "2"])
def test_bad_weights_are_refused(guided: BFNModel, value) -> None:
    with pytest.raises(ValueError, match="autoguidance must be"):
        sample(guided, [3], steps=2, autoguidance=value)


def test_bad_interval_is_refused(guided: BFNModel) -> None:
    with pytest.raises(ValueError, match="autoguidance_interval"):
        sample(guided, [3], steps=2, autoguidance=2.0, autoguidance_interval=(0.8, 0.2))


def test_a_model_without_a_guide_says_so(discrete_model: BFNModel) -> None:
    with pytest.raises(ValueError, match="guide"):
        sample(discrete_model, [3], steps=2, autoguidance=2.0)


def test_a_guide_must_share_flow_labels_and_size() -> None:
    model = make_tiny_model("discrete")
    with pytest.raises(ConfigError, match="flow"):
        model.attach_guide(make_tiny_model("continuous"))
    with pytest.raises(ConfigError, match="flow"):
        model.attach_guide(BFNModel("discrete", flow={"beta1": 9.0}, unet={"channels": [8], "groups": 2}))
    with pytest.raises(ConfigError, match="labels"):
        model.attach_guide(make_tiny_model("discrete", unet={"num_labels": 3}, labels=["a", "b", "c"]))
    assert model.guide is None
    guide = make_tiny_model("discrete", seed=2)
    model.attach_guide(guide)
    assert model.guide is guide
    assert not any(k.startswith("_guide") for k in model.state_dict())  # its weights stay in its own folder


def test_settings_round_trip_and_checks() -> None:
    s = SamplingSettings(autoguidance=2.0, autoguidance_unconditional=3.0, autoguidance_interval=[0.1, 0.9])
    assert SamplingSettings.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert s.autoguidance_interval == (0.1, 0.9)
    assert s.autoguidance_for([None, None]) == 3.0 and s.autoguidance_for([None, 4]) == 2.0 and s.autoguidance_for([4]) == 2.0
    with pytest.raises(ValueError, match="sampling.autoguidance must"):
        SamplingSettings(autoguidance=0.5)
    with pytest.raises(ValueError, match="sampling.autoguidance_unconditional must"):
        SamplingSettings(autoguidance_unconditional=float("inf"))
    with pytest.raises(ValueError, match="sampling.autoguidance_interval"):
        SamplingSettings(autoguidance_interval=[0.5, 0.1])


def _save_guided(tmp_path, kind: str = "discrete", **sampling):
    model = make_tiny_model(kind)
    model.sampling = dataclasses.replace(model.sampling, **sampling)
    model._hub_mixin_config["sampling"] = model.sampling.to_dict()
    model.save_pretrained(tmp_path / "m")
    make_tiny_model(kind, seed=1).save_pretrained(tmp_path / "m" / GUIDE_FOLDER)
    return tmp_path / "m"


def test_the_guide_travels_in_the_model_folder(tmp_path) -> None:
    folder = _save_guided(tmp_path)
    model = load_model(folder)
    assert model.guide is not None
    expected = make_tiny_model("discrete", seed=1)
    for name, value in expected.state_dict().items():
        torch.testing.assert_close(model.guide.state_dict()[name], value)
    (folder / GUIDE_FOLDER / "config.json").write_text(json.dumps({"kind": "continuous", "unet": {"channels": [8], "groups": 2}}))
    with pytest.raises(ModelLoadError, match="guide"):
        load_model(folder)


def test_the_cli_uses_the_recommended_autoguidance(tmp_path, capsys) -> None:
    """The recommended weight of runs with a label, and of runs without, unless --autoguidance says otherwise."""
    folder = _save_guided(tmp_path, autoguidance=2.0, autoguidance_unconditional=3.0, autoguidance_interval=[0.0, 0.5])

    def images(digits: list[str], *extra: str) -> torch.Tensor:
        path = tmp_path / "s.npz"
        assert sample_main(["--model", str(folder), "--digits", *digits, "--steps", "4", "--out", str(tmp_path / "s.png"),
                            "--npz", str(path), *extra]) == 0
        return torch.from_numpy(np.load(path)["images"])

    within = ["--autoguidance-interval", "0", "0.5"]
    for digits, weight in ((["3", "none"], "2"), (["none", "none"], "3")):
        recommended = images(digits)
        assert torch.equal(recommended, images(digits, "--autoguidance", weight, *within))
        assert not torch.equal(recommended, images(digits, "--autoguidance", "1"))
        assert not torch.equal(recommended, images(digits, "--autoguidance", "2.5", *within))
    (folder / GUIDE_FOLDER / "model.safetensors").unlink()
    with pytest.raises(SystemExit) as e:
        sample_main(["--model", str(folder), "--steps", "4", "--out", str(tmp_path / "x.png")])
    assert e.value.code == 2 and "guide" in capsys.readouterr().err
