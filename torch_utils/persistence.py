"""The project's own checkpoint format and atomic file writes.

A checkpoint is a single safetensors file: the tensors of a state dict, plus a
JSON config stored in the safetensors metadata under the key ``"config"``.
Loading it never unpickles anything, so a checkpoint cannot execute code.

Training state (optimizer moments, RNG states, step counters) goes through
``atomic_torch_save`` / ``load_training_state``, which use
``torch.load(weights_only=True)`` for the same reason.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from torch_utils.misc import UserError

CONFIG_KEY = "config"


def atomic_write(path: str | os.PathLike, write_fn: Callable[[str], None]) -> None:
    """Call ``write_fn(tmp_path)`` and move the result over ``path`` atomically.

    A crash in the middle leaves the previous file untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write_fn(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(path: str | os.PathLike, state_dict: dict[str, torch.Tensor], config: dict[str, Any]) -> None:
    """Write ``state_dict`` and a JSON-serialisable ``config`` to a safetensors file, atomically."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    meta = {CONFIG_KEY: json.dumps(config, sort_keys=True)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`; returns ``(state_dict, config)``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable project checkpoint ({e})") from None
    if CONFIG_KEY not in meta:
        raise UserError(f"{path}: safetensors file has no '{CONFIG_KEY}' metadata; not a project checkpoint")
    return state, json.loads(meta[CONFIG_KEY])


def is_project_checkpoint(path: str | os.PathLike) -> bool:
    """True if ``path`` looks like a safetensors file (checks the header, not the extension)."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
        if len(head) < 9:
            return False
        n = int.from_bytes(head[:8], "little")
        return 0 < n < 100_000_000 and head[8:9] == b"{"
    except OSError:
        return False


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through :func:`atomic_write` (CLIP state dicts, training state).

    It writes through an open file, not a path: given a path, ``torch.save`` names the records
    inside the zip after the file (here a random temporary name), so the same tensors would
    give different bytes, and a different sha256 identity (``clip_io.clip_identity``), on
    every run."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            torch.save(obj, f)

    atomic_write(path, write)


def load_training_state(path: str | os.PathLike) -> Any:
    """Load a file written by :func:`atomic_torch_save` without executing code (``weights_only=True``)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure is reported as one line
        raise UserError(f"{path}: cannot read training state ({e.__class__.__name__}: {e})") from None
