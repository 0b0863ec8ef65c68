"""One command from nothing to RESULTS.md: ``python main.py reproduce --preset toy [--quick]``.

Every stage is one call of the project's own command line (``main.py ...``), in order:
data -> CLIPs -> classifier -> StyleGAN2 -> pairs -> mappers -> baselines -> prompts -> eval -> table.
After a stage succeeds, ``WORKDIR/stamps/<stage>.json`` records its exact command; a later run
skips a stage whose stamp matches its command and whose outputs all exist, so a killed run
resumes at the first unfinished stage: a training stage that was killed half-way is continued
with its command's own ``--resume`` (from the training state it left), and every stage that
uses an artifact remade since the stage last ran (in this run, or in an earlier ``--only`` run)
is run again. A stage whose command does not exist in this version of the
command line is reported and skipped; the stages after it use the bundled model of that
name instead (or, for the generator, the NVIDIA-format test fixture) when there is one.

Adding a stage is one ``Stage(...)`` line in ``stage_table``.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from torch_utils.misc import UserError

REPO = Path(__file__).resolve().parent.parent

# Sizes of every stage: the full toy preset, and --quick (a smoke run in a few CPU minutes).
PRESETS: dict[str, dict[str, Any]] = {
    # The full preset is the recipe of the bundled toy models (pretrained/manifest.json): the
    # same commands, sizes and seeds, one torch thread per stage except the StyleGAN2 (two threads;
    # the thread count changes its floating-point sums, so it is part of the recipe).
    "toy": {
        "data_n": 30000,
        "clip": ["--steps", "5200", "--threads", "1"],
        "classifier": ["--epochs", "6", "--threads", "1"],
        "stylegan2": ["--res", "64", "--kimg", "320", "--batch-size", "16", "--cbase", "1024", "--cmax", "64",
                      "--map-layers", "2", "--z-dim", "128", "--w-dim", "128", "--gamma", "0.1", "--snap-kimg", "2",
                      "--threads", "2"],
        "embed": [],
        "pairs_n": 196608,
        "pairs": ["--batch-size", "64", "--threads", "1"],
        "flow": ["--steps", "6000", "--batch-size", "256", "--lr", "2e-3", "--eval-every", "1000", "--threads", "1",
                 "--layers", "4", "--hidden", "128", "--bins", "8", "--context-dim", "64", "--noise-scale", "1.5",
                 "--no-modality-shift"],
        # The modality-gap ablation's flow without noise augmentation (evaluated with and without the shift).
        "flow_plain": ["--steps", "6000", "--batch-size", "256", "--lr", "2e-3", "--eval-every", "1000", "--threads", "1",
                       "--layers", "4", "--hidden", "128", "--bins", "8", "--context-dim", "64", "--noise-scale", "0",
                       "--no-modality-shift"],
        "cvae_mapper": ["--steps", "3000", "--batch-size", "256", "--lr", "1e-3", "--eval-every", "500", "--threads", "1",
                        "--latent-dim", "32", "--hidden", "256", "--noise-scale", "0", "--no-modality-shift"],
        # Baselines: an attribute-conditioned warm start, then CLIP-text conditioning from its state.
        "cvae_init": ["--steps", "300", "--batch-size", "32", "--threads", "1", "--snap-every", "100"],
        # --sigma 1.0: with the default 0.1 the latent carries everything and the decoder ignores
        # the text (README, Baselines).
        "cvae": ["--max-images", "2000", "--kl-warmup", "0", "--sigma", "1.0", "--steps", "3000", "--batch-size", "32",
                 "--threads", "1", "--snap-every", "100"],
        "gan_init": ["--ch", "16", "--steps", "300", "--batch-size", "32", "--threads", "1", "--snap-every", "100"],
        "gan": ["--ch", "16", "--max-images", "2000", "--steps", "3000", "--batch-size", "32", "--threads", "1",
                "--snap-every", "100"],
        "prompts_n": 120,
        "eval": ["--n-per-prompt", "4", "--batch-size", "16"],
        "eval_models": ["flow", "cvae-mapper", "cvae", "gan", "unconditional", "real"],
        # clip-opt costs seconds per image on a CPU: scored on the first 24 prompts, 2 images each
        # (the table compares the flow with it on the same prompts).
        "eval_slow": ["--max-prompts", "24", "--n-per-prompt", "2", "--batch-size", "16", "--steps", "50"],
        "ablation": True,
    },
    "toy-quick": {
        "data_n": 400,
        "clip": ["--steps", "6", "--batch-size", "32", "--vision-width", "64", "--vision-layers", "1",
                 "--text-layers", "1", "--embed-dim", "32", "--no-eval"],
        "classifier": ["--epochs", "0.2", "--batch-size", "32", "--channels", "8,16", "--no-eval"],
        "stylegan2": ["--kimg", "0.016", "--batch-size", "8", "--res", "32", "--cbase", "512", "--cmax", "32",
                      "--z-dim", "32", "--w-dim", "32", "--snap-kimg", "0.016", "--threads", "1"],
        "embed": ["--captions-per-image", "2"],
        "pairs_n": 256,
        "flow": ["--steps", "30", "--batch-size", "64", "--eval-every", "15", "--layers", "2", "--hidden", "32", "--bins", "4", "--context-dim", "16"],
        "flow_plain": None,
        "cvae_mapper": ["--steps", "30", "--batch-size", "64", "--eval-every", "15", "--latent-dim", "8", "--hidden", "32"],
        "cvae": ["--steps", "10", "--batch-size", "16", "--ch", "8", "--snap-every", "10", "--threads", "1"],
        "gan": ["--steps", "10", "--batch-size", "16", "--ch", "8", "--snap-every", "10", "--threads", "1"],
        "prompts_n": 8,
        "eval": ["--n-per-prompt", "2", "--batch-size", "8", "--steps", "1"],
        "eval_models": ["flow", "cvae-mapper", "cvae", "gan", "clip-opt", "unconditional", "real"],
        "ablation": True,
    },
}

# What a stage makes, by artifact name (the names of model.bundled.NAMES where they exist).
ARTIFACTS = {
    "data": "data",
    "clip": "clip_cond.pt",
    "clip_eval": "clip_eval.pt",
    "classifier": "classifier.safetensors",
    "generator": "stylegan2.safetensors",
    "pairs": "pairs",
    "flow": "flow.safetensors",
    "flow_plain": "flow_plain.safetensors",
    "cvae-mapper": "cvae_mapper.safetensors",
    "cvae": "cvae.safetensors",
    "gan": "gan.safetensors",
    "cvae_init": "cvae_init_run",
    "gan_init": "gan_init_run",
    "prompts": "prompts.jsonl",
    "results": "results.json",
    "results_slow": "results_clip_opt.done",
}


@dataclass
class Stage:
    name: str
    argv: list[str] | None  # main.py arguments; None for an in-process function stage
    makes: list[str]  # artifact names
    needs: list[str] = field(default_factory=list)
    fn: Callable[[], Any] | None = None
    outputs_extra: list[Path] = field(default_factory=list)
    resume_state: Path | None = None  # the command's own training state: if present (a killed run), add --resume


def _command_exists(argv: list[str]) -> bool:
    """True if ``main.py argv[0] [argv[1]]`` is a command of the current command line."""
    import click

    import main as cli_main

    group = cli_main.cli
    ctx = click.Context(group)
    cmd = group.get_command(ctx, argv[0])
    if cmd is None:
        return False
    if isinstance(cmd, click.Group):
        return len(argv) > 1 and cmd.get_command(ctx, argv[1]) is not None
    return True


def _fallback(name: str) -> Path | None:
    """A ready-made model to use when the stage that makes ``name`` cannot run."""
    from model.bundled import NAMES, bundled_path

    if name in NAMES:
        p = bundled_path(name, required=False)
        if p is not None:
            return p
    if name == "generator":
        fx = REPO.parent / "shared" / "fixtures" / "stylegan2" / "ada_tiny32.pkl"
        if fx.is_file():
            return fx
    return None


def stage_table(preset: str, workdir: Path, assets: Path) -> list[Stage]:
    """The ordered stages of ``preset`` (``toy`` or ``toy-quick``)."""
    P = PRESETS[preset]
    w = lambda name: str(workdir / ARTIFACTS[name])  # noqa: E731
    quick = preset.endswith("quick")
    stages = [
        Stage("data", ["data", "synth", "--out", w("data"), "--n", str(P["data_n"]), "--seed", "0"], ["data"]),
        Stage("clip", ["train", "clip", "--data", "{data}", "--out", w("clip"), "--seed", "0", "--split-half", "0", *P["clip"]], ["clip"], ["data"],
              resume_state=Path(w("clip") + ".state")),
        Stage("clip_eval", ["train", "clip", "--data", "{data}", "--out", w("clip_eval"), "--seed", "1", "--split-half", "1", *P["clip"]], ["clip_eval"], ["data"],
              resume_state=Path(w("clip_eval") + ".state")),
        Stage("classifier", ["train", "classifier", "--data", "{data}", "--out", w("classifier"), "--seed", "0", *P["classifier"]], ["classifier"], ["data"],
              resume_state=Path(w("classifier") + ".state")),
        Stage("stylegan2", ["train", "stylegan", "--data", "{data}", "--out", str(workdir / "stylegan_run"), "--export", w("generator"), "--seed", "0", *P["stylegan2"]], ["generator"], ["data"],
              resume_state=workdir / "stylegan_run" / "training-state.pt"),
        Stage("pairs", ["pairs", "--generator", "{generator}", "--clip", "{clip}", "--n", str(P["pairs_n"]), "--out", w("pairs"), "--seed", "0",
                        *P.get("pairs", [])], ["pairs"], ["generator", "clip"]),
        Stage("flow", ["train", "flow", "--pairs", "{pairs}", "--out", w("flow"), "--seed", "0", *P["flow"]], ["flow"], ["pairs"],
              resume_state=Path(w("flow") + ".state")),
        Stage("cvae-mapper", ["train", "cvae-mapper", "--pairs", "{pairs}", "--out", w("cvae-mapper"), "--seed", "0", *P["cvae_mapper"]], ["cvae-mapper"], ["pairs"],
              resume_state=Path(w("cvae-mapper") + ".state")),
        Stage("embed", ["data", "embed", "--data", "{data}", "--clip", "{clip}", *P["embed"]], [], ["data", "clip"]),
    ]
    for kind in ("cvae", "gan"):
        init: list[str] = []
        needs = ["data", "clip"]
        if P.get(f"{kind}_init"):
            # Attribute-conditioned warm start; its training state starts the CLIP-conditioned run.
            run = workdir / ARTIFACTS[f"{kind}_init"]
            stages.append(Stage(f"{kind}_init", ["train", kind, "--data", "{data}", "--cond", "attr", "--out", str(run / "model.safetensors"),
                                                 "--run-dir", str(run), "--seed", "0", *P[f"{kind}_init"]], [f"{kind}_init"], ["data"],
                                resume_state=run / "state.pt"))
            init = ["--init-from", f"{{{kind}_init}}/state.pt"]
            needs.append(f"{kind}_init")
        stages.append(Stage(kind, ["train", kind, "--data", "{data}", "--cond", "clip", "--clip", "{clip}", "--out", w(kind),
                                   "--run-dir", str(workdir / f"{kind}_run"), *init, "--seed", "0", *P[kind]], [kind], needs,
                            resume_state=workdir / f"{kind}_run" / "state.pt"))
    if P.get("flow_plain"):
        stages.append(Stage("flow_plain", ["train", "flow", "--pairs", "{pairs}", "--out", w("flow_plain"), "--seed", "0", *P["flow_plain"]],
                            ["flow_plain"], ["pairs"], resume_state=Path(w("flow_plain") + ".state")))
    stages.append(Stage("prompts", None, ["prompts"], ["data"]))
    stages.append(Stage("eval", ["eval"], ["results"], ["prompts", "clip_eval", "classifier", "data"]))
    if P.get("eval_slow"):
        stages.append(Stage("eval_clip_opt", ["eval", "--model", "clip-opt", "--prompts", "{prompts}", "--json", w("results"),
                                              "--clip-eval", "{clip_eval}", "--classifier", "{classifier}", "--data", "{data}",
                                              "--clip", "{clip}", "--generator", "{generator}", *P["eval_slow"]],
                            ["results_slow"], ["results", "prompts", "clip_eval", "classifier", "data", "clip", "generator"]))
    stages.append(Stage("table", ["table", "--json", "{results}", "--out", str(assets)], [],
                        ["results", "results_slow"] if P.get("eval_slow") else ["results"], outputs_extra=[assets / "RESULTS.md"]))
    return stages


class Runner:
    def __init__(self, preset: str, workdir: Path, assets: Path, echo=print):
        self.preset, self.workdir, self.assets, self.echo = preset, workdir, assets, echo
        self.P = PRESETS[preset]
        self.stamps = workdir / "stamps"
        self.made: dict[str, Path] = {}  # artifact -> path (made here, or a fallback)
        self.fresh: set[str] = set()  # artifacts (re)made in this run: the stages that use them rerun
        self.producer: dict[str, str] = {}  # artifact -> the name of the stage that makes it

    def inputs(self, stage: Stage) -> list[str]:
        """The artifacts ``stage`` reads: its needs, and for ``eval`` every model it scores."""
        if stage.name != "eval":
            return list(stage.needs)
        scored = [m for m in self.P["eval_models"] if m in ARTIFACTS]  # the models eval_argv passes
        if self.P.get("ablation"):
            scored += ["flow", "flow_plain"]
        return list(stage.needs) + scored + ["clip", "generator"]

    def newer_inputs(self, stage: Stage) -> list[str]:
        """Inputs remade (by an earlier invocation, e.g. another ``--only``) after ``stage`` last finished."""
        st = self._stamp(stage)
        if not st.is_file():
            return []
        mine = st.stat().st_mtime_ns
        out = []
        for a in self.inputs(stage):
            prod = self.producer.get(a)
            if prod is None:
                continue
            theirs = self.stamps / f"{prod}.json"
            if theirs.is_file() and theirs.stat().st_mtime_ns > mine:
                out.append(a)
        return out

    def path_of(self, artifact: str) -> Path | None:
        if artifact in self.made:
            return self.made[artifact]
        own = self.workdir / ARTIFACTS[artifact]
        return own if own.exists() else None

    def resolve(self, stage: Stage) -> list[str] | None:
        argv = list(stage.argv or [])
        if stage.name == "eval":
            argv = self.eval_argv()
        subst = {}
        for a in stage.needs:
            p = self.path_of(a)
            if p is None:
                return None
            subst[a] = str(p)
        return [x.format(**subst) if "{" in x else x for x in argv]

    def eval_argv(self) -> list[str]:
        models = []
        for m in self.P["eval_models"]:
            if m in ("flow", "cvae-mapper", "cvae", "gan"):
                p = self.path_of(m)
                if p is None:
                    self.echo(f"  eval: no '{m}' model, left out")
                    continue
                models.append(f"{m}={m}@{p}")
            else:
                models.append(m)
        if self.P.get("ablation") and self.path_of("flow") is not None:
            f = self.path_of("flow")
            plain = self.path_of("flow_plain")
            if plain is not None:
                # flow: noise-augmented e (the default); flow_plain: the same recipe without noise.
                models += [f"gap-none=flow@{plain}+noshift", f"gap-shift=flow@{plain}+shift",
                           f"gap-noise=flow@{f}+noshift", f"gap-noise+shift=flow@{f}+shift"]
            else:
                models += [f"gap-noshift=flow@{f}+noshift", f"gap-shift=flow@{f}+shift"]
        argv = ["eval", "--model", ",".join(models), "--prompts", "{prompts}", "--json", str(self.workdir / ARTIFACTS["results"]),
                "--clip-eval", "{clip_eval}", "--classifier", "{classifier}", "--data", "{data}", *self.P["eval"]]
        for a, opt in (("clip", "--clip"), ("generator", "--generator")):
            p = self.path_of(a)
            if p is not None:
                argv += [opt, str(p)]
        if self.preset.endswith("quick"):
            argv += ["--max-prompts", str(self.P["prompts_n"])]
        return argv

    def _remove_outputs(self, stage: Stage) -> None:
        import shutil

        self._stamp(stage).unlink(missing_ok=True)
        paths = [self.workdir / ARTIFACTS[a] for a in stage.makes] + list(stage.outputs_extra)
        if stage.resume_state is not None:
            paths.append(stage.resume_state)
        for p in paths:
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()

    def _stamp(self, stage: Stage) -> Path:
        return self.stamps / f"{stage.name}.json"

    def done(self, stage: Stage, argv: list[str]) -> bool:
        st = self._stamp(stage)
        if not st.is_file():
            return False
        try:
            rec = json.loads(st.read_text())
        except json.JSONDecodeError:
            return False
        if rec.get("argv") != argv:
            return False
        return all((self.workdir / ARTIFACTS[a]).exists() for a in stage.makes) and all(p.exists() for p in stage.outputs_extra)

    def run_stage(self, stage: Stage, dry_run: bool = False) -> str:
        if stage.argv is not None and stage.name != "eval" and not _command_exists(stage.argv):
            for a in stage.makes:
                fb = _fallback(a)
                if fb is not None:
                    self.made[a] = fb
            used = ", ".join(f"{a} <- {self.made[a]}" for a in stage.makes if a in self.made) or "nothing to use instead"
            return f"missing command `main.py {' '.join(stage.argv[:2])}`; using {used}"
        if stage.name == "prompts":
            argv = ["(function) make_toy_prompts", str(self.P["prompts_n"]), str(self.path_of("data"))]
        else:
            argv = self.resolve(stage)
        if argv is None:
            missing = [a for a in stage.needs if self.path_of(a) is None]
            return f"skipped: needs {', '.join(missing)}"
        stale = sorted((set(self.inputs(stage)) & self.fresh) | set(self.newer_inputs(stage)))
        if not stale and self.done(stage, argv):
            for a in stage.makes:
                self.made[a] = self.workdir / ARTIFACTS[a]
            return "done before (stamp matches), skipped"
        if dry_run:
            for a in stage.makes:
                self.made[a] = self.workdir / ARTIFACTS[a]
            self.fresh.update(stage.makes)
            return "to run: " + (" ".join(shlex.quote(x) for x in argv))
        t0 = time.perf_counter()
        if stale:
            self.echo(f"  {stage.name}: reruns, {', '.join(stale)} remade since it last ran")
        self.echo(f"[{stage.name}] python main.py {' '.join(shlex.quote(x) for x in argv)}" if stage.argv is not None
                  else f"[{stage.name}] {argv[0]}")
        if stage.name == "prompts":
            from model.evaluate import make_toy_prompts

            make_toy_prompts(self.workdir / ARTIFACTS["prompts"], n=self.P["prompts_n"], seed=0, data=self.path_of("data"))
        else:
            import main as cli_main

            run_argv = list(argv)
            started = self.stamps / f"{stage.name}.started.json"
            killed_same = started.is_file() and json.loads(started.read_text()).get("argv") == argv
            if stale or self._stamp(stage).is_file() or not killed_same:
                # Its inputs or its own configuration changed since the outputs were made (or a
                # killed run of it had another configuration): start over.
                self._remove_outputs(stage)
            elif stage.resume_state is not None and stage.resume_state.exists():
                run_argv.append("--resume")  # a killed run of this very stage: continue it
                self.echo(f"  {stage.name}: continuing from {stage.resume_state}")
            self.stamps.mkdir(parents=True, exist_ok=True)
            started.write_text(json.dumps({"argv": argv}))
            import torch

            threads = torch.get_num_threads()
            try:
                rc = cli_main.main(run_argv)
            finally:
                torch.set_num_threads(threads)  # a stage's --threads must not leak into the next one
            if rc != 0:
                raise UserError(f"stage '{stage.name}' failed (exit status {rc}); fix it and rerun `reproduce` to resume here")
        for a in stage.makes:
            self.made[a] = self.workdir / ARTIFACTS[a]
            if ARTIFACTS[a].endswith(".done"):
                (self.workdir / ARTIFACTS[a]).touch()  # a stage that adds to another's output
        self.fresh.update(stage.makes)
        if stage.name == "table":
            self.fresh.add("_table")
        self.stamps.mkdir(parents=True, exist_ok=True)
        tmp = self._stamp(stage).with_suffix(".tmp")
        tmp.write_text(json.dumps({"argv": argv, "seconds": round(time.perf_counter() - t0, 1),
                                   "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}, indent=2))
        os.replace(tmp, self._stamp(stage))
        (self.stamps / f"{stage.name}.started.json").unlink(missing_ok=True)
        return f"ran in {time.perf_counter() - t0:.1f} s"


def reproduce(preset: str = "toy", quick: bool = False, workdir: str | os.PathLike = "runs/reproduce",
              assets: str | os.PathLike | None = None, only: str | None = None, dry_run: bool = False, echo=None) -> dict[str, str]:
    """Run (or, with ``dry_run``, list) the stages of ``preset``; returns {stage: what happened}."""
    import click

    echo = echo or click.echo
    if preset not in ("toy",):
        raise UserError(f"--preset {preset}: unknown; choices: toy")
    key = preset + ("-quick" if quick else "")
    workdir = Path(workdir)
    assets = Path(assets) if assets is not None else workdir / "assets"
    workdir.mkdir(parents=True, exist_ok=True)
    runner = Runner(key, workdir, assets, echo=echo)
    stages = stage_table(key, workdir, assets)
    runner.producer = {a: s.name for s in stages for a in s.makes}
    names = [s.name for s in stages]
    chosen = None
    if only:
        chosen = [x.strip() for x in only.split(",") if x.strip()]
        bad = [x for x in chosen if x not in names]
        if bad:
            raise UserError(f"--only {bad[0]}: unknown stage; stages: {', '.join(names)}")
    report: dict[str, str] = {}
    t0 = time.perf_counter()
    for s in stages:
        if chosen is not None and s.name not in chosen:
            # Still register what earlier runs made, for the stages after it.
            for a in s.makes:
                if (workdir / ARTIFACTS[a]).exists():
                    runner.made[a] = workdir / ARTIFACTS[a]
                elif _fallback(a) is not None:
                    runner.made[a] = _fallback(a)
            continue
        report[s.name] = runner.run_stage(s, dry_run=dry_run)
        echo(f"  {s.name}: {report[s.name]}")
    total = time.perf_counter() - t0
    echo(f"reproduce --preset {preset}{' --quick' if quick else ''}: {total:.0f} s wall time; workdir {workdir}; table {assets / 'RESULTS.md'}")
    report["_seconds"] = f"{total:.1f}"
    return report
