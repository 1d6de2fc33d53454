"""The training package on tiny data: the loop learns, resumes exactly, exports, evaluates, runs under DDP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from safetensors.torch import save_file

import training.checkpoint as ckpt
from bfn.continuous import ContinuousFlow
from bfn.hub import ModelLoadError
from bfn.model import BFNModel
from tests.support.mnist import write_idx, write_mnist
from training.__main__ import main as training_cli
from training.checkpoint import CheckpointError, load_checkpoint, restore_optimizer_state, save_checkpoint
from bfn.kinds import make_flow
from bfn.objective import diffusion_loss, early_times, sigmoid_weighting
from training.data import Split, load_mnist, read_idx
from training.evaluate import evaluate_nll
from training.export import export_run
import training.loop
from training.loop import CpuBf16, TrainConfig, bfn_loss, check_no_class_early, load_source_weights, lr_at, train, validation_loss

ROOT = Path(__file__).resolve().parents[2]
TINY_UNET = {"channels": [8, 16], "groups": 4}


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory) -> Path:
    """A folder in torchvision's MNIST/raw layout (gzipped, as published) with 200 train and 60 test images."""
    return write_mnist(tmp_path_factory.mktemp("mnist"), train=200, test=60, gz=True)


def tiny_data(mnist_dir: Path) -> tuple[Split, Split]:
    images, labels = load_mnist(mnist_dir, train=True)
    full = Split(images, labels)
    return full.subset(slice(40, None)), full.subset(slice(0, 40))


def tiny_config(out: Path, kind: str = "discrete", **overrides) -> TrainConfig:
    base = TrainConfig(kind=kind, out=str(out), unet=TINY_UNET, batch_size=16, warmup_steps=2, max_steps=6,
                       checkpoint_every=3, eval_every=1000, log_every=1, val_images=20, lr=3e-3,
                       sample_steps=3)
    return replace(base, **overrides)


def logged_losses(out: Path) -> dict[int, float]:
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    return {l["step"]: l["loss"] for l in lines if "loss" in l}


def test_idx_reader_roundtrip_and_truncation(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for gz in (True, False):
        path = tmp_path / f"a{'.gz' if gz else ''}"
        write_idx(path, array)
        np.testing.assert_array_equal(read_idx(path), array)
    raw = (tmp_path / "a").read_bytes()
    (tmp_path / "cut").write_bytes(raw[:-5])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "cut")


def test_missing_data_error_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        load_mnist(tmp_path, train=True)


def test_flows_binarise_and_rescale_mnist_images():
    images = torch.tensor([[[0, 255, 128]]], dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    discrete = make_flow("discrete")
    binary = discrete.data_from_images(images, gen)
    assert binary.dtype == torch.long and binary[0, 0, 0, 0] == 0 and binary[0, 0, 0, 1] == 1
    draws = torch.stack([discrete.data_from_images(images, gen)[0, 0, 0, 2] for _ in range(2000)]).float()
    assert abs(draws.mean().item() - 128 / 255) < 0.04  # a fresh Bernoulli(p = intensity) draw each time
    cont = make_flow("continuous").data_from_images(images)
    torch.testing.assert_close(cont[0, 0, 0], torch.tensor([-1.0, 1.0, 128 / 255 * 2 - 1]))
    levels = make_flow("discrete", num_classes=3).data_from_images(images)  # K > 2: the intensity quantised
    assert levels[0, 0, 0].tolist() == [0, 2, 1]


def test_lr_schedule_warms_up_then_decays():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.55) and lr_at(110, cfg) == pytest.approx(0.1)


@pytest.mark.parametrize("kind", ["discrete", "continuous"])
def test_training_reduces_loss_on_a_fixed_batch(tmp_path, mnist_dir, kind):
    train_set, val_set = tiny_data(mnist_dir)
    cfg = tiny_config(tmp_path / "run", kind, max_steps=40, lr=5e-3)
    batch = train_set.subset(slice(0, 64))

    def fixed_batch_loss(model: BFNModel) -> float:
        gen = torch.Generator().manual_seed(7)
        with torch.no_grad():
            return bfn_loss(model.flow, model, model.flow.data_from_images(batch.images, gen), batch.labels, cfg, gen).item()

    torch.manual_seed(cfg.seed)
    before = fixed_batch_loss(BFNModel(kind, {}, TINY_UNET))
    train(cfg, data=(train_set, val_set))
    state = load_checkpoint(tmp_path / "run" / "checkpoint")
    trained = BFNModel(kind, {}, TINY_UNET)
    trained.load_state_dict(state["model"])
    after = fixed_batch_loss(trained)
    assert np.isfinite(after) and after < 0.8 * before
    assert all(np.isfinite(v) for v in logged_losses(tmp_path / "run").values())
    assert (tmp_path / "run" / "samples").is_dir() and list((tmp_path / "run" / "samples").glob("*.png"))


