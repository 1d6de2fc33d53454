"""The digit classifier: learns a small fixture, round-trips through the Hub layout, refuses bad folders."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from bfn.classifier import ClassifierLoadError, DigitClassifier, classify_states, fast_classifier, load_classifier
from tests.mnist_fixture import write_mnist
from training.__main__ import main
from training.classifier import ClassifierConfig, accuracy, train_classifier
from training.data import Split, load_mnist

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    return write_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.fixture(scope="module")
def trained(mnist_dir):
    train = Split(*load_mnist(mnist_dir, train=True))
    return train_classifier(train, ClassifierConfig(epochs=4, batch_size=32, lr=5e-3, shift=0), log=lambda _: None)  # no shifts: fixture digits differ by 2-pixel shifts


def test_learns_the_fixture(trained, mnist_dir):
    test = Split(*load_mnist(mnist_dir, train=False))
    assert accuracy(trained, test) >= 0.95
    assert accuracy(trained, test, binarise=True) >= 0.9


def test_round_trip_is_exact_and_strict(trained, tmp_path):
    trained.save_pretrained(tmp_path / "clf")
    assert {p.name for p in (tmp_path / "clf").iterdir()} >= {"config.json", "model.safetensors"}
    loaded = load_classifier(tmp_path / "clf")
    x = torch.rand(6, 28, 28)
    torch.testing.assert_close(loaded(x), trained.eval()(x), rtol=0, atol=0)
    torch.testing.assert_close(loaded.features(x), trained.features(x), rtol=0, atol=0)
    assert loaded.features(x).shape == (6, loaded.feature_dim)

    # a checkpoint with a missing key is refused, not half-loaded
    state = {k: v.contiguous() for k, v in trained.state_dict().items() if k != "head.bias"}
    save_file(state, str(tmp_path / "clf" / "model.safetensors"))
    with pytest.raises(ClassifierLoadError, match="head.bias"):
        load_classifier(tmp_path / "clf")


def test_fast_classifier_gives_the_same_probabilities(trained):
    x = torch.rand(2, 5, 28, 28)
    fast = fast_classifier(trained)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())  # folded into the convolutions
    torch.testing.assert_close(classify_states(fast, x, (0.0, 1.0)), classify_states(trained.eval(), x, (0.0, 1.0)), rtol=0, atol=1e-5)


def test_missing_or_pickled_weights_give_one_clear_error(tmp_path):
    with pytest.raises(ClassifierLoadError, match="python -m training classifier"):
        load_classifier(tmp_path / "nowhere")
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"channels": [16, 32, 64, 128]}))
    torch.save(DigitClassifier().state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(ClassifierLoadError, match="model.safetensors"):
        load_classifier(folder)


def test_classify_states_gives_probabilities_per_step_and_image(trained):
    outputs = torch.rand(5, 3, 28, 28) * 2 - 1  # 5 steps × 3 images in (−1, 1), as a continuous model's x̂
    probs = classify_states(trained, outputs, (-1.0, 1.0))
    assert probs.shape == (5, 3, 10)
    torch.testing.assert_close(probs.sum(-1), torch.ones(5, 3))


def test_cli_trains_and_exports(mnist_dir, tmp_path, capsys):
    out = tmp_path / "classifier"
    assert main(["classifier", "--data-dir", str(mnist_dir), "--out", str(out), "--epochs", "1", "--batch-size", "64"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 <= result["test_accuracy"] <= 1
    card = (out / "README.md").read_text()
    assert "python -m training classifier" in card and f"{result['test_accuracy']:.2%}" in card
    assert json.loads((out / "training.json").read_text())["epochs"] == 1
    load_classifier(out)


def test_shipped_classifier_loads_if_present():
    from bfn.classifier import DEFAULT_FOLDER

    if not (DEFAULT_FOLDER / "model.safetensors").exists():
        pytest.skip("weights/classifier not exported yet")
    model = load_classifier()
    assert model.probabilities(torch.zeros(2, 28, 28)).shape == (2, 10)
    record = json.loads((DEFAULT_FOLDER / "training.json").read_text())
    assert record["test_accuracy"] >= 0.992
