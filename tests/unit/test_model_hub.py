"""Saving and loading: the Hub mixin round trip, `load_model` from folders and the HF cache, and its refusals.

All offline: the Hub is switched off (HF_HUB_OFFLINE) or `hf_hub_download` replaced.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants
from safetensors.torch import load_file, save_file

import bfn.hub
from bfn.hub import WEIGHTS_DIR, ModelLoadError, load_model, resolve_folder
from bfn.model import BFNModel
from bfn.sampling import bfn_sampler

REPO_ID = "someone/tiny-bfn"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def network_outputs(model: BFNModel) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, model.net.config.in_channels, 28, 28, generator=gen) * 2 - 1
    with torch.inference_mode():
        return model(x, torch.tensor([0.0, 0.4, 0.9]), torch.tensor([2, 7, model.num_labels]))


@pytest.fixture
def saved(model: BFNModel, tmp_path: Path) -> Path:
    """The tiny model of each kind, as `save_pretrained` writes it."""
    folder = tmp_path / model.kind
    model.save_pretrained(folder)
    return folder


def variant(saved: Path, tmp_path: Path, name: str) -> Path:
    """A copy of the saved folder to break in some way."""
    return Path(shutil.copytree(saved, tmp_path / name))


def test_save_and_from_pretrained_round_trip(model: BFNModel, saved: Path) -> None:
    config = json.loads((saved / "config.json").read_text())
    assert config["kind"] == model.kind
    assert config["flow"] == dataclasses.asdict(model.flow)  # every hyperparameter, defaults included
    assert config["unet"]["channels"] == [8, 16]
    loaded = BFNModel.from_pretrained(saved)
    assert loaded.flow == model.flow
    torch.testing.assert_close(network_outputs(loaded), network_outputs(model), rtol=0, atol=0)


def test_load_model_from_a_local_folder(model: BFNModel, saved: Path) -> None:
    loaded = load_model(saved, kind=model.kind)
    assert loaded.kind == model.kind and not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    assert loaded.net.stem.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(network_outputs(loaded), network_outputs(model), rtol=1e-5, atol=1e-5)
    assert load_model(str(saved)).kind == model.kind  # a str path works too


def test_channels_last_does_not_change_what_the_sampler_yields(model: BFNModel, saved: Path) -> None:
    loaded = load_model(saved)
    pairs = zip(
        bfn_sampler(loaded, [1, None], steps=3, guidance=2.0), bfn_sampler(model, [1, None], steps=3, guidance=2.0)
    )
    for a, b in pairs:
        assert a.theta.shape == b.theta.shape and a.output.shape == b.output.shape
        assert (a.sample is None) == (b.sample is None)
        torch.testing.assert_close(a.theta, b.theta, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(a.output, b.output, rtol=1e-4, atol=1e-4)


def test_default_source_is_the_repositorys_weights_folder() -> None:
    assert WEIGHTS_DIR == Path(__file__).resolve().parents[2] / "weights"
    assert resolve_folder(None, "continuous") == WEIGHTS_DIR / "continuous"
    assert resolve_folder(None, None) == WEIGHTS_DIR / "discrete"


def test_wrong_kind_is_refused(saved: Path, model: BFNModel) -> None:
    other = "continuous" if model.kind == "discrete" else "discrete"
    with pytest.raises(ModelLoadError, match=f"{model.kind} model, but a {other} model"):
        load_model(saved, kind=other)
    with pytest.raises(ValueError, match="unknown model kind"):
        load_model(saved, kind="gaussian")


@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HF cache with the Hub switched off, as with HF_HUB_OFFLINE=1 and HF_HUB_CACHE=<dir>.

    huggingface_hub reads both variables once at import, so the constants themselves are patched.
    """
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def fill_cache(cache: Path, repo_id: str, files: list[Path]) -> None:
    """The layout hf_hub_download reads: models--owner--name/{refs/main, snapshots/<commit>/<file>}."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for f in files:
        shutil.copy(f, snapshot / f.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)


def test_load_model_from_a_repo_id_in_the_offline_cache(model: BFNModel, saved: Path, offline_cache: Path) -> None:
    fill_cache(offline_cache, REPO_ID, [saved / "config.json", saved / "model.safetensors"])
    loaded = load_model(REPO_ID, kind=model.kind)
    torch.testing.assert_close(network_outputs(loaded), network_outputs(model), rtol=1e-5, atol=1e-5)


def test_uncached_repo_offline_says_the_hub_was_not_asked(offline_cache: Path) -> None:
    with pytest.raises(ModelLoadError, match=f"{REPO_ID}: no such folder, and config.json of Hub repo {REPO_ID} is not in "
                       "the Hugging Face cache \\(HF_HUB_OFFLINE is set, so the Hub was not asked\\)") as err:
        load_model(REPO_ID)
    assert "check your connection" not in str(err.value)  # not the Hub client's advice, as nothing was fetched
    assert "pass a Hugging Face Hub repo id" not in str(err.value)  # one was passed


def test_cached_repo_without_weights_is_a_load_error(saved: Path, offline_cache: Path) -> None:
    fill_cache(offline_cache, REPO_ID, [saved / "config.json"])
    with pytest.raises(ModelLoadError, match=REPO_ID):
        load_model(REPO_ID)


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    with pytest.raises(ModelLoadError, match=f"{missing}: no such folder; model folders in {WEIGHTS_DIR}: continuous, discrete"):
        load_model(missing)


@pytest.fixture
def no_hub(discrete_model: BFNModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Online mode with an empty cache, in a folder holding weights/good/ (a model) and weights/classifier/ (not
    one); `hf_hub_download` records its calls and fails as an unknown repo would."""
    calls: list[str] = []

    def download(repo_id: str, filename: str, **kwargs) -> str:
        calls.append(repo_id)
        raise OSError("404 Client Error: Repository Not Found")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(bfn.hub, "hf_hub_download", download)
    monkeypatch.setattr(bfn.hub, "WEIGHTS_DIR", tmp_path / "weights")
    discrete_model.save_pretrained(tmp_path / "weights" / "good")
    (tmp_path / "weights" / "classifier").mkdir()
    (tmp_path / "weights" / "classifier" / "config.json").write_text('{"channels": [16]}')
    (tmp_path / "weights" / "classifier" / "model.safetensors").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    return calls


