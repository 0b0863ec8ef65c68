"""Attribute classifier: a few training steps, save/load, prediction on any size, masked loss."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model.classifier import load_classifier, masked_bce, predict_attributes, to_model_input, train_classifier
from network.classifier import AttributeClassifier
from torch_utils.misc import UserError

REPO = Path(__file__).resolve().parent.parent


def test_masked_bce_ignores_unmasked():
    logits = torch.tensor([[5.0, -3.0, 100.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0]])
    mask = torch.tensor([True, True, False])
    full = masked_bce(logits, targets, torch.tensor([True, True, True]))
    part = masked_bce(logits, targets, mask)
    assert part.item() < 0.05 < full.item()


def test_network_shapes_and_resize():
    net = AttributeClassifier(resolution=32, channels=(8, 16)).eval()
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 40)
    x = to_model_input(torch.randint(0, 256, (2, 3, 218, 178), dtype=torch.uint8), 32)
    assert x.shape == (2, 3, 32, 32) and x.min() >= -1 and x.max() <= 1


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("toycls")
    r = subprocess.run([sys.executable, "main.py", "data", "synth", "--out", str(d), "--n", "200", "--seed", "5"],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return str(d)


def test_train_save_load_predict(toy_data, tmp_path):
    out = str(tmp_path / "clf.safetensors")
    losses = []
    import model.classifier as mc

    orig = mc.masked_bce

    def spy(*a, **k):
        v = orig(*a, **k)
        losses.append(float(v.detach()))
        return v

    mc.masked_bce = spy
    try:
        s = train_classifier(toy_data, out, seed=0, epochs=6, batch_size=32, lr=3e-3, resolution=32, channels=(16, 32, 64), progress=False)
    finally:
        mc.masked_bce = orig
    assert s["steps"] == len(losses) > 20
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.05, losses

    clf = load_classifier(out)
    assert clf.attr_mask.dtype == torch.bool and clf.attr_mask.sum() >= 12 and len(clf.attr_names) == 40
    imgs = torch.rand(3, 3, 64, 64) * 2 - 1
    p = predict_attributes(clf, imgs)
    assert p.shape == (3, 40) and (p >= 0).all() and (p <= 1).all()
    # Any resolution is accepted (resized to the model's input): a 2x upsampled image predicts about the same.
    p2 = predict_attributes(clf, torch.nn.functional.interpolate(imgs, scale_factor=2, mode="nearest"))
    assert p2.shape == (3, 40)
    # uint8 input gives the same result as the equivalent float input
    u8 = ((imgs + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    assert torch.allclose(predict_attributes(clf, u8), predict_attributes(clf, u8.float() / 127.5 - 1), atol=1e-5)


def test_load_classifier_errors(tmp_path):
    with pytest.raises(UserError):
        load_classifier(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(UserError):
        load_classifier(bad)
