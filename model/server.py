"""The interactive web demo behind ``python main.py serve``.

A Flask app with one HTML page (web/index.html) and one JSON endpoint,
``POST /api/generate``. Requests are validated here, so a bad request gets a
clear message in the page instead of an exception in the server; model calls
are serialised by a lock (one generation at a time, the others wait in line).
"""
from __future__ import annotations

import base64
import io
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from torch_utils.misc import UserError, image_grid

PAGE = Path(__file__).resolve().parent.parent / "web" / "index.html"
MAX_IMAGES = 32
MAX_UPLOAD_BYTES = 4 * 1024 * 1024
MAX_PROMPT_CHARS = 300

# generate_fn(model, prompt, n, seed, temperature, trunc, image, mix) -> images [n, 3, H, W] in [-1, 1]
GenerateFn = Callable[..., torch.Tensor]


class BadRequest(ValueError):
    pass


def _number(form, key: str, kind, default, lo, hi):
    raw = form.get(key)
    if raw is None or str(raw).strip() == "":
        return default
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise BadRequest(f"'{key}' must be a number, got '{raw}'") from None
    if not (lo <= value <= hi):
        raise BadRequest(f"'{key}' must be between {lo} and {hi}, got {value}")
    return value


def parse_request(form, files, models: Sequence[str]) -> dict:
    """Validate a generation request; raises BadRequest with a message for the page."""
    prompt = (form.get("prompt") or "").strip()
    if not prompt:
        raise BadRequest("please type a prompt")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise BadRequest(f"the prompt is too long ({len(prompt)} characters, at most {MAX_PROMPT_CHARS})")
    model = form.get("model") or models[0]
    if model not in models:
        raise BadRequest(f"unknown method '{model}'; choices: {', '.join(models)}")
    req = {
        "prompt": prompt,
        "model": model,
        "n": _number(form, "n", int, 8, 1, MAX_IMAGES),
        "seed": _number(form, "seed", int, 0, 0, 2**31 - 1),
        "temperature": _number(form, "temperature", float, 1.0, 0.0, 2.0),
        "trunc": _number(form, "trunc", float, 1.0, 0.0, 1.0),
        "image": None,
        "mix": None,
    }
    upload = files.get("image") if files else None
    if upload is not None and upload.filename:
        data = upload.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise BadRequest(f"the reference image is too large (at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB)")
        from PIL import Image, UnidentifiedImageError

        try:
            img = Image.open(io.BytesIO(data))
            img.load()
        except (UnidentifiedImageError, OSError, ValueError):
            raise BadRequest(f"'{upload.filename}' is not an image") from None
        req["image"] = img.convert("RGB")
        req["mix"] = _number(form, "mix", float, 0.5, 0.0, 1.0)
    return req


def png_data_url(images: torch.Tensor, ncols: int, label: str) -> tuple[str, int, int]:
    grid = image_grid(images, ncols=ncols, row_labels=[label])
    buf = io.BytesIO()
    grid.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), grid.width, grid.height


def create_app(generate_fn: GenerateFn, models: Sequence[str], setting: str = ""):
    """Build the Flask app. ``models``: method names offered in the page, the default first."""
    from flask import Flask, Response, jsonify, request

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES + 64 * 1024
    lock = threading.Lock()
    template = PAGE.read_text()

    @app.get("/")
    def index():
        options = "".join(f'<option value="{m}">{m}</option>' for m in models)
        html = template.replace("{{MODEL_OPTIONS}}", options).replace("{{MAX_N}}", str(MAX_IMAGES))
        html = html.replace("{{SETTING}}", setting)
        return Response(html, mimetype="text/html")

    @app.post("/api/generate")
    def generate():
        try:
            req = parse_request(request.form, request.files, models)
        except BadRequest as e:
            return jsonify(error=str(e)), 400
        try:
            with lock:  # one model call at a time; others queue here
                t0 = time.perf_counter()
                images = generate_fn(**req)
                model_ms = (time.perf_counter() - t0) * 1000
        except UserError as e:
            return jsonify(error=str(e)), 400
        except Exception as e:  # noqa: BLE001 - report in the page, keep serving
            app.logger.exception("generation failed")
            return jsonify(error=f"generation failed: {e.__class__.__name__}: {e}"), 500
        url, w, h = png_data_url(images, ncols=min(req["n"], 8), label=req["prompt"])
        return jsonify(image=url, width=w, height=h, n=req["n"], seed=req["seed"], model=req["model"], model_ms=model_ms)

    @app.errorhandler(413)
    def too_large(_):
        return jsonify(error=f"the upload is too large (at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB)"), 413

    return app


class ServerThread(threading.Thread):
    """Serve a WSGI app on (host, port) in a background thread; ``shutdown()`` stops it."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        super().__init__(daemon=True)
        from werkzeug.serving import make_server

        self.server = make_server(host, port, app, threaded=True)
        self.port = self.server.server_port
        self.host = host

    def run(self):
        self.server.serve_forever()

    def shutdown(self):
        self.server.shutdown()


def available_methods(mapper: str | None = None) -> list[str]:
    """Methods the page offers: flow first, then the others whose checkpoints exist."""
    from model.bundled import bundled_path

    methods = ["flow"]
    for name in ("cvae-mapper", "cvae", "gan"):
        if bundled_path(name, required=False) is not None:
            methods.append(name)
    methods.append("clip-opt")
    return methods


def pipeline_generate_fn(clip: str | None = None, generator: str | None = None, mapper: str | None = None,
                         device: str = "cpu", clip_opt_steps: int = 30, compile: bool = False) -> GenerateFn:
    """A ``generate_fn`` backed by the project's pipelines (bundled toy models unless paths are given).

    ``mapper`` applies to the flow (the default method); the other methods use their bundled checkpoints.
    ``compile``: ``torch.compile`` the models (``model/accel.py``).
    """
    from model.pipelines import ModelCache, build_pipeline

    cache = ModelCache(device, compile=compile)
    pipes: dict[str, object] = {}

    def generate_fn(prompt, model, n, seed, temperature, trunc, image, mix):
        if model not in pipes:
            pipes[model] = build_pipeline(model, clip=clip, generator=None if model in ("cvae", "gan") else generator,
                                          mapper=mapper if model == "flow" else None, device=device, cache=cache)
        pipe = pipes[model]
        opts: dict = {}
        if model in ("flow", "cvae-mapper"):
            opts = dict(temperature=temperature, trunc=trunc, image=image, mix=mix)
        elif image is not None:
            raise UserError(f"a reference image works with the mappers (flow, cvae-mapper), not with '{model}'")
        elif model == "clip-opt":
            opts = dict(steps=clip_opt_steps)
        return pipe.generate([prompt], n, seed, **opts)

    return generate_fn