@pytest.mark.parametrize("kind", ["discrete", "continuous"])
def test_cpu_bf16_runs_the_network_in_bf16_and_keeps_the_loss_and_gradients_in_float32(mnist_dir, kind):
    train_set, _ = tiny_data(mnist_dir)
    batch = train_set.subset(slice(0, 32))
    cfg = TrainConfig(kind=kind)
    torch.manual_seed(0)
    model = BFNModel(kind, {}, TINY_UNET)
    inner = []
    model.net.stem.register_forward_hook(lambda module, args, out: inner.append(out.dtype))

    def loss_and_grads(net) -> tuple[torch.Tensor, list[torch.Tensor]]:
        gen = torch.Generator().manual_seed(3)
        model.zero_grad()
        loss = bfn_loss(model.flow, net, model.flow.data_from_images(batch.images, gen), batch.labels, cfg, gen)
        loss.backward()
        return loss, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    exact, exact_grads = loss_and_grads(model)
    fast, fast_grads = loss_and_grads(CpuBf16(model))
    assert inner == [torch.float32, torch.bfloat16]
    assert fast.dtype == torch.float32 and all(g.dtype == torch.float32 for g in fast_grads)
    assert fast.item() == pytest.approx(exact.item(), rel=0.02)
    cosine = torch.nn.functional.cosine_similarity(torch.cat([g.flatten() for g in fast_grads]),
                                                   torch.cat([g.flatten() for g in exact_grads]), dim=0)
    assert cosine > 0.99


def test_cpu_bf16_trains_where_the_cpu_has_it_and_is_refused_with_the_reason_elsewhere(tmp_path, mnist_dir, monkeypatch, capsys):
    data = tiny_data(mnist_dir)
    monkeypatch.setattr(training.loop, "cpu_has_bf16", lambda: False)
    assert training_cli(["train", "--kind", "discrete", "--cpu-bf16", "--out", str(tmp_path / "refused"), "--data-dir", str(tmp_path)]) == 1
    assert "this CPU has no native bf16" in capsys.readouterr().err and not (tmp_path / "refused").exists()
    monkeypatch.setattr(training.loop, "cpu_has_bf16", lambda: True)  # emulated where it is not: slower, same result
    run = tmp_path / "run"
    train(tiny_config(run, cpu_bf16=True), data=data, stop_after=3)
    train(tiny_config(run, cpu_bf16=True), data=data, resume=True)
    assert set(logged_losses(run)) == set(range(1, 7)) and all(np.isfinite(v) for v in logged_losses(run).values())
    assert json.loads((run / "config.json").read_text())["cpu_bf16"] is True


def test_resume_continues_exactly(tmp_path, mnist_dir):
    data = tiny_data(mnist_dir)
    straight = tmp_path / "straight"
    train(tiny_config(straight), data=data)
    chunked = tmp_path / "chunked"
    train(tiny_config(chunked), data=data, stop_after=3)
    assert load_checkpoint(chunked / "checkpoint")["step"] == 3
    kept = tmp_path / "step3"
    shutil.copytree(chunked / "checkpoint", kept)
    train(tiny_config(chunked), data=data, resume=True, stop_after=5)
    shutil.rmtree(chunked / "checkpoint")  # killed after logging steps 4 and 5, before checkpointing them
    shutil.copytree(kept, chunked / "checkpoint")
    with (chunked / "metrics.jsonl").open("a") as log:
        log.write('{"step": 6, "lo')  # a line the kill cut short
    train(tiny_config(chunked), data=data, resume=True)
    lines = [json.loads(l) for l in (chunked / "metrics.jsonl").read_text().splitlines()]
    steps = [l["step"] for l in lines if "loss" in l]
    assert steps == sorted(set(steps)), "a resumed run must not log a step twice"
    a, b = logged_losses(straight), logged_losses(chunked)
    assert a.keys() == b.keys() == set(range(1, 7))
    for step in range(1, 7):
        assert a[step] == pytest.approx(b[step], rel=1e-5, abs=1e-5), step


