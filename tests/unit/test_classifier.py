"""The digit classifier: learns a small fixture, round-trips through the Hub layout, refuses bad folders."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from bfn.classifier import ClassifierLoadError, DigitClassifier, classify_states, fast_classifier, load_classifier
from tests.support.mnist import write_mnist
from training.__main__ import main
from training.classifier import ClassifierConfig, accuracy, calibration_error, fit_temperature, train_classifier
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


def test_classify_states_gives_probabilities_per_step_and_image(trained, mnist_dir):
    # 5 steps × 3 images in (−1, 1), as a continuous model's x̂: distinct fixture digits, so that every
    # (step, image) cell has its own answer and a scrambled step/image mapping shows
    test = Split(*load_mnist(mnist_dir, train=False))
    digits = test.images[:15].float() / 255
    outputs = (digits * 2 - 1).reshape(5, 3, 28, 28) + 0.2 * torch.randn(5, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    probs = classify_states(trained, outputs, (-1.0, 1.0))
    assert probs.shape == (5, 3, 10)
    for step in range(5):
        for image in range(3):
            unit = ((outputs[step, image] + 1) / 2).clamp(0, 1)  # (−1, 1) → the classifier's [0, 1]
            alone = trained.probabilities(unit[None])[0]
            torch.testing.assert_close(probs[step, image], alone, rtol=0, atol=1e-5)
    assert len({tuple(p.argmax(-1).tolist()) for p in probs}) > 1  # the steps' answers differ: a mix-up could not hide


def test_cli_trains_and_exports(mnist_dir, tmp_path, capsys):
    out = tmp_path / "classifier"
    # one short epoch: a half-trained classifier (about 60 % on the fixture), so that the figures below are
    # neither chance nor perfect and an accuracy computed on the wrong images or weights shows
    assert main(["classifier", "--data-dir", str(mnist_dir), "--out", str(out), "--epochs", "1", "--batch-size", "16",
                 "--shift", "0"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    record = json.loads((out / "training.json").read_text())
    assert record["epochs"] == 1 and record["batch_size"] == 16
    # the reported test accuracy is the exported classifier's, counted by hand on the fixture's test images
    exported = load_classifier(out)
    test = Split(*load_mnist(mnist_dir, train=False))
    grey = test.images.float() / 255
    right = (exported(grey).argmax(1) == test.labels).sum().item() / len(test.labels)
    binary = torch.bernoulli(grey.unsqueeze(1), generator=torch.Generator().manual_seed(0))  # accuracy(binarise=True, seed=0)
    right_binary = (exported(binary).argmax(1) == test.labels).sum().item() / len(test.labels)
    assert 0.2 < right < 0.95, right  # (see above)
    assert record["test_accuracy"] == pytest.approx(right, abs=1e-6) and result["test_accuracy"] == pytest.approx(right, abs=1e-4)
    assert record["test_accuracy_binarised"] == pytest.approx(right_binary, abs=1e-6)
    card = (out / "README.md").read_text()
    assert "python -m training classifier" in card and f"{right:.2%}" in card and f"{right_binary:.2%}" in card


def test_fit_temperature_recovers_the_temperature_labels_were_drawn_at():
    g = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(20000, 10, generator=g)
    for true in (0.4, 1.0, 2.5):
        labels = torch.multinomial(torch.softmax(logits / true, 1), 1, generator=g)[:, 0]
        assert fit_temperature(logits, labels) == pytest.approx(true, rel=0.05)


def test_calibration_error_is_the_gap_between_confidence_and_accuracy():
    probs = torch.full((100, 10), 0.1 / 9)
    probs[:, 0] = 0.9  # every image: confidence 0.9 for digit 0
    right = torch.zeros(100, dtype=torch.long)
    assert calibration_error(probs, right) == pytest.approx(0.1)
    sixty = torch.where(torch.arange(100) < 60, 0, 1)
    assert calibration_error(probs, sixty) == pytest.approx(0.3)
    ninety = torch.where(torch.arange(100) < 90, 0, 1)
    assert calibration_error(probs, ninety) == pytest.approx(0.0, abs=1e-6)


def test_probabilities_use_the_temperature_and_it_round_trips(trained, tmp_path):
    hot = DigitClassifier(temperature=0.5)
    hot.load_state_dict(trained.state_dict())
    hot.eval().save_pretrained(tmp_path / "hot")
    loaded = load_classifier(tmp_path / "hot")
    x = torch.rand(4, 28, 28, generator=torch.Generator().manual_seed(0))
    assert loaded.temperature == 0.5 and json.loads((tmp_path / "hot" / "config.json").read_text())["temperature"] == 0.5
    assert torch.allclose(loaded.probabilities(x), torch.softmax(trained(x) / 0.5, 1), atol=1e-6)
    assert torch.allclose(fast_classifier(loaded).probabilities(x), loaded.probabilities(x), atol=1e-5)
    for bad in (0, -1.0, float("nan"), float("inf"), "1"):
        with pytest.raises(ValueError, match="temperature must be a finite number above 0"):
            DigitClassifier(temperature=bad)
    config = json.loads((tmp_path / "hot" / "config.json").read_text())
    (tmp_path / "hot" / "config.json").write_text(json.dumps({**config, "temperature": -2}))
    with pytest.raises(ClassifierLoadError, match="temperature must be a finite number above 0"):
        load_classifier(tmp_path / "hot")


def test_calibrate_command_fits_the_temperature_and_keeps_the_weights(mnist_dir, tmp_path, capsys):
    out = tmp_path / "classifier"
    assert main(["classifier", "--data-dir", str(mnist_dir), "--out", str(out), "--epochs", "1", "--batch-size", "16",
                 "--shift", "0"]) == 0
    trained_record = json.loads((out / "training.json").read_text())["calibration"]
    weights = (out / "model.safetensors").read_bytes()
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "temperature": 1.0}))  # as if exported before calibration
    capsys.readouterr()
    assert main(["calibrate-classifier", "--data-dir", str(mnist_dir), "--classifier", str(out)]) == 0
    fit = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert fit == trained_record  # the same fit as at export: it starts from the raw softmax either way
    assert (out / "model.safetensors").read_bytes() == weights
    assert load_classifier(out).temperature == fit["temperature"] != 1.0
    assert fit["after"]["test_nll"] <= fit["before"]["test_nll"]  # fitted on the training images, it still helps on test
    assert f"softmax(logits / {fit['temperature']:g})" in (out / "README.md").read_text()
    assert main(["calibrate-classifier", "--data-dir", str(mnist_dir), "--classifier", str(tmp_path / "nothing")]) != 0
    assert "nothing/training.json not found" in capsys.readouterr().err


def test_shipped_classifier_loads_if_present():
    from bfn.classifier import DEFAULT_FOLDER

    if not (DEFAULT_FOLDER / "model.safetensors").exists():
        pytest.skip("weights/classifier not exported yet")
    model = load_classifier()
    assert model.probabilities(torch.zeros(2, 28, 28)).shape == (2, 10)
    # Hand-drawn digits whose answer is known, each shifted left, centred and right (the classifier was
    # trained with ±2-pixel shifts): a ring is 0, a vertical stroke 1, an open 4 and a 7. (Transposed, the
    # shipped classifier reads the 1, 4 and 7 as 2, 2 and 6: the images must reach it the right way round.)
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")

    def zero(dx):
        r = ((xx - 14 - dx) / 5.5) ** 2 + ((yy - 14) / 8) ** 2
        return ((r > 0.55) & (r < 1.25)).float()

    def one(dx):
        return (((xx - 14 - dx).abs() <= 1.2) & (yy >= 5) & (yy <= 22)).float()

    def four(dx):
        img = torch.zeros(28, 28)
        img[5:16, 8 + dx : 11 + dx] = img[14:17, 8 + dx : 21 + dx] = img[5:23, 17 + dx : 20 + dx] = 1
        return img

    def seven(dx):
        img = torch.zeros(28, 28)
        img[5:8, 8 + dx : 21 + dx] = 1
        for y in range(7, 23):
            x = round(20 + dx - (y - 7) * 0.45)
            img[y, x - 1 : x + 2] = 1
        return img

    digits = {0: zero, 1: one, 4: four, 7: seven}
    images = torch.stack([draw(dx) for draw in digits.values() for dx in (-2, 0, 2)])
    labels = torch.tensor([d for d in digits for _ in range(3)])
    probs = model.probabilities(images)
    assert probs.argmax(1).tolist() == labels.tolist() and (probs.max(1).values > 0.7).all(), probs.max(1)
    assert accuracy(model, Split((images * 255).to(torch.uint8), labels)) == 1.0  # the evaluation function agrees


def test_cli_trains_a_second_judge_of_other_widths(mnist_dir, tmp_path, capsys):
    """--channels changes the network, and so the feature space of the Fréchet distance, and its card says so."""
    out = tmp_path / "judge2"
    assert main(["classifier", "--data-dir", str(mnist_dir), "--out", str(out), "--epochs", "1", "--batch-size", "16",
                 "--channels", "8", "16", "24", "40", "--seed", "1"]) == 0
    judge = load_classifier(out)
    assert judge.feature_dim == 40 and [m[0].out_channels for m in judge.body if isinstance(m, torch.nn.Sequential)] == [8, 16, 24, 40]
    card = (out / "README.md").read_text()
    assert "8-16-24-40 channels" in card and "40 penultimate features" in card and "--channels 8 16 24 40" in card
