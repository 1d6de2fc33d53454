"""Saving and loading: the Hub mixin round trip, `load_model` from folders and the HF cache, and its refusals."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants
from safetensors.torch import load_file, save_file

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
    assert WEIGHTS_DIR == Path(__file__).resolve().parent.parent / "weights"
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


def test_unreachable_repo_is_a_load_error(offline_cache: Path) -> None:
    with pytest.raises(ModelLoadError, match=f"{REPO_ID}.*could not be fetched.*python -m training export"):
        load_model(REPO_ID)


def test_cached_repo_without_weights_is_a_load_error(saved: Path, offline_cache: Path) -> None:
    fill_cache(offline_cache, REPO_ID, [saved / "config.json"])
    with pytest.raises(ModelLoadError, match=REPO_ID):
        load_model(REPO_ID)


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    with pytest.raises(ModelLoadError, match=f"{missing}: no such folder.*weights/"):
        load_model(missing)


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
