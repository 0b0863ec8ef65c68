"""Make the models of a finished `reproduce --preset toy` run the bundled ones, with manifest entries.

    python main.py reproduce --preset toy --workdir runs/reproduce
    python scripts/adopt_reproduce.py runs/reproduce            # then: python main.py eval-generator --data runs/reproduce/data --record

For each bundled model (both CLIPs, classifier, generator, flow, CVAE mapper, CVAE, GAN) whose
tensors differ from the run's, it copies the run's file into pretrained/ byte for byte; a bundled
file with the same tensors stays as it is (no new bytes in git; its sha256 may differ from the
run's file, which the entry then records as ``run_file_sha256``: the CLIP identities inside the
run's pairs and mappers are those). Each model gets a fresh manifest entry:
the exact command of its `reproduce` stage (from the stage's stamp), seed, stage wall time, and
metrics measured again on the run's data (CLIP zero-shot / retrieval, classifier accuracy, mapper
validation figures from the checkpoint, baseline steering accuracy with the adopted classifier).
It says, per model, whether the tensors equal the previously bundled ones. The generator's
quality figures come from `main.py eval-generator --record` afterwards.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import model.bundled as B  # noqa: E402  (B.PRETRAINED_DIR read at call time)
from model.reproduce import ARTIFACTS, REPO  # noqa: E402

# bundled name -> reproduce stage (the stamp holds its command)
STAGES = {"clip": "clip", "clip_eval": "clip_eval", "classifier": "classifier", "generator": "stylegan2",
          "flow": "flow", "cvae-mapper": "cvae-mapper", "cvae": "cvae", "gan": "gan"}


def _stamp(workdir: Path, stage: str) -> dict:
    p = workdir / "stamps" / f"{stage}.json"
    if not p.is_file():
        raise SystemExit(f"error: {workdir}: stage '{stage}' has not finished (no {p})")
    return json.loads(p.read_text())


def _command(argv: list[str]) -> str:
    return "python main.py " + " ".join(shlex.quote(a) for a in argv)


def _opt(argv: list[str], name: str, default=None):
    return argv[argv.index(name) + 1] if name in argv else default


def _metrics(name: str, path: Path, workdir: Path, stamp: dict) -> tuple[dict, dict]:
    """(metrics, extra manifest fields) of the adopted model ``name`` at ``path``."""
    from torch_utils.persistence import load_checkpoint

    data = str(workdir / ARTIFACTS["data"])
    argv = stamp["argv"]
    timing = {"wall_time_s": stamp["seconds"], "threads": int(_opt(argv, "--threads", 0)) or None}
    if name in ("clip", "clip_eval"):
        from model.train_clip import evaluate_clip

        return dict(timing, steps=int(_opt(argv, "--steps")), **evaluate_clip(str(path), data, progress=False)), \
            {"split_half": _opt(argv, "--split-half")}
    if name == "classifier":
        from model.classifier import evaluate_classifier

        return dict(timing, **evaluate_classifier(str(path), data)), {}
    _, cfg = load_checkpoint(path)
    if name == "generator":
        return {"kimg": cfg.get("kimg"), "training_wall_time_s": cfg.get("training_wall_time_s"), **timing}, \
            {"config": cfg.get("training", {}), "quality_command": f"python main.py eval-generator --data {data} --record"}
    if name in ("flow", "cvae-mapper"):
        pairs = _stamp(workdir, "pairs")
        meta = json.loads((workdir / ARTIFACTS["pairs"] / "meta.json").read_text())
        metrics = dict(timing, val=cfg.get("val"), steps=cfg.get("step"),
                       steps_per_s=round(cfg.get("step", 0) / max(stamp["seconds"], 1e-9), 3))
        extra = {"kind": cfg["kind"], "arch": cfg["arch"], "train": cfg["train"], "inference": cfg.get("inference", {}),
                 "pairs": {**{k: meta.get(k) for k in ("generator", "clip", "seed", "count", "shard_size")},
                           "n_train": cfg.get("n_train"), "n_val": cfg.get("n_val")},
                 "pairs_command": _command(pairs["argv"])}
        return metrics, extra
    # cvae / gan: the steering figures with the adopted classifier and CLIP (as scripts/toy_baselines.sh)
    from model.baselines import load_baseline, steering_accuracy
    from model.classifier import load_classifier
    from model.clip_io import load_clip

    prompts = [json.loads(line) for line in open(REPO / "prompts" / "toy.jsonl")]
    s = steering_accuracy(load_baseline(str(path)), load_classifier(str(B.PRETRAINED_DIR / B.NAMES["classifier"])), prompts,
                          n=4, seed=0, clip_model=load_clip(str(B.PRETRAINED_DIR / B.NAMES["clip"])))
    metrics = dict(timing, steps=cfg.get("step"), attribute_accuracy_toy_prompts=round(s["accuracy"], 4),
                   attribute_accuracy_chance=round(s["chance"], 4),
                   steering_eval="steering_accuracy(n=4, seed=0) on prompts/toy.jsonl with the bundled classifier; "
                                 "chance = the same images scored against the next prompt's attributes")
    extra = {"cond": "clip"}
    init = workdir / "stamps" / f"{name}_init.json"
    if init.is_file():
        extra["init_from_command"] = _command(json.loads(init.read_text())["argv"])
    return metrics, extra


def adopt(workdir: Path, dry_run: bool = False) -> dict[str, bool]:
    """Adopt every model of ``workdir``; returns {name: same tensors as the previously bundled model}."""
    from scripts.compare_models import PAIRS, compare

    wd = Path(workdir).resolve()

    files = {n: f for f, n in PAIRS.items()}
    stamps = {n: _stamp(wd, st) for n, st in STAGES.items()}  # all finished, or stop before touching anything
    report = {n: (B.PRETRAINED_DIR / B.NAMES[n]).is_file() and compare(wd / files[n], B.PRETRAINED_DIR / B.NAMES[n])["differ"] == 0
              for n in STAGES}
    copy = {n: not same for n, same in report.items()}
    # A copied CVAE / GAN checks the sha256 of its CLIP file at use: it needs the run's CLIP file too.
    if copy["cvae"] or copy["gan"]:
        copy["clip"] = copy["clip"] or B.sha256(wd / files["clip"]) != B.sha256(B.PRETRAINED_DIR / B.NAMES["clip"])
    # Order matters: the baselines' steering figures use the adopted classifier and CLIP.
    for name in STAGES:
        src, dst = wd / files[name], B.PRETRAINED_DIR / B.NAMES[name]
        same = report[name]
        what = ("differs from the bundled model" if not same else "same tensors as the bundled file") + \
            (": copied" if copy[name] else ", which stays")
        print(f"{name:12s} {src} -> {dst.relative_to(B.PRETRAINED_DIR.parent)}  ({what})", flush=True)
        if dry_run:
            continue
        if copy[name]:
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(dst.name + ".adopt.tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        metrics, extra = _metrics(name, dst, wd, stamps[name])
        seed = _opt(stamps[name]["argv"], "--seed")
        src_sha = B.sha256(src)
        if src_sha != B.sha256(dst):
            extra["run_file_sha256"] = src_sha
        # The entry's file / sha256 / bytes / command / seed / metrics fields: the same helper the
        # training commands use when they write a bundled file.
        B.record(name, dst, int(seed) if seed is not None else None, metrics=metrics,
                 command=_command(stamps[name]["argv"]),
                 rebuild=f"python main.py reproduce --preset toy --workdir WORKDIR (stage '{STAGES[name]}'), "
                         f"then python scripts/adopt_reproduce.py WORKDIR",
                 reproduce_finished=stamps[name].get("finished"), same_tensors_as_previous_bundle=same, **extra)
    if not dry_run:
        print(f"manifest updated; next: python main.py eval-generator --data {wd / ARTIFACTS['data']} --record")
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir", type=Path, help="the --workdir of a finished `reproduce --preset toy` run")
    ap.add_argument("--dry-run", action="store_true", help="only say what would change")
    args = ap.parse_args()
    adopt(args.workdir, dry_run=args.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
