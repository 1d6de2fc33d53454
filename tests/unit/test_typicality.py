"""How far an image is from the data: the bounds of test images, stored beside the weights (`bfn.typicality`), read
by `bfn.hub.load_model`, and the check against them, which must fire exactly above the stored percentile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bfn import typicality
from bfn.hub import ModelLoadError, load_model
from bfn.model import BFNModel
from bfn.scoring import score_images
from bfn.typicality import FAR_PERCENTILE, TypicalBounds, summarise, unconditional, unconditional_bounds
from tests.support.mnist import synthetic_digits


def reference(folder: Path | None = None, unit: str = "bits/dim") -> TypicalBounds:
    digest = typicality.weights_digest(folder) if folder is not None else "0" * 64
    return summarise([1.0 + k / 100 for k in range(101)], unit, 32, "MNIST test images 0–100", digest, "python -m training ...")


def saved(model: BFNModel, folder: Path) -> Path:
    model.save_pretrained(folder)
    return folder


def test_the_file_round_trips(tmp_path: Path, continuous_model: BFNModel) -> None:
    folder = saved(continuous_model, tmp_path / "m")
    written = reference(folder)
    assert written.threshold() == pytest.approx(1 + FAR_PERCENTILE / 100) and written.threshold(50) == pytest.approx(1.5)
    path = typicality.save(folder, written)
    assert path.name == typicality.FILE and json.loads(path.read_text())["percentiles"]["99"] == pytest.approx(1.99)
    read = typicality.load(folder, "bits/dim")
    assert read == written  # every field, the extra ones (mean, max) included
    typicality.save(folder, read)
    assert typicality.load(folder) == written  # and again: nothing is lost on a second save


def test_load_model_carries_the_reference_and_no_file_means_none(tmp_path: Path, continuous_model: BFNModel) -> None:
    folder = saved(continuous_model, tmp_path / "m")
    assert load_model(folder).typical_bounds is None
    typicality.save(folder, reference(folder))
    assert load_model(folder).typical_bounds == reference(folder)


def test_a_reference_of_other_weights_or_another_unit_is_ignored_with_a_warning(tmp_path: Path, continuous_model: BFNModel) -> None:
    folder = saved(continuous_model, tmp_path / "m")
    typicality.save(folder, reference())  # the digest of no weights
    with pytest.warns(UserWarning, match="other weights"):
        assert load_model(folder).typical_bounds is None
    typicality.save(folder, reference(folder, unit="nats/image"))
    with pytest.warns(UserWarning, match="nats/image"):
        assert load_model(folder).typical_bounds is None


@pytest.mark.parametrize("broken", ["{", "[]", '{"unit": "bits/dim"}',
                                    json.dumps({**reference().to_dict(), "percentiles": {"50": 2.0, "99": 1.0}}),
                                    json.dumps({**reference().to_dict(), "percentiles": {"99": "NaN"}})])
def test_a_broken_file_is_refused_on_one_line(tmp_path: Path, continuous_model: BFNModel, broken: str) -> None:
    folder = saved(continuous_model, tmp_path / "m")
    (folder / typicality.FILE).write_text(broken)
    with pytest.raises(ModelLoadError, match=f"{typicality.FILE}.*typical-bounds"):
        load_model(folder)


def test_far_exactly_above_the_stored_percentile() -> None:
    ref = reference()
    edge = ref.threshold()
    assert not typicality.typicality(edge, ref).far  # at the percentile: as high as 1 % of test images, not above them
    assert typicality.typicality(edge + 1e-9, ref).far
    assert not typicality.typicality(edge - 1e-9, ref).far
    assert typicality.typicality(edge + 1e-9, ref).threshold == edge and typicality.typicality(edge, ref).unit == "bits/dim"
    assert typicality.typicality(1.6, ref, 50).far and typicality.typicality(1.6, ref, 50).percentile == 50  # another percentile
    with pytest.raises(ValueError, match="no 97th percentile"):
        ref.threshold(97)


def test_the_measurement_scores_as_the_app_scores(model: BFNModel) -> None:
    """The unconditional bound `unconditional_bounds` measures is the last column of Bayes' rule's scoring with
    the same draws, image by image: the percentiles and the app's bound are one quantity."""
    x = model.flow.data_from_images(torch.from_numpy(synthetic_digits(3, 0)[0]), torch.Generator().manual_seed(0))
    measured = unconditional_bounds(model, x, 4, torch.Generator().manual_seed(5), batch=1)
    scored = torch.cat([unconditional(b, model.flow.nll_unit) for b in score_images(model, x, 4, torch.Generator().manual_seed(5))])
    torch.testing.assert_close(measured, scored, rtol=1e-4, atol=1e-4)


def test_summary_percentiles_are_numpy_percentiles() -> None:
    ref = summarise([3.0, 1.0, 2.0], "nats/image", 8, "three", "x")
    assert ref.percentiles[50.0] == 2.0 and ref.images == 3 and ref.extra == {"mean": 2.0, "max": 3.0}
    with pytest.raises(ValueError, match="finite"):
        summarise([1.0, float("nan")], "nats/image", 8, "", "")


def test_an_export_over_older_weights_removes_their_bounds() -> None:
    """`python -m training export` deletes the folder's MEASUREMENTS before writing new weights (test_training checks
    that for evaluations.jsonl): the bounds of test images are one of them."""
    from training.card import MEASUREMENTS

    assert typicality.FILE in MEASUREMENTS