def test_time_limit_stops_with_a_checkpoint_at_a_log_boundary(tmp_path, mnist_dir):
    """An exhausted time budget ends the chunk at the next log step, checkpointed, and --resume finishes it."""
    data = tiny_data(mnist_dir)
    run = tmp_path / "run"
    train(tiny_config(run, log_every=2, checkpoint_every=1000), data=data, time_limit=0.0)
    assert load_checkpoint(run / "checkpoint")["step"] == 2
    train(tiny_config(run, log_every=2, checkpoint_every=1000), data=data, resume=True)
    assert load_checkpoint(run / "checkpoint")["step"] == 6


def test_resume_without_checkpoint_fails_clearly(tmp_path, mnist_dir):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(tiny_config(tmp_path / "none"), data=tiny_data(mnist_dir), resume=True)


def test_checkpoint_roundtrip_keeps_nested_state(tmp_path):
    state = {"a": {"b": torch.arange(3), 1: [torch.ones(2), 5]}, "step": 4, "name": "x"}
    save_checkpoint(tmp_path, state)
    loaded = load_checkpoint(tmp_path)
    torch.testing.assert_close(loaded["a"]["b"], torch.arange(3))
    torch.testing.assert_close(loaded["a"][1][0], torch.ones(2))
    assert loaded["a"][1][1] == 5 and loaded["step"] == 4 and loaded["name"] == "x"


class Killed(Exception):
    """Stands for the process dying at one point of a save."""


def test_a_save_killed_at_any_point_leaves_the_previous_or_the_new_checkpoint(tmp_path, monkeypatch):
    """Kill the save at each of its file-system calls in turn (a write is cut in half first): what loads is always
    the step-100 or the step-200 checkpoint whole, never the JSON of one with the tensors of the other."""
    weights = {100: torch.zeros(4), 200: torch.ones(4)}
    calls: list[str] = []
    kill_at = 0  # the number of the call that dies; 0: none

    def dying(name, real):
        def call(*args, **kwargs):
            calls.append(name)
            if len(calls) == kill_at:
                if name == "_write_durably":
                    real(args[0], args[1][: len(args[1]) // 2])
                raise Killed(name)
            return real(*args, **kwargs)
        return call

    for target, name in ((os, "replace"), (os, "fsync"), (Path, "unlink"), (ckpt, "_write_durably")):
        if hasattr(target, name):
            monkeypatch.setattr(target, name, dying(name, getattr(target, name)))

    save_checkpoint(tmp_path / "count", {"model": {"w": weights[100]}, "step": 100})
    calls.clear()
    save_checkpoint(tmp_path / "count", {"model": {"w": weights[200]}, "step": 200})  # the calls of a save to kill
    assert len(calls) >= 2
    outcomes = set()
    for kill_at in range(1, len(calls) + 1):
        folder = tmp_path / f"killed-at-{kill_at}"
        kill_at, armed = 0, kill_at
        save_checkpoint(folder, {"model": {"w": weights[100]}, "step": 100})
        kill_at = armed
        calls.clear()
        with pytest.raises(Killed):
            save_checkpoint(folder, {"model": {"w": weights[200]}, "step": 200})
        kill_at = 0
        state = load_checkpoint(folder)
        torch.testing.assert_close(state["model"]["w"], weights[state["step"]], msg=f"killed at call {armed}")
        outcomes.add(state["step"])
        save_checkpoint(folder, {"model": {"w": weights[200]}, "step": 200})  # the next save clears what the kill left
        assert load_checkpoint(folder)["step"] == 200 and len(list(folder.glob("*.safetensors"))) == 1
    assert outcomes == {100, 200}  # kills before the commit and after it


def save_legacy(directory: Path, state: dict) -> None:
    """A checkpoint as written before manifests: checkpoint.safetensors and checkpoint.json, no checksum."""
    tensors: dict = {}
    meta = ckpt._flatten("state", state, tensors)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, directory / "checkpoint.safetensors")
    (directory / "checkpoint.json").write_text(json.dumps(meta))


def adamw_run_state(steps: int) -> dict:
    weight = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.AdamW([weight])
    for _ in range(steps):
        weight.grad = torch.ones(3)
        optimizer.step()
    return {"model": {"w": weight.detach().clone()}, "optimizer": optimizer.state_dict(), "step": steps}


def test_a_legacy_checkpoint_still_loads_unless_its_files_are_from_two_saves(tmp_path):
    legacy = tmp_path / "legacy"
    save_legacy(legacy, adamw_run_state(2))
    state = load_checkpoint(legacy)
    assert state["step"] == 2
    restore_optimizer_state(torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))]), state["optimizer"])

    # Killed between the two renames of the old save: the step-2 tensors beside the step-1 JSON.
    mixed = tmp_path / "mixed"
    save_legacy(mixed, adamw_run_state(1))
    tensors: dict = {}
    ckpt._flatten("state", adamw_run_state(2), tensors)
    save_file(tensors, mixed / "checkpoint.safetensors")
    with pytest.raises(CheckpointError, match=f"{mixed / 'checkpoint.safetensors'} holds the optimiser after 2 updates, "
                       "but checkpoint.json records step 1: .*start over with --overwrite, or resume from a copy"):
        load_checkpoint(mixed)

    save_checkpoint(legacy, adamw_run_state(3))  # a resumed legacy run's next save replaces it with a manifest
    assert load_checkpoint(legacy)["step"] == 3 and not (legacy / "checkpoint.safetensors").exists()


