"""`python -m training evaluate-samples` end to end on a tiny model, a tiny classifier and a tiny fixture."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bfn.classifier import DigitClassifier, load_classifier
from bfn.model import BFNModel
from tests.support.mnist import write_mnist
from training.__main__ import main
from training.data import Split, load_mnist
from training.evaluate_samples import balanced_subset, render_table, score
from training.sample_metrics import feature_statistics, frechet_distance, frechet_distance_features

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    mnist = write_mnist(root / "data", train=200, test=60)
    torch.manual_seed(0)
    model = BFNModel("discrete", {"beta1": 3.0}, {"channels": [8, 16], "groups": 4, "attention": False})
    model.save_pretrained(root / "model")
    DigitClassifier().eval().save_pretrained(root / "classifier")
    return root, mnist


def test_one_json_line_per_setting_and_a_card_table(setup, capsys):
    root, mnist = setup
    argv = ["evaluate-samples", "--model", str(root / "model"), "--classifier", str(root / "classifier"),
            "--data-dir", str(mnist), "--sampler", "bfn", "solver", "--guidance", "0", "2", "--steps", "2",
            "--per-class", "3", "--batch-size", "16", "--record"]
    assert main(argv) == 0
    lines = [json.loads(l) for l in capsys.readouterr().out.strip().splitlines()]
    assert [(l["sampler"], l["guidance"], l["steps"]) for l in lines] == [("bfn", 0, 2), ("bfn", 2, 2), ("solver", 0, 2), ("solver", 2, 2)]
    for line in lines:
        assert line["samples"] == 30 and len(line["accuracy_per_class"]) == 10
        assert 0 <= line["accuracy"] <= 1 and line["frechet_floor"] == lines[0]["frechet_floor"]  # one reference per sweep
        assert line["diversity"] >= 0 and line["diversity_real"] > 0
        assert line["command"].startswith("python -m training evaluate-samples --model")
        assert line["guidance_interval"] == [0.3, 0.6]  # the discrete kind's default
    # The Fréchet distance of the sweep (its value is clamped at 0, so "≥ 0" could not fail) in closed forms,
    # on this classifier's 128 features of the fixture images (N < 128: singular covariances, as in a sweep):
    # 0 between a set and itself; ‖Δμ‖² between a set and its translate (N(μ1, Σ) vs N(μ2, Σ)); and, for
    # diagonal covariances diag(a), diag(b), Σ (√a − √b)² + ‖Δμ‖².
    classifier = load_classifier(root / "classifier")
    with torch.no_grad():
        test, train = (classifier.features(Split(*load_mnist(mnist, train=t)).images.float() / 255).double().numpy()
                       for t in (False, True))
    assert frechet_distance_features(test, test) == pytest.approx(0, abs=1e-9 * np.trace(np.cov(test, rowvar=False)))
    shift = np.linspace(-1.0, 2.0, test.shape[1]) * np.abs(test).mean()  # ‖Δμ‖² ≈ 65 tr Σ: trace rounding ≪ rel
    assert frechet_distance_features(test + shift, test) == pytest.approx((shift**2).sum(), rel=1e-6)
    (mu1, sigma1), (mu2, sigma2) = feature_statistics(test), feature_statistics(train)
    a, b = np.diag(sigma1), np.diag(sigma2)
    expected = ((np.sqrt(a) - np.sqrt(b)) ** 2).sum() + ((mu1 - mu2) ** 2).sum()
    assert expected > 0 and frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(mu1, sigma1, mu1 + shift, sigma1) == pytest.approx((shift**2).sum(), rel=1e-6)
    table = (root / "model" / "sample_quality.md").read_text()
    assert table.count("\n| ") == 5 and "| solver | 2 | 2 | 0.3–0.6 |" in table
    assert f"| {lines[0]['confident']:.1%} ({lines[0]['confident_real']:.1%}) |" in table
    assert len((root / "model" / "sample_quality.jsonl").read_text().splitlines()) == 4
    # Another guidance interval is another setting: a row of its own, beside the default interval's.
    assert main([*argv[:5], "--data-dir", str(mnist), "--guidance", "2", "--steps", "2", "--per-class", "3",
                 "--guidance-interval", "0", "1", "--record"]) == 0
    assert json.loads(capsys.readouterr().out)["command"].endswith("--guidance-interval 0 1 --classifier " + str(root / "classifier"))
    table = (root / "model" / "sample_quality.md").read_text()
    assert table.count("\n| ") == 6 and "| bfn | 2 | 2 | 0–1 |" in table and "| bfn | 2 | 2 | 0.3–0.6 |" in table


def test_unknown_sampler_is_an_error(setup, capsys):
    root, mnist = setup
    assert main(["evaluate-samples", "--model", str(root / "model"), "--data-dir", str(mnist), "--sampler", "magic"]) == 1
    assert "unknown sampler" in capsys.readouterr().err


def test_balanced_subset_has_per_class_images_of_each_digit(setup):
    _, mnist = setup
    sub = balanced_subset(Split(*load_mnist(mnist, train=True)), 4)
    assert torch.equal(torch.bincount(sub.labels, minlength=10), torch.full((10,), 4))


def test_table_lists_the_original_sampler_first():
    rows = [{"sampler": s, "steps": n, "guidance": 1.0, "accuracy": 0.9, "frechet": 1.0, "frechet_floor": 0.5, "diversity": 2.0,
             "diversity_real": 2.5, "seconds": 1.0, "samples": 10, "per_class": 1, "command": "c"} for s, n in (("solver", 20), ("bfn", 1000))]
    table = render_table(rows)
    assert table.index("| bfn | 1000 |") < table.index("| solver | 20 |")


def test_unconditional_samples_are_scored_and_tabled_apart(setup, capsys, tmp_path):
    root, mnist = setup
    # the real test digits as the model sees them (binarised), and a temperature at which about half of them
    # reach confidence 0.9 (an untrained classifier's logits hardly differ), so that a wrong count shows
    base = load_classifier(root / "classifier")
    real = torch.bernoulli(Split(*load_mnist(mnist, train=False)).images.float() / 255, generator=torch.Generator().manual_seed(0))
    logits = base.features_and_logits(real)[1]
    share = {t: (torch.softmax(logits / t, 1).max(1).values >= 0.9).float().mean().item() for t in np.geomspace(1e-4, 1e-1, 200)}
    temperature = float(min(share, key=lambda t: abs(share[t] - 0.5)))
    assert 0.2 < share[temperature] < 0.8, share[temperature]
    sharp = DigitClassifier(temperature=temperature)
    sharp.load_state_dict(base.state_dict())
    sharp.eval().save_pretrained(tmp_path / "sharp")
    argv = ["evaluate-samples", "--model", str(root / "model"), "--classifier", str(tmp_path / "sharp"),
            "--data-dir", str(mnist), "--sampler", "bfn", "--steps", "2", "--per-class", "3", "--batch-size", "16",
            "--unconditional", "--record"]
    assert main(argv) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["unconditional"] is True and line["samples"] == 30 and "accuracy" not in line
    assert sum(line["class_shares"]) == pytest.approx(1.0, abs=0.01) and 0 <= line["confident"] <= 1
    # the shares' distance from uniform is half their L1 distance from 0.1 each
    assert line["distance_from_uniform"] == pytest.approx(0.5 * sum(abs(s - 0.1) for s in line["class_shares"]), abs=0.01)
    # beside it, the share of the real test digits that reach the same confidence, at the classifier's temperature
    assert line["confident_real"] == pytest.approx(share[temperature], abs=1e-4) and line["temperature"] == temperature
    table = (root / "model" / "sample_quality.md").read_text()
    assert "Unconditional samples (30 per setting)" in table
    assert f"{line['confident']:.1%} ({share[temperature]:.1%})" in table
    assert "uncalibrated" not in table  # every line has its real share
    # Class-conditional samples are scored for confidence the same way (any digit, at the classifier's temperature),
    # so that a digit drawn at random and then drawn compares with the "no class" samples: here real digits.
    ref = SimpleNamespace(test_stats=feature_statistics(sharp.features_and_logits(real)[0].double().numpy()),
                          floor=0.0, diversity_real=1.0, confident_real=line["confident_real"])
    labels = Split(*load_mnist(mnist, train=False)).labels.numpy()
    scored = score(sharp, real, labels, ref)
    assert scored["confident"] == pytest.approx(share[temperature], abs=1e-4)
    assert scored["confident_real"] == line["confident_real"] and scored["frechet"] == pytest.approx(0, abs=1e-6)


def test_class_shares_and_their_distance_from_uniform():
    from training.sample_metrics import class_shares, distance_from_uniform

    shares = class_shares(np.array([0, 0, 1, 9]))
    assert shares.tolist() == [0.5, 0.25, 0, 0, 0, 0, 0, 0, 0, 0.25]
    assert distance_from_uniform(np.full(10, 0.1)) == pytest.approx(0.0)
    assert distance_from_uniform(np.eye(10)[3]) == pytest.approx(0.9)
