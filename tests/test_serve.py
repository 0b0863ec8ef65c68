"""The web demo: request validation through Flask's test client, and an end-to-end run in headless Chromium."""
from __future__ import annotations

import base64
import io
import os
import shutil
import time

import pytest
import torch
from PIL import Image

pytest.importorskip("flask")
from model.server import MAX_IMAGES, ServerThread, create_app  # noqa: E402


def _tiny_generate(prompt, model, n, seed, temperature, trunc, image, mix):
    """Deterministic stand-in pictures whose colour follows the request (exercises the web layer only)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, 1, 1, generator=g) * 2 - 1
    return base.expand(n, 3, 16, 16).clone()


@pytest.fixture()
def client():
    app = create_app(_tiny_generate, models=["flow", "cvae-mapper"], setting="test")
    return app.test_client()


def _png_size(data_url: str) -> tuple[int, int]:
    assert data_url.startswith("data:image/png;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))
    return img.size


def test_page_lists_methods(client):
    html = client.get("/").get_data(as_text=True)
    assert '<option value="flow">' in html and '<option value="cvae-mapper">' in html
    assert 'id="generate"' in html


def test_generate_returns_grid(client):
    r = client.post("/api/generate", data={"prompt": "a smiling man", "n": "4", "seed": "3"})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    w, h = _png_size(body["image"])
    assert (w, h) == (body["width"], body["height"])
    assert w >= 4 * 16 and h > 16


@pytest.mark.parametrize(
    "form, message",
    [
        ({"prompt": "   "}, "please type a prompt"),
        ({"prompt": "a man", "n": str(MAX_IMAGES + 1)}, "'n' must be between"),
        ({"prompt": "a man", "n": "lots"}, "'n' must be a number"),
        ({"prompt": "a man", "model": "nope"}, "unknown method 'nope'"),
        ({"prompt": "a man", "temperature": "9"}, "'temperature' must be between"),
    ],
)
def test_bad_requests_get_a_message(client, form, message):
    r = client.post("/api/generate", data=form)
    assert r.status_code == 400
    assert message in r.get_json()["error"]


def test_upload_that_is_not_an_image(client):
    data = {"prompt": "a man", "image": (io.BytesIO(b"not an image at all"), "notes.txt")}
    r = client.post("/api/generate", data=data, content_type="multipart/form-data")
    assert r.status_code == 400
    assert "'notes.txt' is not an image" in r.get_json()["error"]


def test_upload_too_large(client):
    data = {"prompt": "a man", "image": (io.BytesIO(b"\0" * (6 * 1024 * 1024)), "big.png")}
    r = client.post("/api/generate", data=data, content_type="multipart/form-data")
    assert r.status_code in (400, 413)
    assert "too large" in r.get_json()["error"]


def test_generation_error_is_reported_not_raised():
    def broken(**_):
        raise RuntimeError("boom")

    app = create_app(broken, models=["flow"])
    r = app.test_client().post("/api/generate", data={"prompt": "a man"})
    assert r.status_code == 500 and "boom" in r.get_json()["error"]
    # The server keeps answering after a failure.
    assert app.test_client().get("/").status_code == 200
