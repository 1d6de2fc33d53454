"""The two-digit data set: numbers made of the digits they name, each in its half, fixed by a seed, and
training numbers made of training digits only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.support.mnist import write_mnist
from training.data import Split, load_mnist
from training.datasets import get_dataset
from training.evaluate_two_digit import read_digits, score_numbers
from training.two_digit import HALF, MAX_OFFSET, TwoDigits, place


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory) -> Path:
    return write_mnist(tmp_path_factory.mktemp("mnist"), train=120, test=40)


@pytest.fixture(scope="module")
def digits(mnist_dir: Path) -> Split:
    return Split(*load_mnist(mnist_dir, train=True))


def test_each_half_holds_its_digit_at_its_offset_and_the_label_is_the_number(digits):
    numbers = TwoDigits.build(digits, 200, seed=3)
    batch = numbers.subset(slice(None))
    assert batch.images.shape == (200, 64, 64) and batch.images.dtype == torch.uint8
    for i in range(200):
        (ra, ca), (rb, cb) = numbers.offsets[i].tolist()
        a, b = numbers.pairs[i].tolist()
        left, right = batch.images[i, :, :HALF], batch.images[i, :, HALF:]
        for half, digit, r, c in ((left, a, ra, ca), (right, b, rb, cb)):
            torch.testing.assert_close(half[r : r + 28, c : c + 28], digits.images[digit])
            outside = half.clone()
            outside[r : r + 28, c : c + 28] = 0
            assert outside.sum() == 0  # nothing else in the half
        assert batch.labels[i] == 10 * digits.labels[a] + digits.labels[b]
    torch.testing.assert_close(numbers.labels, batch.labels)


def test_offsets_cover_exactly_the_allowed_ranges(digits):
    offsets = TwoDigits.build(digits, 4000, seed=0).offsets
    rows, cols = offsets[..., 0], offsets[..., 1]
    assert rows.min() == 0 and rows.max() == MAX_OFFSET[0] == 36
    assert cols.min() == 0 and cols.max() == MAX_OFFSET[1] == 4
    assert set(rows.flatten().tolist()) == set(range(37)) and set(cols.flatten().tolist()) == set(range(5))


def test_a_seed_fixes_pairing_offsets_and_images(digits):
    one, two, other = (TwoDigits.build(digits, 64, seed=s) for s in (5, 5, 6))
    torch.testing.assert_close(one.pairs, two.pairs)
    torch.testing.assert_close(one.offsets, two.offsets)
    torch.testing.assert_close(one.subset(slice(None)).images, two.subset(slice(None)).images)
    assert not torch.equal(one.pairs, other.pairs) and not torch.equal(one.offsets, other.offsets)
    index = torch.tensor([7, 3, 7])  # a batch by index is the same numbers as the whole set, in that order
    torch.testing.assert_close(one.subset(index).images, one.subset(slice(None)).images[index])


def test_splits_pair_digits_of_their_own_mnist_split_only(mnist_dir):
    dataset = get_dataset("two-digit")
    train, val = dataset.train_val(mnist_dir, val_size=20, seed=0)
    test = dataset.test(mnist_dir)
    assert len(train) == 8 * 100 and len(val) == 20 and len(test) == 40
    assert train.labels.max() < 100 and set(train.labels.tolist()) > {0}

    def used(numbers: TwoDigits) -> set[bytes]:
        """The digits (as bytes) that the numbers show, read back from the composed images."""
        images = numbers.subset(slice(None)).images
        found = set()
        for i, ((ra, ca), (rb, cb)) in enumerate(numbers.offsets.tolist()):
            found.add(images[i, ra : ra + 28, ca : ca + 28].numpy().tobytes())
            found.add(images[i, rb : rb + 28, HALF + cb : HALF + cb + 28].numpy().tobytes())
        return found

    test_digits = {d.numpy().tobytes() for d in load_mnist(mnist_dir, train=False)[0]}
    train_numbers, val_numbers, test_numbers = used(train), used(val), used(test)
    assert not train_numbers & test_digits and not val_numbers & test_digits
    assert not train_numbers & val_numbers  # validation digits are held out of the training numbers
    assert test_numbers <= test_digits


def test_place_cuts_off_what_falls_outside():
    image = torch.arange(1, 10, dtype=torch.uint8).reshape(1, 3, 3)
    out = place(image, torch.tensor([-1]), torch.tensor([3]), (4, 5))
    expected = torch.zeros(4, 5, dtype=torch.uint8)
    expected[0:2, 3:5] = image[0, 1:3, 0:2]
    torch.testing.assert_close(out[0], expected)


class WidthReader:
    """A stand-in digit classifier that reads glyph `c` as digit c: it counts the inked columns."""

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        widths = (images > 0).any(dim=1).sum(dim=1)
        return torch.nn.functional.one_hot((widths - 1).clamp(0, 9), 10).float()


def test_both_digits_are_read_from_their_halves_and_scored():
    glyphs = torch.zeros(10, 28, 28, dtype=torch.uint8)
    for c in range(10):
        glyphs[c, 10:18, 5 : 6 + c] = 255  # digit c: c + 1 columns wide
    numbers = TwoDigits.build(Split(glyphs, torch.arange(10)), 300, seed=2)
    batch = numbers.subset(slice(None))
    read = read_digits(WidthReader(), batch.images.float() / 255)
    torch.testing.assert_close(read, torch.stack([batch.labels // 10, batch.labels % 10], dim=1))
    wrong_units = read.clone()
    wrong_units[:100, 1] = (wrong_units[:100, 1] + 1) % 10
    scores = score_numbers(wrong_units, batch.labels)
    assert scores["both_digits"] == pytest.approx(200 / 300, abs=1e-4) and scores["tens_digit"] == 1.0
    assert scores["units_digit"] == pytest.approx(200 / 300, abs=1e-4)
    assert min(scores["worst_labels"].values()) < 1


def test_evaluate_two_digit_refuses_a_model_of_another_shape(tmp_path, capsys):
    from bfn.model import BFNModel
    from training.__main__ import main as training_cli

    BFNModel("discrete", {}, {"channels": [8, 16]}).save_pretrained(tmp_path)
    assert training_cli(["evaluate-two-digit", "--model", str(tmp_path)]) == 1
    assert "is not a two-digit model (it draws 28×28 images with 10 labels" in capsys.readouterr().err
