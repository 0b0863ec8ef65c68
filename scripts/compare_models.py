"""Compare the models of a `reproduce` work folder with the bundled ones, tensor by tensor.

    python scripts/compare_models.py runs/reproduce            # every artifact vs pretrained/
    python scripts/compare_models.py A.safetensors B.safetensors

File hashes cannot answer "is it the same model": project checkpoints carry their training wall
time in the metadata. This reads the tensors only (safetensors files, and the CLIPs' float16
state dicts with ``torch.load(weights_only=True)``) and prints, for each pair, the number of
tensors, how many differ, the largest absolute difference, and the config entries that differ
(wall-time fields left out; a dataset path differs when the data lives elsewhere). Exit status 1
if any tensor differs, 2 if a file cannot be read.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from model.bundled import NAMES, PRETRAINED_DIR  # noqa: E402

# reproduce artifact file -> bundled model name (model.bundled.NAMES)
PAIRS = {
    "clip_cond.pt": "clip",
    "clip_eval.pt": "clip_eval",
    "classifier.safetensors": "classifier",
    "stylegan2.safetensors": "generator",
    "flow.safetensors": "flow",
    "cvae_mapper.safetensors": "cvae-mapper",
    "cvae.safetensors": "cvae",
    "gan.safetensors": "gan",
}
# Config keys that record how long a run took, not what it made.
_TIMING = ("wall_time", "training_wall_time_s", "cpu_time", "seconds", "steps_per_s", "date")


def _tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    if path.suffix == ".safetensors":
        from torch_utils.persistence import load_checkpoint

        return load_checkpoint(path)
    from torch_utils.persistence import load_training_state  # torch.load(weights_only=True), one-line errors

    return load_training_state(path), {}


def _strip(cfg):
    if isinstance(cfg, dict):
        return {k: _strip(v) for k, v in cfg.items() if not any(t in k for t in _TIMING)}
    if isinstance(cfg, list):
        return [_strip(v) for v in cfg]
    return cfg


def compare(a: Path, b: Path) -> dict:
    ta, ca = _tensors(a)
    tb, cb = _tensors(b)
    keys = sorted(set(ta) | set(tb))
    differ, worst = 0, 0.0
    for k in keys:
        if k not in ta or k not in tb or ta[k].shape != tb[k].shape or ta[k].dtype != tb[k].dtype:
            differ += 1
            worst = float("inf")
            continue
        if not torch.equal(ta[k], tb[k]):
            differ += 1
            if ta[k].is_floating_point():
                worst = max(worst, (ta[k].double() - tb[k].double()).abs().max().item())
            else:
                worst = float("inf")
    return {"tensors": len(keys), "differ": differ, "max_abs_diff": worst, "config_diff": _config_diff(_strip(ca), _strip(cb))}


def _config_diff(a, b, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two configs."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _config_diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+", help="a reproduce work folder, or two checkpoint files")
    args = ap.parse_args()
    if len(args.paths) == 2:
        pairs = [(Path(args.paths[0]), Path(args.paths[1]))]
    elif len(args.paths) == 1 and Path(args.paths[0]).is_dir():
        wd = Path(args.paths[0])
        pairs = [(wd / f, PRETRAINED_DIR / NAMES[n]) for f, n in PAIRS.items()]
    else:
        print("error: give a reproduce work folder or two checkpoint files", file=sys.stderr)
        return 2
    same = True
    print(f"{'file':28s} {'tensors':>7s} {'differ':>6s} {'max |diff|':>10s}  {'tensors':9s}  config")
    for a, b in pairs:
        if not a.is_file() or not b.is_file():
            print(f"{a.name:28s} missing: {a if not a.is_file() else b}")
            same = False
            continue
        try:
            r = compare(a, b)
        except Exception as e:  # noqa: BLE001 - an unreadable file is one line, not a traceback
            print(f"error: {e}", file=sys.stderr)
            return 2
        ok = r["differ"] == 0
        same &= ok
        cfg = "same" if not r["config_diff"] else "differs in " + ", ".join(r["config_diff"])
        print(f"{a.name:28s} {r['tensors']:7d} {r['differ']:6d} {r['max_abs_diff']:10.3g}  "
              f"{'identical' if ok else 'DIFFERENT':9s}  config {cfg}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
