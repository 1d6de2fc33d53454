"""The training loop: AdamW, warm-up + cosine schedule, gradient clipping, EMA, classifier-free guidance
label dropout, bf16 autocast on GPU (on request on a CPU with native bf16), a NaN/inf guard, exact resume, and DistributedDataParallel.

One optimisation step: draw a batch by index from the device-resident data, turn it into the flow's data
(binarised or rescaled), and minimise the objective of `bfn.objective` (continuous-time by default, n-step
discrete-time on request). Everything random comes from one seeded generator per process
whose state is checkpointed, so `--resume` continues exactly where the run stopped.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm import tqdm

from bfn.flow import Flow
from bfn.hub import load_model
from bfn.images import make_grid, save_png, to_uint8
from bfn.model import BFNModel
from bfn.objective import Net, diffusion_loss, early_times, sigmoid_weighting
from bfn.sampling import sample
from bfn.widening import widened
from training.card import SOURCE_TRAINING, TRAINING
from training.checkpoint import has_checkpoint, load_checkpoint, restore_optimizer_state, save_checkpoint
from training.data import Split
from training.datasets import get_dataset


@dataclass
class TrainConfig:
    kind: str = "discrete"
    dataset: str = "mnist"  # a name in training.datasets.DATASETS: it sets the labels and the image size
    data_dir: str = "data"
    out: str = "runs/default"
    flow: dict = field(default_factory=dict)  # e.g. {"beta1": 3.0} or {"sigma1": 0.001}
    unet: dict = field(default_factory=dict)  # UNetConfig fields
    batch_size: int = 128
    lr: float = 1.5e-3
    weight_decay: float = 0.01
    warmup_steps: int = 500
    max_steps: int = 20_000
    min_lr_ratio: float = 0.05
    grad_clip: float = 100.0  # on the per-image loss in nats, whose gradient norm is O(100–1000)
    ema_decay: float = 0.999
    label_dropout: float = 0.1
    loss: str = "continuous"  # or "discrete": the n-step loss L^n with n = loss_steps
    loss_steps: int = 100
    sigmoid_weighting: float | None = None  # b of bfn.objective.sigmoid_weighting; None: the bound's own weighting
    no_class_early: tuple[float, float] | None = None  # (until, share) of the "no class" rows' times (bfn.objective.early_times); None: U(0, 1)
    val_size: int = 5000
    val_images: int = 2000  # validation images scored per evaluation (continuous-time loss, EMA weights)
    checkpoint_every: int = 500  # optimiser steps between checkpoints
    eval_every: int = 2000  # optimiser steps between validation + sample grid ("epoch" of the logs)
    log_every: int = 50
    sample_steps: int = 50  # sampling steps of the preview grid written at each evaluation
    seed: int = 0
    threads: int = 0  # torch CPU threads, 0 = torch's default
    compile: bool = False
    cpu_bf16: bool = False  # the network in bf16 autocast on the CPU too (a GPU always runs it so); per invocation, as threads
    init_from: str | None = None  # model folder / Hub id whose weights start a fine-tuning run
    widen: int = 1  # with init_from: the source's channels times this, its function kept (`bfn.widening`)


def init_config_from(cfg: TrainConfig, source: BFNModel) -> TrainConfig:
    """`cfg` with the flow and architecture of the model a fine-tuning run starts from.

    Fine-tuning keeps the source's shape (its weights must load), so its kind has to match (`load_model`
    checks that when the source is loaded with the run's kind). Two changes are
    allowed: flow hyperparameters named in `cfg.flow` replace the source's (to retune, say, β1 from a trained
    network rather than from scratch), and the evidence skip (`evidence` in `cfg.unet`) may be added to a
    source without it: the skip starts at zero, so the run begins from exactly the source's function.
    `cfg.widen` multiplies the source's channels (its weights are then widened, `load_source_weights`).
    """
    saved = source._hub_mixin_config
    unet = dict(saved["unet"])
    if cfg.unet.get("evidence"):
        unet["evidence"] = True
    unet["channels"] = [c * cfg.widen for c in unet["channels"]]
    return dataclasses.replace(cfg, flow={**saved["flow"], **cfg.flow}, unet=unet)


def load_source_weights(model: nn.Module, source: BFNModel, widen: int = 1, seed: int = 0) -> None:
    """Copy a fine-tuning source's weights into `model`, widened `widen`-fold (`bfn.widening.widened`, whose
    symmetry-breaking noise `seed` draws); only a newly added evidence skip may be missing."""
    state = source.state_dict()
    if widen != 1:
        net = widened(source.net, widen, torch.Generator().manual_seed(seed)).state_dict()
        state = {**state, **{f"net.{name}": value for name, value in net.items()}}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shapes that differ
        raise ValueError(f"--init-from weights do not fit the model: {err}") from None
    new = [k for k in missing if not k.startswith("net.evidence.")]
    if new or unexpected:
        raise ValueError(f"--init-from weights do not fit the model: missing {new}, unexpected {unexpected}")


def keep_source_record(source: Path, out: Path) -> None:
    """Copy the training record of the model a fine-tuning run starts from into the run folder.

    The exported card then tells the model's whole history even if the source folder is later overwritten
    (as when a fine-tuned model replaces the one it started from).
    """
    record = source / TRAINING
    if record.is_file():
        (out / SOURCE_TRAINING).write_text(record.read_text())


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to `lr`, then cosine decay to `min_lr_ratio · lr` at `max_steps`."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def bfn_loss(flow: Flow, net: Net, x: Tensor, labels: Tensor, cfg: TrainConfig, generator: torch.Generator,
             null_label: int | None = None) -> Tensor:
    """Mean over the batch of the per-image BFN loss in nats (continuous- or discrete-time, as `cfg.loss`),
    reweighted over time where `cfg.sigmoid_weighting` is set, and with the rows labelled `null_label` ("no
    class") at earlier times where `cfg.no_class_early` is set (validation reports the bound all the same).

    `net` is the model itself, or its DDP / compiled wrapper.
    """
    steps = cfg.loss_steps if cfg.loss == "discrete" else 0
    bias = cfg.sigmoid_weighting
    weighting = None if bias is None else lambda t: sigmoid_weighting(flow, t, bias)
    time_map = None
    if cfg.no_class_early is not None:
        if null_label is None:
            raise ValueError("no_class_early moves the times of the 'no class' rows: pass their label, null_label")
        until, share = cfg.no_class_early
        time_map = lambda u: torch.where(labels == null_label, early_times(u, until, share), u)  # noqa: E731
    return diffusion_loss(flow, net, x, labels, steps, generator, weighting, time_map).mean()


def check_no_class_early(cfg: TrainConfig) -> None:
    """`no_class_early` = (until, share) moves the continuous-time loss's "no class" rows: it needs such rows and
    that loss, 0 < until ≤ 1 and 0 < share < 1."""
    if cfg.no_class_early is None:
        return
    until, share = cfg.no_class_early
    if not (0 < until <= 1 and 0 < share < 1):
        raise ValueError(f"--no-class-early takes UNTIL in (0, 1] and SHARE in (0, 1), got {until:g} {share:g}")
    if cfg.loss != "continuous" or cfg.label_dropout <= 0:
        raise ValueError("--no-class-early moves the times of the 'no class' rows of the continuous-time loss: "
                         "train with --loss continuous and a --label-dropout above 0")


def drop_labels(labels: Tensor, p: float, null: int, generator: torch.Generator) -> Tensor:
    """Replace each label by "no class" with probability p, so one network learns both halves of CFG."""
    drop = torch.rand(labels.shape, device=labels.device, generator=generator) < p
    return torch.where(drop, torch.full_like(labels, null), labels)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX, through oneDNN); elsewhere torch emulates
    it, slower than float32."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def check_cpu_bf16(device: torch.device) -> None:
    """Refuse `cpu_bf16` where it cannot help: on a GPU (the network runs in bf16 there anyway) or on a CPU
    without native bf16."""
    if device.type != "cpu":
        raise ValueError("--cpu-bf16 is for training on the CPU; on a GPU the network already runs in bf16 autocast")
    if not cpu_has_bf16():
        raise ValueError("this CPU has no native bf16 (AVX512-BF16 or AMX), where bf16 is slower than float32: train without --cpu-bf16")


class CpuBf16(nn.Module):
    """The network's pass in bf16 autocast on the CPU, as `bfn.objective.network_output` runs it on a GPU: its
    convolutions and matrix products in bf16, with float32 weights, gradients and optimiser state. The
    objective casts the output back to float32, so the flow's maths and the loss stay in float32.

    It is for CPUs that compute in bf16 natively, where a training step costs much less (README, Training: measured there).
    Validation and evaluation run the EMA model in float32, so their losses compare with float32 runs'.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, network_input: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.net(network_input, t, labels)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)


@torch.no_grad()
def validation_loss(model: BFNModel, val: Split, cfg: TrainConfig, device: torch.device) -> float:
    """Continuous-time loss (nats/image) of the EMA model on a fixed validation subset with fixed noise."""
    gen = torch.Generator(device=device).manual_seed(1234)
    total, count = 0.0, 0
    for start in range(0, min(len(val), cfg.val_images), 500):
        part = val.subset(slice(start, min(start + 500, cfg.val_images)))
        x = model.flow.data_from_images(part.images, gen)
        total += diffusion_loss(model.flow, model, x, part.labels, 0, gen).sum().item()
        count += x.shape[0]
    return total / count


def write_sample_grid(model: BFNModel, path: Path, steps: int = 50, guidance: float = 2.0) -> None:
    """Ten labels spread over the model's (0–9 for ten) in columns, two seeds in rows, then a row of
    unconditional samples."""
    spread = [k * model.num_labels // 10 for k in range(10)]
    labels = spread * 2 + [None] * 10
    final = sample(model, labels, steps=steps, guidance=guidance, seed=0)
    save_png(make_grid(to_uint8(final.output, final.value_range), nrow=10), path, scale=2)


class Distributed:
    """Rank/world-size bookkeeping; a no-op when not launched by torchrun."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self) -> torch.device:
        if torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def all_finite(self, value: Tensor) -> bool:
        """True only if the value is finite on every rank, so all ranks skip a bad step together."""
        ok = torch.isfinite(value).all().float().reshape(1)
        if self.world > 1:
            dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        return bool(ok.item())

    def any_true(self, flag: bool) -> bool:
        """True on every rank if `flag` is true on any, so a time limit stops all ranks at the same step."""
        if self.world == 1:
            return flag
        value = torch.tensor([float(flag)], device=self.device())
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def close(self) -> None:
        """Tear the group down with every rank at the same point.

        Rank 0 validates and writes samples after the last step while the others are idle; a rank that
        destroyed its group and exited meanwhile could abort in gloo's threads at exit (seen on CI), so all
        ranks meet at a barrier first.
        """
        if self.world > 1:
            dist.barrier()
            dist.destroy_process_group()


def rewind_metrics(path: Path, step: int) -> None:
    """Drop the metrics lines logged after checkpoint `step`.

    A run killed between checkpoints logged steps that the resumed run trains again; without this the log
    would hold two different losses for one step. A line the kill cut short is dropped too.
    """
    if not path.exists():
        return

    def logged_before(line: str) -> bool:
        try:
            return json.loads(line)["step"] <= step
        except (ValueError, KeyError):
            return False

    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if logged_before(line)]
    if len(kept) < len(lines):
        path.write_text("".join(kept))


def build_model(cfg: TrainConfig, sampling: dict | None = None) -> BFNModel:
    """The model `cfg` trains: its labels and image size are those of `cfg.dataset`."""
    dataset = get_dataset(cfg.dataset)
    unet = {**cfg.unet, "num_labels": len(dataset.label_names), "image_size": list(dataset.image_size)}
    return BFNModel(cfg.kind, cfg.flow, unet, sampling, labels=list(dataset.label_names))


def start_run_folder(out: Path, resume: bool, overwrite: bool, is_main: bool = True) -> None:
    """Refuse to start a run over another one unless told whether to continue it or to start over.

    Without this, the same command less --resume would replace the run's checkpoint and append a second run's
    steps to its metrics.jsonl. `overwrite` moves the old run's files into a timestamped replaced-* sub-folder
    (nothing is deleted); commands.txt alone is no run.
    """
    if resume and overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite starts it over: pass only one")
    held = [name for name, there in (("checkpoint", has_checkpoint(out / "checkpoint")),
                                     ("metrics.jsonl", (out / "metrics.jsonl").exists())) if there]
    if resume or not held:
        return
    if not overwrite:
        raise ValueError(f"{out} already holds a run ({' and '.join(held)}): pass --resume to continue it, or "
                         "--overwrite to start over (its files are then moved into a replaced-<time> sub-folder)")
    if is_main:
        aside = Path(tempfile.mkdtemp(prefix=time.strftime("replaced-%Y%m%d-%H%M%S-"), dir=out))
        for entry in out.iterdir():
            if not entry.name.startswith("replaced-"):
                entry.rename(aside / entry.name)


def train(cfg: TrainConfig, resume: bool = False, data: tuple[Split, Split] | None = None, stop_after: int | None = None,
          time_limit: float | None = None, overwrite: bool = False, command: str | None = None) -> dict:
    """Train (or resume) a run in `cfg.out`; returns the last logged metrics.

    A folder that already holds a run needs `resume` (continue it) or `overwrite` (start over, the old files
    moved aside; see `start_run_folder`). `command`, if given, is appended to the folder's commands.txt, which
    the model card quotes; it is written after that check, so an overwritten run's commands go with its files.
    `stop_after` (a step) or `time_limit` (seconds of this invocation) end it early with a checkpoint,
    leaving the schedule (set by `max_steps`) untouched, so a long run can be trained in chunks that fit a
    per-command time limit and resume exactly.
    `data` lets tests pass a tiny (train, val) pair instead of reading MNIST from `cfg.data_dir`.
    """
    started = time.perf_counter()
    ddp = Distributed()
    device = ddp.device()
    if cfg.cpu_bf16:
        check_cpu_bf16(device)
    check_no_class_early(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    ckpt_dir = out / "checkpoint"
    start_run_folder(out, resume, overwrite, ddp.is_main)
    if resume and has_checkpoint(ckpt_dir):
        saved = load_checkpoint(ckpt_dir)
        cfg = TrainConfig(**{**saved["config"], "out": cfg.out, "data_dir": cfg.data_dir, "max_steps": cfg.max_steps,
                             "threads": cfg.threads, "cpu_bf16": cfg.cpu_bf16})
    else:
        saved = None
        if resume:
            raise FileNotFoundError(f"--resume given but {ckpt_dir} holds no checkpoint; start without --resume")
    if ddp.is_main and command:
        out.mkdir(parents=True, exist_ok=True)
        with (out / "commands.txt").open("a") as f:
            f.write(command + "\n")
    source = load_model(cfg.init_from, kind=cfg.kind) if saved is None and cfg.init_from else None
    if source is not None:
        cfg = init_config_from(cfg, source)
    train_set, val_set = data or get_dataset(cfg.dataset).train_val(cfg.data_dir, cfg.val_size, cfg.seed)
    train_set, val_set = train_set.to(device), val_set.to(device)

    torch.manual_seed(cfg.seed)
    model = build_model(cfg).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    generator = torch.Generator(device=device).manual_seed(cfg.seed + 1000 * ddp.rank)
    step = 0
    if source is not None:
        load_source_weights(model, source, cfg.widen, cfg.seed)
        ema.load_state_dict(model.state_dict())
    if saved is not None:
        model.load_state_dict(saved["model"])
        ema.load_state_dict(saved["ema"])
        restore_optimizer_state(optimizer, saved["optimizer"])
        generator.set_state(saved["rng"][ddp.rank % len(saved["rng"])])
        step = saved["step"]
    net = torch.nn.parallel.DistributedDataParallel(model) if ddp.world > 1 else model
    forward = torch.compile(net) if cfg.compile else net
    if cfg.cpu_bf16:
        forward = CpuBf16(forward)

    if ddp.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        if source is not None:
            keep_source_record(Path(cfg.init_from), out)
    if ddp.is_main and saved is not None:
        rewind_metrics(out / "metrics.jsonl", step)
    log_file = (out / "metrics.jsonl").open("a") if ddp.is_main else None
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not ddp.is_main, desc=f"train {cfg.kind}", dynamic_ncols=True)
    running, skipped, last = 0.0, 0, {}
    t_log, n_log = time.perf_counter(), 0

    def checkpoint() -> None:
        rng = [generator.get_state()]
        if ddp.world > 1:
            rng = [None] * ddp.world
            dist.all_gather_object(rng, generator.get_state())
        if ddp.is_main:
            save_checkpoint(
                ckpt_dir,
                {"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                 "rng": rng, "step": step, "config": asdict(cfg)},
            )

    end = min(cfg.max_steps, stop_after or cfg.max_steps)
    while step < end:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        idx = torch.randint(0, len(train_set), (cfg.batch_size,), device=device, generator=generator)
        batch = train_set.subset(idx)
        x = model.flow.data_from_images(batch.images, generator)
        labels = drop_labels(batch.labels, cfg.label_dropout, model.num_labels, generator)
        loss = bfn_loss(model.flow, forward, x, labels, cfg, generator, model.num_labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if ddp.all_finite(torch.stack([loss.detach(), grad_norm])):
            optimizer.step()
            update_ema(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))
            running += loss.item()
            n_log += 1
        else:
            skipped += 1
            tqdm.write(f"step {step}: non-finite loss or gradient (loss={loss.item()}, grad norm={grad_norm.item()}); step skipped")
        step += 1
        bar.update(1)
        if step % cfg.log_every == 0 and n_log:
            now = time.perf_counter()
            last = {"step": step, "loss": running / n_log, "lr": lr_at(step - 1, cfg), "grad_norm": grad_norm.item(),
                    "skipped": skipped, "images_per_s": n_log * cfg.batch_size * ddp.world / (now - t_log)}
            bar.set_postfix(loss=f"{last['loss']:.2f}", skipped=skipped)
            if log_file:
                log_file.write(json.dumps(last) + "\n")
                log_file.flush()
            running, n_log, t_log = 0.0, 0, now
        if time_limit is not None and step % cfg.log_every == 0 and ddp.any_true(time.perf_counter() - started > time_limit):
            tqdm.write(f"time limit of {time_limit:.0f} s reached at step {step}; checkpointing (continue with --resume)")
            end = step
        if step % cfg.checkpoint_every == 0 or step == end:
            checkpoint()
        if ddp.is_main and (step % cfg.eval_every == 0 or step == cfg.max_steps):
            ema.eval()
            val = validation_loss(ema, val_set, cfg, device)
            write_sample_grid(ema, out / "samples" / f"step_{step:07d}.png", cfg.sample_steps)
            last = {**last, "step": step, "val_loss": val}
            tqdm.write(json.dumps({"step": step, "val_loss": round(val, 3)}))
            log_file.write(json.dumps({"step": step, "val_loss": val}) + "\n")
            log_file.flush()
    bar.close()
    if log_file:
        log_file.close()
    del forward, net  # DDP's reducer holds the process group: release it before the group is destroyed
    ddp.close()
    return last