def cut_json(folder: Path) -> Path:
    path = folder / "checkpoint.json"
    path.write_text(path.read_text()[:-40])
    return path


def flip_a_tensor_byte(folder: Path) -> Path:
    [path] = folder.glob("tensors-*.safetensors")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def drop_tensors(folder: Path) -> Path:
    [path] = folder.glob("tensors-*.safetensors")
    path.unlink()
    return path


def cut_legacy_tensors(folder: Path) -> Path:
    for name in ("checkpoint.json", "checkpoint.safetensors"):
        (folder / name).unlink(missing_ok=True)
    for path in folder.glob("tensors-*"):
        path.unlink()
    save_legacy(folder, adamw_run_state(1))
    path = folder / "checkpoint.safetensors"
    path.write_bytes(path.read_bytes()[:30])
    return path


@pytest.mark.parametrize(("damage", "problem"), [
    (cut_json, "is not valid JSON"), (flip_a_tensor_byte, "does not match the sha256"),
    (drop_tensors, "named by checkpoint.json is missing"), (cut_legacy_tensors, "is not a readable safetensors file"),
])
def test_a_damaged_checkpoint_is_one_line_naming_the_file_and_what_to_do(tmp_path, capsys, damage, problem):
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoint", adamw_run_state(1))
    path = damage(run / "checkpoint")
    assert training_cli(["train", "--kind", "discrete", "--out", str(run), "--resume", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"error: checkpoint file {path} {problem}")
    assert err.endswith("delete the checkpoint folder and start over with --overwrite, or resume from a copy")


def test_a_run_folder_holding_a_run_needs_resume_or_overwrite(tmp_path, mnist_dir, capsys):
    data = tiny_data(mnist_dir)
    run = tmp_path / "run"
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "commands.txt").write_text("python -m training train ...\n")  # alone, it is no run
    train(tiny_config(tmp_path / "fresh", max_steps=1), data=data)
    train(tiny_config(run, max_steps=3), data=data, command="first")
    before = (run / "metrics.jsonl").read_text()
    with pytest.raises(ValueError, match=f"{run} already holds a run \\(checkpoint and metrics.jsonl\\): pass --resume "
                       "to continue it, or --overwrite to start over"):
        train(tiny_config(run, max_steps=3), data=data, command="second")
    assert training_cli(["train", "--kind", "discrete", "--out", str(run), "--data-dir", str(tmp_path)]) == 1
    assert "--resume to continue it, or --overwrite" in capsys.readouterr().err
    with pytest.raises(ValueError, match="pass only one"):
        train(tiny_config(run, max_steps=3), data=data, resume=True, overwrite=True)
    assert (run / "metrics.jsonl").read_text() == before and (run / "commands.txt").read_text() == "first\n"

    train(tiny_config(run, max_steps=3), data=data, overwrite=True, command="third")
    [aside] = run.glob("replaced-*")  # the first run, whole
    assert (aside / "metrics.jsonl").read_text() == before and (aside / "commands.txt").read_text() == "first\n"
    assert load_checkpoint(aside / "checkpoint")["step"] == 3
    assert list(logged_losses(run)) == [1, 2, 3] and (run / "commands.txt").read_text() == "third\n"
    train(tiny_config(run, max_steps=4), data=data, resume=True, command="fourth")
    assert list(logged_losses(run)) == [1, 2, 3, 4] and (run / "commands.txt").read_text() == "third\nfourth\n"