@pytest.mark.parametrize(("name", "because"), [("weights/discrte", "weights/ is a local folder"),
                                               ("discrte", "a Hub repo id is owner/name")])
def test_a_misspelt_folder_fails_at_once_without_asking_the_hub(no_hub: list[str], name: str, because: str) -> None:
    with pytest.raises(ModelLoadError, match=f"{name}: no such folder, and not a repo in the Hugging Face cache "
                       f"\\(the Hub was not asked: {because}\\); model folders in .*weights: good\\."):
        load_model(name)
    assert no_hub == []


def test_a_one_word_name_in_the_cache_still_loads(no_hub: list[str], model: BFNModel, saved: Path) -> None:
    fill_cache(Path(constants.HF_HUB_CACHE), "tinybfn", [saved / "config.json", saved / "model.safetensors"])
    assert load_model("tinybfn").kind == model.kind and no_hub == []


def test_an_owner_name_id_is_asked_of_the_hub(no_hub: list[str]) -> None:
    with pytest.raises(ModelLoadError, match=f"{REPO_ID}: no such folder, not in the Hugging Face cache, and the Hub did "
                       "not provide config.json \\(404 .*\\); model folders in .*: good\\. Check the repo id"):
        load_model(REPO_ID)
    assert no_hub == [REPO_ID]


def test_missing_config(saved: Path, tmp_path: Path) -> None:
    folder = variant(saved, tmp_path, "no-config")
    (folder / "config.json").unlink()
    with pytest.raises(ModelLoadError, match=f"{folder}: config.json is missing"):
        load_model(folder)


def test_config_without_kind(saved: Path, tmp_path: Path) -> None:
    folder = variant(saved, tmp_path, "no-kind")
    config = json.loads((folder / "config.json").read_text())
    del config["kind"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="kind None"):
        load_model(folder)


def rewrite_config(folder: Path, edit) -> None:
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))  # NaN is written as JSON's NaN, which json reads back


