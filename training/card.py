"""The model card (README.md) of an exported model folder, rebuilt from the facts stored beside it.

A folder holds `config.json` + `model.safetensors` (written by `save_pretrained`), `training.json` (how it
was trained, written by export), `evaluations.jsonl` (one line per `evaluate --record`) and optionally
`sample_quality.md` (the classifier-based sweep). The card is regenerated whenever one of them changes, so
it never disagrees with the measurements.
"""

from __future__ import annotations

import json
from pathlib import Path

from bfn import typicality
from bfn.hub import GUIDE_FOLDER
from bfn.kinds import make_flow
from training.datasets import get_dataset

EVALUATIONS = "evaluations.jsonl"
TRAINING = "training.json"
SOURCE_TRAINING = "init_from_training.json"  # in a fine-tuning run's folder: the training record of its start
SAMPLE_QUALITY = "sample_quality.md"
SAMPLE_RESULTS = "sample_quality.jsonl"  # every evaluate-samples line; SAMPLE_QUALITY is its table
# facts about one set of weights (an export over older weights removes them); typicality.FILE: the bounds of test images
MEASUREMENTS = (EVALUATIONS, SAMPLE_QUALITY, SAMPLE_RESULTS, typicality.FILE)
NOTES = "notes.md"  # optional hand-written sections (measurements no command records); the card ends with them



def _evaluation_table(lines: list[dict]) -> str:
    if not lines:
        return "Not evaluated yet: run `python -m training evaluate --model <this folder> --data-dir DIR --record`.\n"
    unit = lines[0]["unit"]
    per_pixel = all("nll_conditional_nats_per_pixel" in e for e in lines)  # recorded since images of any size
    extra = " NLL conditional (nats/pixel) | NLL unconditional (nats/pixel) |" if per_pixel else ""
    rows = [f"| loss | test images × repeats | NLL conditional ({unit}) | NLL unconditional ({unit}) |{extra} command |",
            "|---|---|---|---|" + ("---|---|" if per_pixel else "") + "---|"]
    for e in lines:
        pixels = f" {e['nll_conditional_nats_per_pixel']} | {e['nll_unconditional_nats_per_pixel']} |" if per_pixel else ""
        rows.append(f"| {e['steps']} | {e['test_images']} × {e['repeats']} | {e['nll_conditional']} | "
                    f"{e['nll_unconditional']} |{pixels} `{e['command']}` |")
    return "\n".join(rows) + "\n"


def _guide_section(folder: Path) -> str:
    """What a model card says of the model's autoguidance guide (guide/), or of the guide it is."""
    if folder.name == GUIDE_FOLDER:
        return ("\nThis model is the **autoguidance guide** of the model in the folder above (Karras et al. 2024, "
                "arXiv 2406.02507): a smaller network of the same flow, data and labels, trained briefly on purpose. "
                "Sampling pushes the model's output away from this one's (`bfn.sampling.autoguided`); it is not meant "
                "to be sampled on its own.\n")
    record = folder / GUIDE_FOLDER / TRAINING
    if not record.exists():
        return ""
    guide = json.loads(record.read_text())
    return (f"\n## Autoguidance guide\n\n`{GUIDE_FOLDER}/` holds this model's autoguidance guide (Karras et al. 2024, "
            f"arXiv 2406.02507): a {guide.get('parameters', '?')}-parameter network of the same flow, data and labels, "
            f"trained {guide.get('steps', '?')} steps of batch {guide.get('batch_size', '?')} "
            f"(`{'; '.join(guide.get('commands', []))}`). With autoguidance w the raw network output becomes "
            "guide + w (model − guide); `load_model` loads the guide with the model.\n")


def render_card(folder: Path) -> str:
    config = json.loads((folder / "config.json").read_text())
    training = json.loads((folder / TRAINING).read_text()) if (folder / TRAINING).exists() else {}
    evals = [json.loads(l) for l in (folder / EVALUATIONS).read_text().splitlines() if l.strip()] if (folder / EVALUATIONS).exists() else []
    quality = (folder / SAMPLE_QUALITY).read_text() if (folder / SAMPLE_QUALITY).exists() else ""
    kind = config["kind"]
    display = make_flow(kind, **config.get("flow", {})).display
    data = get_dataset(training.get("config", {}).get("dataset", "mnist")).description
    title = f"{display.data_name} {data.title}"
    notes = (folder / NOTES).read_text() if (folder / NOTES).exists() else ""
    flow = ", ".join(f"{k} = {v}" for k, v in config.get("flow", {}).items()) or "defaults"
    params = training.get("parameters", "?")
    commands = "\n".join(training.get("commands", [])) or "(not recorded)"
    sampling = config.get("sampling") or {}
    recommended = ", ".join(f"{k} = {v}" for k, v in sampling.items()) or "the defaults of `bfn.settings.SamplingSettings`"
    evidence = (" Its output adds a learned, time-gated multiple of logit θ, each pixel's own summed evidence"
                " (`evidence` in config.json).") if config.get("unet", {}).get("evidence") else ""
    return f"""---
library_name: bfn-studio
license: mit
tags: [bayesian-flow-network, mnist, pytorch_model_hub_mixin]
datasets: [mnist]
---

# BFN Studio: class-conditional Bayesian Flow Network, {title}

A Bayesian Flow Network (Graves et al. 2023, arXiv 2308.07037) for {title}, conditioned on {data.condition}
with a learned "no class" label for classifier-free guidance. Flow: `{kind}` ({flow}). Network: a
small U-Net ({params} parameters) chosen for sampling speed on a CPU.{evidence}
{_guide_section(folder)}
```python
from bfn.hub import load_model
from bfn.sampling import sample
model = load_model("<this folder or Hub repo id>")
final = sample(model, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], steps=100, guidance=2.0, seed=0)
```

Recommended sampling (config.json `sampling`, used by the app and by `python -m bfn.cli.sample` without options):
{recommended}.

## Training

- Data: {data.training}, {display.data}
- Steps: {training.get("steps", "?")} optimiser steps of batch {training.get("batch_size", "?")}; weights are the EMA (decay {training.get("ema_decay", "?")}).
- Compute: {training.get("compute", "?")}
- Command(s):

```
{commands}
```

## Test-set negative log-likelihood bound

Continuous-time (or n-step) loss plus reconstruction loss on {data.test}. {data.reference}

{_evaluation_table(evals)}
{("## Sample quality" + chr(10) + chr(10) + quality) if quality else ""}{notes}"""


def write_card(folder: Path) -> Path:
    path = folder / "README.md"
    path.write_text(render_card(folder))
    return path


def record_evaluation(folder: Path, result: dict) -> None:
    """Append an evaluation result (with the command that produced it) and refresh the card."""
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"--record needs a local model folder; {folder} has no config.json")
    with (folder / EVALUATIONS).open("a") as f:
        f.write(json.dumps(result) + "\n")
    write_card(folder)