def test_export_roundtrip_and_evaluate(tmp_path, mnist_dir):
    data = tiny_data(mnist_dir)
    run = tmp_path / "run"
    train(tiny_config(run, "continuous"), data=data)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "evaluations.jsonl").write_text('{"unit": "nats/image", "note": "of older weights"}\n')
    folder = export_run(run, tmp_path / "model", compute="test")
    assert not (folder / "evaluations.jsonl").exists(), "measurements of the replaced weights must go"
    card = (folder / "README.md").read_text()
    assert "continuous MNIST" in card and "Steps: 6 optimiser steps" in card
    loaded = BFNModel.from_pretrained(folder)
    ema = BFNModel("continuous", {}, TINY_UNET)
    ema.load_state_dict(load_checkpoint(run / "checkpoint")["ema"])
    x, t, labels = torch.randn(2, 1, 28, 28), torch.tensor([0.3, 0.9]), torch.tensor([1, 10])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t, labels), ema.eval()(x, t, labels))

    test = Split(*load_mnist(mnist_dir, train=False))
    result = evaluate_nll(loaded, test, steps=0, repeats=1, batch_size=32)
    assert result["unit"] == "bits/dim" and result["test_images"] == 60
    for mode in ("conditional", "unconditional"):
        assert np.isfinite(result[f"nll_{mode}"]) and result[f"nll_{mode}"] > result[f"reconstruction_{mode}"] > 0


def test_a_preconditioned_network_trains_and_keeps_its_output_through_export(tmp_path, mnist_dir, capsys):
    run = tmp_path / "run"
    train(tiny_config(run, "continuous", flow={"network_output": "preconditioned"}, max_steps=2), data=tiny_data(mnist_dir))
    assert all(np.isfinite(v) for v in logged_losses(run).values())
    loaded = BFNModel.from_pretrained(export_run(run, tmp_path / "model", compute="test"))
    assert loaded.flow.network_output == "preconditioned"
    assert training_cli(["train", "--kind", "discrete", "--network-output", "preconditioned", "--out", str(tmp_path / "d"),
                         "--data-dir", str(tmp_path)]) == 1
    assert "a discrete flow takes no parameter network_output" in capsys.readouterr().err


def test_init_from_fine_tunes_an_exported_model(tmp_path, mnist_dir):
    data = tiny_data(mnist_dir)
    train(tiny_config(tmp_path / "base"), data=data)
    base = export_run(tmp_path / "base", tmp_path / "base-model", compute="test")
    # The fine-tuning run asks for another architecture; the source's replaces it, and its weights start both
    # the model and the EMA: with a zero learning rate they are still the source's after two steps.
    ft = tmp_path / "ft"
    train(tiny_config(ft, unet={"channels": [4, 8]}, init_from=str(base), max_steps=4, lr=0.0), data=data, stop_after=2)
    state = load_checkpoint(ft / "checkpoint")
    source = BFNModel.from_pretrained(base).state_dict()
    assert state["step"] == 2 and state["config"]["unet"]["channels"] == [8, 16]
    for name, value in source.items():
        torch.testing.assert_close(state["model"][name], value)
        torch.testing.assert_close(state["ema"][name], value)
    train(tiny_config(ft, max_steps=4), data=data, resume=True)
    for _ in range(2):  # replacing the model it started from, even twice, keeps the history right
        card = (export_run(ft, base, compute="test") / "README.md").read_text()
        assert "Steps: 10 optimiser steps" in card  # 6 of the base run + 4 of fine-tuning

    with pytest.raises(ModelLoadError, match="holds a discrete model, but a continuous model was asked for"):
        train(tiny_config(tmp_path / "wrong", "continuous", init_from=str(base)), data=data)