def first_flow_parameter(config: dict) -> str:
    return sorted(config["flow"])[0]  # beta1 or sigma1


BAD_CONFIGS = {
    "no channels": (lambda c: c["unet"].update(channels=[]), "unet: channels must be a non-empty list"),
    "NaN flow parameter": (lambda c: c["flow"].update({first_flow_parameter(c): float("nan")}), "flow: .* got nan"),
    "huge": (lambda c: c["unet"].update(channels=[20000, 20000]), "unet: channels \\[20000, 20000\\] make .* over the limit"),
    "flow not an object": (lambda c: c.update(flow=3), "flow must be a JSON object"),
    "string for a flag": (lambda c: c["unet"].update(attention="yes"), "unet: attention must be true or false"),
    "misspelt field": (lambda c: c["unet"].update(chanels=[8]), "unet: no U-Net field chanels"),
    "too many resolutions": (lambda c: c["unet"].update(channels=[8, 16, 32]), "unet: patch 2 with 3 resolutions"),
    "indivisible channels": (lambda c: c["unet"].update(channels=[8, 15]), "unet: channels \\[8, 15\\] with groups 2 make no network"),
}


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_an_invalid_config_is_refused_before_the_network_is_built(
    saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    edit, reason = BAD_CONFIGS[case]
    folder = variant(saved, tmp_path, "bad-config")
    rewrite_config(folder, edit)

    def allocate(*args, **kwargs):
        raise AssertionError("the network was built before its config was checked")

    monkeypatch.setattr("bfn.model.UNet", allocate)
    with pytest.raises(ModelLoadError, match=f"{folder}: config.json is invalid \\({reason}"):
        load_model(folder)


def test_non_finite_weights_are_refused(saved: Path, tmp_path: Path) -> None:
    folder = variant(saved, tmp_path, "nan-weights")

    def poison(sd: dict) -> dict:
        sd["net.stem.weight"][0, 0, 0, 0] = float("nan")
        sd["net.head.2.bias"][0] = float("inf")
        return sd

    rewrite_weights(folder, poison)
    with pytest.raises(ModelLoadError, match=f"{folder}: model.safetensors is unusable \\(NaN or infinite values in "
                       "net.stem.weight, net.head.2.bias\\)"):
        load_model(folder)


def rewrite_weights(folder: Path, edit) -> None:
    weights = folder / "model.safetensors"
    save_file(edit(load_file(weights)), weights)


def test_missing_key(saved: Path, tmp_path: Path) -> None:
    folder = variant(saved, tmp_path, "missing-key")
    rewrite_weights(folder, lambda sd: {k: v for k, v in sd.items() if k != "net.stem.weight"})
    with pytest.raises(ModelLoadError, match=f"{folder}.*Missing key.*net.stem.weight"):
        load_model(folder)


def test_extra_key(saved: Path, tmp_path: Path) -> None:
    folder = variant(saved, tmp_path, "extra-key")
    rewrite_weights(folder, lambda sd: {**sd, "net.extra": torch.zeros(2)})
    with pytest.raises(ModelLoadError, match=f"{folder}.*Unexpected key.*net.extra"):
        load_model(folder)


def test_wrong_shape(saved: Path, tmp_path: Path) -> None:
    folder = variant(saved, tmp_path, "wrong-shape")
    rewrite_weights(folder, lambda sd: {**sd, "net.stem.bias": torch.zeros(3)})
    with pytest.raises(ModelLoadError, match=f"{folder}.*size mismatch"):
        load_model(folder)


@pytest.mark.parametrize("keep", [0.5, 0.999, 8])
def test_truncated_or_corrupt_weights(saved: Path, tmp_path: Path, keep: float) -> None:
    folder = variant(saved, tmp_path, f"truncated-{keep}")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: int(len(data) * keep)] if keep < 1 else data[:keep] + b"\xff" * 100)
    with pytest.raises(ModelLoadError, match=str(folder)):
        load_model(folder)


def test_pickle_checkpoint_is_never_loaded(saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = variant(saved, tmp_path, "pickle-only")
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load must never be called")

    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(
        ModelLoadError, match=f"{folder}: model.safetensors is missing.*pytorch_model.bin.*never loaded"
    ):
        load_model(folder)
