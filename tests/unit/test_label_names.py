"""Nothing outside the MNIST data code assumes 28×28 or ten labels: the CLIs, the .npz layout, drawings, masks,
the digit classifier's reading of a number, and the model folders, on a tiny two-digit model (64×64, "00" …
"99") and a tiny model whose labels are names ("cat", "dog", "bird")."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import bfn.hub
from bfn.cli import bench, complete, sample, score
from bfn.classifier import DigitClassifier, centre_ink, classify_states, digit_parts, digits_of
from bfn.digits import half_mask, mask_from_image, to_field, to_mnist
from bfn.hub import model_folders
from bfn.model import BFNModel
from bfn.labels import label_index, label_row
from tests.support.models import ANIMALS, NUMBERS
from tests.support.mnist import write_mnist
from training.__main__ import main as training_main
from training.evaluate_samples import as_digits
from training.evaluate_samples import score as score_samples


@pytest.fixture(scope="module")
def two_digit_folder(two_digit_model: BFNModel, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("two-digit")
    two_digit_model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def named_folder(named_model: BFNModel, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("animals")
    named_model.save_pretrained(folder)
    return folder


def one_line_error(capsys: pytest.CaptureFixture, prog: str) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"python -m {prog}: error:"), lines
    return lines[0]


def two_strokes(size: tuple[int, int] = (120, 240)) -> np.ndarray:
    """A drawing of two digits side by side, dark on white: a bar in the left half, a box in the right."""
    canvas = np.full(size, 255, dtype=np.uint8)
    canvas[20:100, 50:60] = 0
    canvas[20:100, 150:160] = canvas[20:100, 190:200] = canvas[20:30, 150:200] = canvas[90:100, 150:200] = 0
    return canvas


# ------------------------------------------------------------------------------------------------ labels


@pytest.mark.parametrize(
    "text, names, index",
    [("42", NUMBERS, 42), ("07", NUMBERS, 7), ("7", NUMBERS, 7), ("none", NUMBERS, None), ("3", [str(d) for d in range(10)], 3),
     ("dog", ANIMALS, 1), ("NONE", ANIMALS, None)],
)
def test_a_label_is_given_by_its_name_or_for_numbers_by_its_number(text, names, index):
    assert label_index(text, names) == index


@pytest.mark.parametrize(
    "text, names, words",
    [("100", NUMBERS, "'100' is not a label of this model; give a number 00–99, or 'none'"),
     ("x", NUMBERS, "give a number 00–99"),
     ("1", ANIMALS, "'1' is not a label of this model; give one of the 3 label names ('cat', 'dog', 'bird'), or 'none'")],
)
def test_an_unknown_label_is_refused_with_the_allowed_form(text, names, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        label_index(text, names)


def test_a_row_of_labels_is_every_label_or_ten_spread_from_first_to_last():
    assert label_row(10) == tuple(range(10)) and label_row(3) == (0, 1, 2)
    assert label_row(100) == (0, 11, 22, 33, 44, 55, 66, 77, 88, 99)


def test_digit_parts_counts_the_digits_a_label_spells():
    assert (digit_parts([str(d) for d in range(10)]), digit_parts(NUMBERS), digit_parts(ANIMALS)) == (1, 2, 0)
    assert digit_parts(["0", "1", "a"]) == 0 and digit_parts(["1", "22"]) == 0


# -------------------------------------------------------------------------------------------------- CLIs


def test_sample_cli_draws_numbers_by_name_and_writes_64_by_64_images(two_digit_folder, tmp_path):
    out, npz = tmp_path / "grid.png", tmp_path / "s.npz"
    assert sample.main(["--model", str(two_digit_folder), "--digits", "42", "7", "none", "--steps", "2", "--out", str(out),
                        "--npz", str(npz), "--scale", "1", "--threads", "1"]) == 0
    with np.load(npz) as archive:
        assert archive["images"].shape == (3, 64, 64) and archive["labels"].tolist() == [42, 7, -1]
    assert Image.open(out).size == (3 * 66 + 2, 68)  # one row of 64×64 tiles, 2 px padding


def test_sample_cli_defaults_to_a_row_of_the_models_labels(two_digit_folder, tmp_path):
    npz = tmp_path / "s.npz"
    assert sample.main(["--model", str(two_digit_folder), "--steps", "1", "--out", str(tmp_path / "g.png"), "--npz", str(npz)]) == 0
    with np.load(npz) as archive:
        assert archive["labels"].tolist() == list(label_row(100)) and archive["images"].shape == (10, 64, 64)


def test_sample_cli_takes_label_names_and_refuses_numbers_for_them(named_folder, tmp_path, capsys):
    npz = tmp_path / "s.npz"
    assert sample.main(["--model", str(named_folder), "--digits", "dog", "none", "bird", "--steps", "1", "--out",
                        str(tmp_path / "g.png"), "--npz", str(npz)]) == 0
    with np.load(npz) as archive:
        assert archive["labels"].tolist() == [1, -1, 2] and archive["images"].shape == (3, 28, 28)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        sample.main(["--model", str(named_folder), "--digits", "1", "--out", str(tmp_path / "h.png")])
    assert "give one of the 3 label names ('cat', 'dog', 'bird')" in one_line_error(capsys, "bfn.cli.sample")
    assert not (tmp_path / "h.png").exists()


def test_score_cli_reads_the_models_size_and_names_its_labels(two_digit_folder, named_folder, tmp_path, capsys):
    images = np.zeros((1, 64, 64), np.float32)
    images[0, 20:44, 10:14] = images[0, 20:44, 40:50] = 1
    np.savez(tmp_path / "n.npz", images=images, labels=np.array([42]))
    assert score.main(["--model", str(two_digit_folder), "--npz", str(tmp_path / "n.npz"), "--samples", "1"]) == 0
    line, summary = (json.loads(l) for l in capsys.readouterr().out.strip().splitlines())
    assert list(line["nll"]) == [*NUMBERS, "none"] and len(line["posterior"]) == 100
    assert line["predicted_label"] == NUMBERS[line["predicted"]] and summary["labelled"] == 1
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(SystemExit):
        score.main(["--model", str(two_digit_folder), "--images", str(tmp_path / "small.png")])
    assert "is 28×28 pixels; scoring needs the model's 64×64 images" in one_line_error(capsys, "bfn.cli.score")
    assert score.main(["--model", str(named_folder), "--images", str(tmp_path / "small.png"), "--samples", "1"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert list(line["nll"]) == [*ANIMALS, "none"] and line["predicted_label"] in ANIMALS


def test_complete_cli_makes_a_drawing_of_two_digits_a_number_and_keeps_a_half_of_it(two_digit_folder, named_folder, tmp_path,
                                                                                  capsys):
    Image.fromarray(two_strokes()).save(tmp_path / "d.png")
    npz = tmp_path / "c.npz"
    args = ["--model", str(two_digit_folder), "--images", str(tmp_path / "d.png"), "--keep", "left", "--digits", "7",
            "--steps", "2", "--resample", "1", "--out", str(tmp_path / "c.png"), "--npz", str(npz)]
    assert complete.main(args) == 0
    with np.load(npz) as archive:
        assert archive["images"].shape == (1, 64, 64) and archive["labels"].tolist() == [7]
        assert (archive["known"][0] == half_mask("left", (64, 64))).all()
    Image.fromarray(np.full((28, 28), 255, np.uint8)).save(tmp_path / "mask.png")
    capsys.readouterr()
    with pytest.raises(SystemExit):
        complete.main([*args[:4], "--keep", str(tmp_path / "mask.png"), "--out", str(tmp_path / "x.png")])
    assert "a mask must be 64×64 pixels (the model's image), got 28×28" in one_line_error(capsys, "bfn.cli.complete")
    assert complete.main(["--model", str(named_folder), *args[2:4], "--keep", str(tmp_path / "mask.png"), "--digits", "cat",
                          *args[8:]]) == 0  # a 28×28 model: the same drawing is one MNIST digit
    with np.load(npz) as archive:
        assert archive["images"].shape == archive["known"].shape == (1, 28, 28) and archive["labels"].tolist() == [0]


# ------------------------------------------------------------------------------------- drawings and digits


def test_a_drawing_becomes_one_mnist_digit_in_each_half_of_a_number():
    field = to_field(two_strokes(), (64, 64), parts=2)
    assert field.shape == (64, 64)
    for k, half in enumerate((field[:, :32], field[:, 32:])):
        rows, cols = np.nonzero(half > 0.1)
        assert rows.size and 18 <= rows.min() and rows.max() < 18 + 28 and 2 <= cols.min() and cols.max() < 2 + 28
        np.testing.assert_array_equal(half[18:46, 2:30], to_mnist(two_strokes()[:, :100] if k == 0 else two_strokes()[:, 100:]))
    one = np.full((60, 60), 255, np.uint8)
    one[10:50, 28:32] = 0
    np.testing.assert_array_equal(to_field(one, (28, 28)), to_mnist(one))  # MNIST's field: to_mnist itself
    apart = np.full((60, 300), 255, np.uint8)
    apart[10:50, 10:20] = apart[10:50, 280:290] = 0
    with pytest.raises(ValueError, match="part 2 of 3 of the drawing"):  # three digits asked for, two drawn
        to_field(apart, (64, 96), parts=3)
    with pytest.raises(ValueError, match="the drawing is empty"):
        to_field(np.full((60, 60), 255, np.uint8), (64, 64), parts=2)
    with pytest.raises(ValueError, match="a 28×28 image has no room for 2 MNIST digit"):
        to_field(one, (28, 28), parts=2)


def test_the_cut_between_two_digits_goes_through_the_gap_near_the_middle():
    canvas = np.full((120, 240), 255, dtype=np.uint8)
    canvas[20:100, 10:96] = 0  # a wide left digit, a gap of columns 96–100, then the right digit across the middle
    canvas[20:100, 101:110] = canvas[20:30, 101:200] = 0
    field = to_field(canvas, (64, 64), parts=2)
    np.testing.assert_array_equal(field[18:46, 2:30], to_mnist(canvas[:, :100]))
    np.testing.assert_array_equal(field[18:46, 34:62], to_mnist(canvas[:, 100:]))


def test_halves_and_masks_take_the_models_size(tmp_path):
    assert half_mask("right", (64, 64))[:, 32:].all() and not half_mask("right", (64, 64))[:, :32].any()
    assert half_mask("top").shape == (28, 28)
    Image.fromarray(np.tile(np.array([0, 255], np.uint8), (40, 32))).save(tmp_path / "m.png")
    assert mask_from_image(tmp_path / "m.png", (40, 64)).sum() == 40 * 32


def test_each_half_of_a_number_is_centred_in_mnists_field_for_the_classifier():
    digit = torch.zeros(28, 28)
    digit[10:18, 12:17], digit[18, 12:17] = 1, 0.3  # centre of mass (13.66, 14): within half a pixel of MNIST's (14, 14)
    number = torch.zeros(2, 64, 64)
    number[0, 3:31, 1:29] = digit  # offsets inside each half, as the two-digit data places them
    number[0, 30:58, 32 + 4 : 32 + 32] = 0.5 * digit
    number[1, 36:64, 32:60] = digit  # a left half without ink stays empty
    digits = digits_of(number, 2)
    assert digits.shape == (2, 2, 28, 28)
    torch.testing.assert_close(digits[0, 0], digit)
    torch.testing.assert_close(digits[0, 1], 0.5 * digit)
    torch.testing.assert_close(digits[1, 1], digit)
    assert digits[1, 0].sum() == 0
    torch.testing.assert_close(centre_ink(digit[None])[0], digit)
    mnist = torch.rand(3, 28, 28)
    assert torch.equal(digits_of(mnist, 1)[:, 0], mnist)  # one MNIST digit goes in as it is


def test_the_classifier_reads_each_digit_of_a_number_per_step():
    torch.manual_seed(0)
    classifier = DigitClassifier().eval()
    outputs = torch.rand(3, 2, 64, 64)
    probs = classify_states(classifier, outputs, (0.0, 1.0), parts=2)
    assert probs.shape == (3, 2, 20)
    torch.testing.assert_close(probs.reshape(3, 2, 2, 10).sum(-1), torch.ones(3, 2, 2))
    expected = classifier.probabilities(digits_of(outputs[1], 2)[1, 1:])  # step 1, image 1, units digit
    torch.testing.assert_close(probs[1, 1, 10:], expected[0])


# --------------------------------------------------------------------------------------------- folders


def test_model_folders_are_the_shipped_ones_in_order_then_any_other(tmp_path, discrete_model, two_digit_model, monkeypatch):
    for name in ("extra", "two-digit", "discrete"):
        (two_digit_model if name == "two-digit" else discrete_model).save_pretrained(tmp_path / name)
    DigitClassifier().save_pretrained(tmp_path / "classifier")  # not a BFN model
    (tmp_path / "empty").mkdir()
    assert [f.name for f in model_folders(tmp_path)] == ["discrete", "two-digit", "extra"]
    monkeypatch.setattr(bfn.hub, "WEIGHTS_DIR", tmp_path)
    assert [f.name for f in model_folders()] == ["discrete", "two-digit", "extra"]
    assert BFNModel.from_pretrained(str(model_folders()[1])).data_shape == (1, 64, 64)


# ----------------------------------------------------------------------------------- bench and sample quality


def test_bench_times_a_row_of_each_models_labels_and_reports_the_total_time_ratio(two_digit_folder, named_folder, capsys):
    assert bench.main(["--models", str(named_folder), str(two_digit_folder), "--steps", "1", "--threads", "1",
                       "--reference-steps", "0", "--repeats", "1", "--sampler", "bfn", "--no-gpu"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    runs = {line["model"]: line for line in lines if "ms_per_step" in line}
    (ratio,) = [line for line in lines if "ratio" in line]
    assert ratio["ratio"] == f"{two_digit_folder} ÷ {named_folder}"
    assert ratio["total_s"] == pytest.approx(runs[str(two_digit_folder)]["total_s"] / runs[str(named_folder)]["total_s"], rel=0.02)


def test_evaluate_samples_judges_numbers_digit_by_digit_and_refuses_labels_that_are_not_digits(two_digit_folder, named_folder,
                                                                                              tmp_path, capsys):
    mnist = write_mnist(tmp_path / "data", train=200, test=60)
    torch.manual_seed(0)
    DigitClassifier().eval().save_pretrained(tmp_path / "classifier")
    common = ["--classifier", str(tmp_path / "classifier"), "--data-dir", str(mnist), "--steps", "1", "--per-class", "2"]
    assert training_main(["evaluate-samples", "--model", str(two_digit_folder), *common, "--batch-size", "100"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["samples"] == 200 and len(line["accuracy_per_class"]) == 10  # 200 numbers: 400 digits, judged as digits
    assert 0 <= line["accuracy_numbers"] <= line["accuracy"] <= 1
    assert training_main(["evaluate-samples", "--model", str(named_folder), *common]) == 1
    assert "labels are not digits (cat, dog, bird, …): the digit classifier cannot judge its samples" in capsys.readouterr().err


def test_a_number_is_right_when_each_of_its_digits_is():
    images = torch.zeros(2, 64, 64)
    digits, labels = as_digits(images, [42, None], tuple(NUMBERS), 2)
    assert digits.shape == (4, 28, 28) and labels.tolist() == [4, 2, -1, -1]
    torch.manual_seed(0)
    classifier = DigitClassifier().eval()
    picture = torch.rand(3, 64, 64)
    digits, labels = as_digits(picture, [12, 34, 56], tuple(NUMBERS), 2)
    predicted = classifier.probabilities(digits).argmax(1).numpy()
    reference = SimpleNamespace(test_stats=(np.zeros(128), np.eye(128)), floor=0.0, diversity_real=0.0, confident_real=0.0)
    result = score_samples(classifier, digits, predicted, reference, parts=2)  # the classifier's own reading: all right
    assert result["accuracy"] == result["accuracy_numbers"] == 1.0
    wrong = predicted.copy()
    wrong[1] = (wrong[1] + 1) % 10  # the units digit of the first number
    result = score_samples(classifier, digits, wrong, reference, parts=2)
    assert result["accuracy"] == pytest.approx(5 / 6, abs=1e-4) and result["accuracy_numbers"] == pytest.approx(2 / 3, abs=1e-4)