def test_init_from_keeps_the_source_flow_unless_one_is_named(tmp_path, mnist_dir):
    data = tiny_data(mnist_dir)
    train(tiny_config(tmp_path / "base", flow={"beta1": 2.0}), data=data)
    base = export_run(tmp_path / "base", tmp_path / "base-model", compute="test")
    train(tiny_config(tmp_path / "same", init_from=str(base), max_steps=1), data=data)
    assert load_checkpoint(tmp_path / "same" / "checkpoint")["config"]["flow"] == {"beta1": 2.0, "num_classes": 2}
    # --beta1 9 with --init-from: the trained network is fine-tuned to the new schedule (python -m training ...)
    train(tiny_config(tmp_path / "b9", flow={"beta1": 9.0}, init_from=str(base), max_steps=1), data=data)
    assert load_checkpoint(tmp_path / "b9" / "checkpoint")["config"]["flow"] == {"beta1": 9.0, "num_classes": 2}


def test_init_from_can_add_the_evidence_skip(tmp_path, mnist_dir):
    data = tiny_data(mnist_dir)
    train(tiny_config(tmp_path / "base"), data=data)
    source = BFNModel.from_pretrained(export_run(tmp_path / "base", tmp_path / "base-model", compute="test"))
    # With the skip added, the model computes exactly what the source did: its gate starts at zero.
    grown = BFNModel(source.kind, unet={**source.net.config.to_dict(), "evidence": True})
    load_source_weights(grown, source)
    x, t, labels = torch.rand(3, 1, 28, 28) * 2 - 1, torch.tensor([0.1, 0.5, 0.95]), torch.tensor([3, 7, 10])
    with torch.no_grad():
        torch.testing.assert_close(grown(x, t, labels), source(x, t, labels), rtol=0, atol=0)

    # Through the CLI's config: the run records the skip and trains its gate.
    ft = tmp_path / "ft"
    train(tiny_config(ft, unet={"evidence": True}, init_from=str(tmp_path / "base-model"), max_steps=3), data=data)
    state = load_checkpoint(ft / "checkpoint")
    assert state["config"]["unet"]["evidence"] is True and state["config"]["unet"]["channels"] == [8, 16]
    assert state["model"]["net.evidence.weight"].abs().sum() > 0
    folder = export_run(ft, tmp_path / "ft-model", compute="test")
    assert BFNModel.from_pretrained(folder).net.config.evidence is True

    for other in ({"channels": [8, 8]}, {"res_blocks": 2}):  # other shapes; other (missing) layers
        with pytest.raises(ValueError, match="do not fit"):
            load_source_weights(BFNModel(source.kind, unet={**TINY_UNET, **other}), source)


