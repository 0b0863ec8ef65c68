"""Reproducibility tools: scripts/compare_models.py decides by tensors, not metadata; torch files depend on their tensors only."""
import subprocess
import sys
from pathlib import Path

import torch

from torch_utils.persistence import atomic_torch_save, save_checkpoint

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "compare_models.py"


def _run(*paths):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, paths)], capture_output=True, text=True)


def test_tensors_decide_not_metadata(tmp_path):
    sd = {"w": torch.randn(4, 3), "step": torch.tensor(7)}
    save_checkpoint(tmp_path / "a.safetensors", sd, {"lr": 0.1, "training_wall_time_s": 1.4})
    save_checkpoint(tmp_path / "b.safetensors", sd, {"lr": 0.1, "training_wall_time_s": 1.7})
    r = _run(tmp_path / "a.safetensors", tmp_path / "b.safetensors")
    assert r.returncode == 0 and "identical" in r.stdout and "config same" in r.stdout

    sd2 = dict(sd, w=sd["w"] + torch.eye(4, 3) * 0.25)
    save_checkpoint(tmp_path / "c.safetensors", sd2, {"lr": 0.2})
    r = _run(tmp_path / "a.safetensors", tmp_path / "c.safetensors")
    assert r.returncode == 1 and "DIFFERENT" in r.stdout and "0.25" in r.stdout and "differs in lr" in r.stdout


def test_torch_state_dicts(tmp_path):
    sd = {"w": torch.randn(3).half()}
    atomic_torch_save(sd, tmp_path / "a.pt")
    atomic_torch_save({"w": sd["w"].clone()}, tmp_path / "b.pt")
    assert _run(tmp_path / "a.pt", tmp_path / "b.pt").returncode == 0
    atomic_torch_save({"w": sd["w"] + 1}, tmp_path / "c.pt")
    assert _run(tmp_path / "a.pt", tmp_path / "c.pt").returncode == 1


def test_torch_files_depend_on_their_tensors_only(tmp_path):
    """The same tensors saved to two paths give the same bytes (a file's sha256 is a CLIP's identity)."""
    sd = {"w": torch.arange(6.0).reshape(2, 3), "n": torch.tensor(3)}
    atomic_torch_save(sd, tmp_path / "one.pt")
    atomic_torch_save(sd, tmp_path / "other_name.pt")
    assert (tmp_path / "one.pt").read_bytes() == (tmp_path / "other_name.pt").read_bytes()
    assert torch.equal(torch.load(tmp_path / "other_name.pt", weights_only=True)["w"], sd["w"])


def test_unreadable_file_is_one_line(tmp_path):
    save_checkpoint(tmp_path / "a.safetensors", {"w": torch.ones(2)}, {})
    (tmp_path / "cut.safetensors").write_bytes((tmp_path / "a.safetensors").read_bytes()[:20])
    r = _run(tmp_path / "cut.safetensors", tmp_path / "a.safetensors")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "cut.safetensors" in r.stderr
