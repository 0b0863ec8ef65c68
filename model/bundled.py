"""The bundled toy models in ``pretrained/`` and their manifest.

``pretrained/manifest.json`` maps a model name to its file, sha256, the exact
command and seed that produced it, its training time and its metrics. Every
bundled file is made by the project's own commands; the manifest says which.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from torch_utils.misc import UserError

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
MANIFEST = PRETRAINED_DIR / "manifest.json"

# Names used across the project for the bundled toy models.
NAMES = {
    "clip": "clip_cond.pt",  # conditioning CLIP (clip.load-able)
    "clip_eval": "clip_eval.pt",  # evaluation-only CLIP (other seed, disjoint images)
    "classifier": "classifier.safetensors",
    "generator": "stylegan2_toy64.safetensors",
    "flow": "flow.safetensors",
    "cvae-mapper": "cvae_mapper.safetensors",
    "cvae": "cvae.safetensors",
    "gan": "gan.safetensors",
}


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest() -> dict[str, Any]:
    if not MANIFEST.is_file():
        return {}
    return json.loads(MANIFEST.read_text())


def write_manifest(manifest: dict[str, Any]) -> None:
    """Replace the manifest atomically (sorted keys, one trailing newline)."""
    PRETRAINED_DIR.mkdir(parents=True, exist_ok=True)
    tmp = MANIFEST.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, MANIFEST)


def bundled_path(name: str, required: bool = True) -> Path | None:
    """Path of the bundled model ``name`` (a key of ``NAMES``)."""
    if name not in NAMES:
        raise UserError(f"unknown bundled model '{name}'; choices: {', '.join(NAMES)}")
    path = PRETRAINED_DIR / NAMES[name]
    if not path.is_file():
        if required:
            raise UserError(f"bundled model '{name}' is missing ({path}); see README 'Bundled models' for the command that builds it")
        return None
    return path


def record(name: str, path: str | os.PathLike, seed: int | None, metrics: dict[str, Any] | None = None, command: str | None = None, **extra: Any) -> None:
    """Add or update ``name`` in the manifest (call it from the command that wrote ``path``)."""
    manifest = read_manifest()
    path = Path(path).resolve()
    if command is None:
        command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    entry = {
        "file": os.path.relpath(path, PRETRAINED_DIR.parent),
        "sha256": sha256(path),
        "bytes": path.stat().st_size,
        "command": command,
        "seed": seed,
        "metrics": metrics or {},
    }
    entry.update(extra)
    manifest[name] = entry
    write_manifest(manifest)
