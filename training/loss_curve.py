"""`python -m training loss-curve`: where in time a BFN spends the nats of a test digit.

The continuous-time loss L^∞ is an integral over t of a rate (nats per unit time, eqs. 205 / 101): this
command evaluates that rate on a grid of times for the first N test images, unconditionally, with the
objective's own `label_bounds` (one θ per image and time), averages it over the images, and draws the mean
curve of each model as an SVG (one panel per model: the rates of different flows differ by orders of
magnitude), with the reconstruction term and the total bound in the caption. The SVG is written by hand so
that the figure needs no plotting package.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from xml.sax.saxutils import escape

import torch
from tqdm import tqdm

from bfn.hub import load_model
from bfn.model import BFNModel
from bfn.objective import label_bounds
from training.data import Split, test_split

WIDTH, PANEL_HEIGHT, MARGIN = 680, 230, 56


@torch.inference_mode()
def mean_curve(model: BFNModel, data: Split, points: int, batch: int = 50, seed: int = 0) -> dict:
    """The unconditional loss rate at `points` times, averaged over `data`, with the terms of the bound."""
    generator = torch.Generator().manual_seed(seed)
    x = model.flow.data_from_images(data.images, generator)
    none = torch.tensor([model.num_labels])
    rates, recon, total = torch.zeros(points, dtype=torch.float64), 0.0, 0.0
    for start in tqdm(range(0, len(data), batch), desc=f"loss curve {model.kind}", dynamic_ncols=True):
        bounds = label_bounds(model.flow, model, x[start : start + batch], none, samples=1, generator=generator,
                              curve_points=points)
        rates += bounds.curve[:, 0].double().sum(0)
        recon += bounds.reconstruction.sum().item()
        total += bounds.total.sum().item()
    n, dims = len(data), x[0].numel()
    unit = model.flow.nll_unit
    return {"kind": model.kind, "title": model.flow.display.title, "images": n, "t": bounds.times.tolist(),
            "nats_per_unit_time": (rates / n).tolist(), "reconstruction_nats": recon / n, "total_nats": total / n,
            "total_in_unit": unit.convert(total / n, dims), "unit": unit.name}


def _panel(curve: dict, top: float) -> list[str]:
    """One model's curve as SVG elements: axes, ticks, the polyline and its caption."""
    left, right, bottom = MARGIN, WIDTH - 16, top + PANEL_HEIGHT - 36
    ys = curve["nats_per_unit_time"]
    peak = max(ys) or 1.0
    exponent = 10 ** math.floor(math.log10(peak))
    y_max = math.ceil(peak / exponent) * exponent

    def px(t: float, y: float) -> tuple[float, float]:
        return left + t * (right - left), bottom - y / y_max * (bottom - top - 40)

    points = " ".join(f"{a:.1f},{b:.1f}" for a, b in (px(t, y) for t, y in zip(curve["t"], ys)))
    title = f"{curve['title']}: mean over {curve['images']} test digits, no label"
    terms = (f"bound {curve['total_in_unit']:.4g} {curve['unit']} = {curve['total_nats']:.1f} nats per image, of which "
             f"reconstruction {curve['reconstruction_nats']:.2f}; the area under the curve is the rest")
    out = [f'<text x="{left}" y="{top + 12}" font-size="12" font-weight="bold">{escape(title)}</text>',
           f'<text x="{left}" y="{top + 26}" font-size="11">{escape(terms)}</text>',
           f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#444"/>',
           f'<line x1="{left}" y1="{bottom}" x2="{left}" y2="{top + 40}" stroke="#444"/>',
           f'<polyline fill="none" stroke="#4f46e5" stroke-width="2" points="{points}"/>']
    for k in range(6):
        x, _ = px(k / 5, 0)
        out.append(f'<text x="{x:.1f}" y="{bottom + 14}" font-size="10" text-anchor="middle">{k / 5:g}</text>')
    for k in range(3):
        value = y_max * k / 2
        _, y = px(0, value)
        out.append(f'<text x="{left - 4}" y="{y + 3:.1f}" font-size="10" text-anchor="end">{value:g}</text>')
    out.append(f'<text x="{(left + right) / 2}" y="{bottom + 28}" font-size="11" text-anchor="middle">t</text>')
    out.append(f'<text x="12" y="{(top + bottom) / 2}" font-size="11" transform="rotate(-90 12 {(top + bottom) / 2})" '
               'text-anchor="middle">nats per unit time</text>')
    return out


def svg(curves: list[dict]) -> str:
    height = PANEL_HEIGHT * len(curves) + 8
    body = [e for k, c in enumerate(curves) for e in _panel(c, 8 + k * PANEL_HEIGHT)]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif">'
            f'<rect width="100%" height="100%" fill="white"/>{"".join(body)}</svg>\n')


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("loss-curve", help="the test set's mean loss rate over t, per model, as JSON lines and an SVG figure",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", nargs="+", default=["weights/discrete", "weights/continuous"], help="model folders or Hub ids")
    p.add_argument("--data-dir", default="data", help="folder holding MNIST/raw/")
    p.add_argument("--limit", type=int, default=1000, help="the first N test images")
    p.add_argument("--points", type=int, default=32, help="times on the grid (midpoints of equal bins)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data draw and of θ")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=Path("docs/loss-curve.svg"), help="the SVG to write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    if args.limit < 1 or args.points < 2:
        raise ValueError("--limit must be ≥ 1 and --points ≥ 2")
    torch.set_num_threads(args.threads)
    data = test_split(args.data_dir)
    data = data.subset(slice(0, args.limit))
    curves = [mean_curve(load_model(source), data, args.points, seed=args.seed) for source in args.model]
    for curve in curves:
        print(json.dumps(curve))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(svg(curves))
