"""The image size and the label names come from a model's config: nothing assumes 28×28 or ten digits."""

from __future__ import annotations

import re

import pytest
import torch

from bfn.model import BFNModel, ConfigError
from bfn.sampling import sample

SMALL = {"channels": [8, 16], "patch": 2, "groups": 4, "attention": False}


def test_a_64_by_64_model_with_100_labels_samples_64_by_64_images_and_keeps_its_label_names(tmp_path):
    names = [f"{n:02d}" for n in range(100)]
    model = BFNModel("discrete", unet={**SMALL, "image_size": [64, 64], "num_labels": 100}, labels=names).eval()
    assert model.data_shape == (1, 64, 64) and model.num_labels == 100 and model.label_names[42] == "42"
    images = sample(model, [42, None], steps=3, seed=0).sample
    assert images.shape[-2:] == (64, 64)
    model.save_pretrained(tmp_path)
    again = BFNModel.from_pretrained(str(tmp_path))
    assert again.label_names == tuple(names) and again.data_shape == (1, 64, 64)


def test_a_wide_image_size_builds_a_network_of_that_shape():
    model = BFNModel("continuous", unet={**SMALL, "image_size": [28, 56]})
    out = model(torch.zeros(2, 1, 28, 56), torch.rand(2), torch.tensor([0, 10]))
    assert out.shape == (2, 1, 28, 56) and model.label_names == tuple("0123456789")


@pytest.mark.parametrize(
    "unet, labels, words",
    [
        ({"image_size": [64]}, None, "image_size must be [height, width]"),
        ({"image_size": [64, 0]}, None, "image_size must be [height, width]"),
        ({"image_size": [30, 30]}, None, "does not fit 30×30 images"),
        ({}, ["a", "b"], "labels names 2 classes but unet.num_labels is 10"),
        ({"num_labels": 2}, ["a", "a"], "labels must be distinct"),
        ({"num_labels": 2}, ["a", 3], "labels must be a list of non-empty names"),
    ],
)
def test_a_bad_image_size_or_label_list_is_refused_naming_the_field(unet, labels, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        BFNModel("discrete", unet={**SMALL, **unet}, labels=labels)