def test_init_from_can_widen_the_source_and_starts_from_its_function(tmp_path, mnist_dir, capsys):
    data = tiny_data(mnist_dir)
    train(tiny_config(tmp_path / "base"), data=data)
    base = export_run(tmp_path / "base", tmp_path / "base-model", compute="test")
    ft = tmp_path / "wide"
    train(tiny_config(ft, init_from=str(base), widen=2, max_steps=2, lr=0.0), data=data)
    state = load_checkpoint(ft / "checkpoint")
    assert state["config"]["unet"]["channels"] == [16, 32] and state["config"]["widen"] == 2
    wide = BFNModel.from_pretrained(export_run(ft, tmp_path / "wide-model", compute="test"))
    source = BFNModel.from_pretrained(base)
    x, t, labels = torch.rand(3, 1, 28, 28) * 2 - 1, torch.tensor([0.1, 0.5, 0.95]), torch.tensor([3, 7, 10])
    with torch.no_grad():
        expected = source(x, t, labels)
        torch.testing.assert_close(wide(x, t, labels), expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    assert training_cli(["train", "--kind", "discrete", "--widen", "2", "--out", str(tmp_path / "w"),
                         "--data-dir", str(tmp_path)]) == 1
    assert "--widen widens the model of --init-from" in capsys.readouterr().err


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


@pytest.mark.process
def test_evaluate_cli_prints_one_json_line(tmp_path, mnist_dir):
    folder = tmp_path / "model"
    BFNModel("discrete", {"beta1": 3.0}, TINY_UNET).save_pretrained(folder)
    proc = run_cli("training", "evaluate", "--model", str(folder), "--data-dir", str(mnist_dir), "--limit", "20", "--record")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["unit"] == "nats/image" and result["test_images"] == 20 and result["nll_unconditional"] > 0
    assert "training evaluate" in (folder / "README.md").read_text()


@pytest.mark.process
def test_ddp_with_two_gloo_processes(tmp_path, mnist_dir):
    out = tmp_path / "ddp"
    proc = run_cli(
        "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "training", "train", "--kind", "discrete",
        "--data-dir", str(mnist_dir), "--out", str(out), "--channels", "8,16", "--max-steps", "4", "--batch-size", "8",
        "--checkpoint-every", "2", "--eval-every", "4", "--log-every", "1", "--val-images", "20", "--threads", "1",
        "--val-size", "40",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = load_checkpoint(out / "checkpoint")
    assert state["step"] == 4 and len(state["rng"]) == 2  # one generator state per rank
    assert not torch.equal(state["rng"][0], state["rng"][1])  # ranks draw different batches
    assert len(logged_losses(out)) == 4


# ------------------------------------------------------------------------------------- loss weighting


def test_the_sigmoid_weighting_is_a_sigmoid_of_b_minus_the_log_snr() -> None:
    """For the continuous flow ln β(t) is the log-SNR ln(γ/(1 − γ)) (eq. 72): w = sigmoid(b − ln SNR), 1 at t = 0."""
    flow = ContinuousFlow(sigma1=0.001)
    t = torch.tensor([0.0, 0.05, 0.3, 1.0])
    g = 1 - 0.001 ** (2 * t.double())
    expected = torch.sigmoid(4.0 - (g / (1 - g)).log()).float()
    weights = sigmoid_weighting(flow, t, 4.0)
    assert torch.allclose(weights, expected, rtol=1e-4) and weights[0] == 1 and weights[-1] < 1e-3


@pytest.mark.parametrize("steps", [0, 10])
def test_a_weighted_loss_is_each_images_bound_term_times_the_weight_of_its_time(model, steps) -> None:
    x = model.flow.data_from_images(torch.randint(0, 256, (6, 28, 28), dtype=torch.uint8))
    labels = torch.arange(6)
    bound = diffusion_loss(model.flow, model, x, labels, steps, torch.Generator().manual_seed(0))
    seen = []
    weighted = diffusion_loss(model.flow, model, x, labels, steps, torch.Generator().manual_seed(0),
                              weighting=lambda t: seen.append(t) or 1 + t)
    assert len(seen) == 1 and torch.allclose(weighted, bound * (1 + seen[0]))


def test_training_with_a_weighting_minimises_it_and_validates_on_the_bound(model) -> None:
    cfg = TrainConfig(kind=model.flow.kind, sigmoid_weighting=2.0, val_images=4)
    images, labels = torch.randint(0, 256, (4, 28, 28), dtype=torch.uint8), torch.arange(4)
    x = model.flow.data_from_images(images)
    weighted = bfn_loss(model.flow, model, x, labels, cfg, torch.Generator().manual_seed(0))
    t = torch.rand(4, generator=torch.Generator().manual_seed(0))
    bound = diffusion_loss(model.flow, model, x, labels, 0, torch.Generator().manual_seed(0))
    assert torch.allclose(weighted, (bound * sigmoid_weighting(model.flow, t, 2.0)).mean())
    val = Split(images, labels)
    assert validation_loss(model, val, cfg, torch.device("cpu")) == validation_loss(model, val, replace(cfg, sigmoid_weighting=None), torch.device("cpu"))


# ------------------------------------------------------------------------------------- the "no class" rows' times


def test_early_times_draw_from_the_mixture_of_an_early_and_the_whole_interval() -> None:
    """Uniform u on a fine grid: a share `share` + (1 − share) · until of the times fall before `until`, each part
    spread evenly (a mixture's CDF, F(t) = share · min(t / until, 1) + (1 − share) · t), and no time leaves [0, 1)."""
    u = (torch.arange(100_000, dtype=torch.float64) + 0.5) / 100_000
    t = early_times(u, 0.1, 0.5)
    assert 0 <= t.min() and t.max() < 1
    for point in (0.02, 0.05, 0.1, 0.3, 0.7):
        expected = 0.5 * min(point / 0.1, 1) + 0.5 * point
        assert (t < point).double().mean().item() == pytest.approx(expected, abs=1e-4), point


def test_the_no_class_rows_train_at_early_times_and_the_labelled_rows_as_the_bound(continuous_model) -> None:
    model = continuous_model
    null = model.num_labels
    seen = []

    def net(inputs, t, labels):
        seen.append(t.clone())
        return model(inputs, t, labels)

    x = model.flow.data_from_images(torch.randint(0, 256, (8, 28, 28), dtype=torch.uint8))
    labels = torch.tensor([0, null, 2, null, null, 5, null, 7])
    cfg = TrainConfig(kind="continuous", no_class_early=(0.1, 0.5), val_images=4)
    moved = bfn_loss(model.flow, net, x, labels, cfg, torch.Generator().manual_seed(0), null)
    u = torch.rand(8, generator=torch.Generator().manual_seed(0))  # the times the bound would have drawn
    expected = torch.where(labels == null, early_times(u, 0.1, 0.5), u)
    assert torch.equal(seen[0], expected) and torch.equal(seen[0][labels != null], u[labels != null])
    mapped = diffusion_loss(model.flow, model, x, labels, 0, torch.Generator().manual_seed(0),
                            time_map=lambda v: torch.where(labels == null, early_times(v, 0.1, 0.5), v))
    assert torch.allclose(moved, mapped.mean())
    # A batch without a "no class" row is the bound's, draw for draw: the run's batches stay those of the bound.
    digits = torch.arange(8)
    assert torch.equal(bfn_loss(model.flow, model, x, digits, cfg, torch.Generator().manual_seed(0), null),
                       bfn_loss(model.flow, model, x, digits, replace(cfg, no_class_early=None), torch.Generator().manual_seed(0)))
    val = Split(torch.randint(0, 256, (4, 28, 28), dtype=torch.uint8), torch.arange(4))
    assert validation_loss(model, val, cfg, torch.device("cpu")) == validation_loss(model, val, replace(cfg, no_class_early=None), torch.device("cpu"))
    with pytest.raises(ValueError, match="null_label"):
        bfn_loss(model.flow, model, x, labels, cfg, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="continuous-time loss"):
        diffusion_loss(model.flow, model, x, labels, 10, time_map=lambda v: v)


@pytest.mark.parametrize("setting, reason", [
    ({"no_class_early": (0.1, 1.0)}, "SHARE in \\(0, 1\\)"),
    ({"no_class_early": (0.0, 0.5)}, "UNTIL in \\(0, 1\\]"),
    ({"no_class_early": (0.1, 0.5), "label_dropout": 0.0}, "--label-dropout above 0"),
    ({"no_class_early": (0.1, 0.5), "loss": "discrete"}, "--loss continuous"),
])
def test_no_class_early_is_refused_where_it_cannot_act(setting, reason) -> None:
    with pytest.raises(ValueError, match=reason):
        check_no_class_early(TrainConfig(kind="continuous", **setting))
    check_no_class_early(TrainConfig(kind="continuous", no_class_early=(0.1, 0.5), label_dropout=0.2))


def test_no_class_early_trains_and_resumes_through_the_cli(tmp_path, mnist_dir, capsys):
    run = tmp_path / "run"
    argv = ["train", "--kind", "continuous", "--data-dir", str(mnist_dir), "--channels", "8,16", "--val-size", "20",
            "--val-images", "20", "--batch-size", "8", "--max-steps", "4", "--eval-every", "4", "--checkpoint-every", "2",
            "--log-every", "1", "--sample-steps", "2", "--label-dropout", "0.5", "--no-class-early", "0.1", "0.5", "--out", str(run)]
    assert training_cli([*argv, "--stop-after", "2"]) == 0
    assert training_cli(["train", "--kind", "continuous", "--data-dir", str(mnist_dir), "--out", str(run), "--resume", "--max-steps", "4"]) == 0
    assert json.loads((run / "config.json").read_text())["no_class_early"] == [0.1, 0.5]
    assert set(logged_losses(run)) == set(range(1, 5))
    assert training_cli([*argv[:-2], "--label-dropout", "0", "--out", str(tmp_path / "refused")]) == 1
    assert "--label-dropout above 0" in capsys.readouterr().err
