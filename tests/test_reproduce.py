"""`reproduce`: stage order, stamps (a finished stage is skipped, a changed one reruns), missing commands."""
import json
import os

import pytest

import model.reproduce as R


def _tiny_table(n):
    def table(preset, workdir, assets):
        w = lambda a: str(workdir / R.ARTIFACTS[a])  # noqa: E731
        return [
            R.Stage("data", ["data", "synth", "--out", w("data"), "--n", str(n), "--seed", "0", "--workers", "1"], ["data"]),
            R.Stage("prompts", None, ["prompts"], ["data"]),
            R.Stage("future", ["train", "no-such-command", "--out", w("gan")], ["gan"]),
            R.Stage("after", ["data", "synth", "--out", "{gan}"], [], ["gan"]),
        ]
    return table


def test_stamps_skip_and_rerun(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "stage_table", _tiny_table(20))
    monkeypatch.setattr(R, "_fallback", lambda name: None)
    PRESET = dict(R.PRESETS["toy-quick"], prompts_n=5)
    monkeypatch.setitem(R.PRESETS, "toy-quick", PRESET)
    lines = []
    rep = R.reproduce("toy", quick=True, workdir=tmp_path, echo=lines.append)
    assert rep["data"].startswith("ran") and rep["prompts"].startswith("ran")
    assert rep["future"].startswith("missing command `main.py train no-such-command`")
    assert rep["after"] == "skipped: needs gan"
    assert (tmp_path / "data" / "list_attr_celeba.txt").is_file()
    assert len((tmp_path / "prompts.jsonl").read_text().splitlines()) == 5
    stamp = json.loads((tmp_path / "stamps" / "data.json").read_text())
    assert stamp["argv"][:2] == ["data", "synth"]

    # Second run: everything done is skipped.
    rep = R.reproduce("toy", quick=True, workdir=tmp_path, echo=lines.append)
    assert "skipped" in rep["data"] and "skipped" in rep["prompts"]

    # A missing output reruns its stage; a changed configuration reruns the stage.
    os.unlink(tmp_path / "prompts.jsonl")
    rep = R.reproduce("toy", quick=True, workdir=tmp_path, echo=lines.append)
    assert "skipped" in rep["data"] and rep["prompts"].startswith("ran")
    monkeypatch.setattr(R, "stage_table", _tiny_table(24))
    rep = R.reproduce("toy", quick=True, workdir=tmp_path, echo=lines.append)
    assert rep["data"].startswith("ran")

    # Stages run one at a time (--only, e.g. in parallel lanes): a stage whose input was remade
    # by an earlier invocation reruns although its own command is unchanged.
    monkeypatch.setattr(R, "stage_table", _tiny_table(20))
    rep = R.reproduce("toy", quick=True, workdir=tmp_path, only="data", echo=lines.append)
    assert rep["data"].startswith("ran") and "prompts" not in rep
    lines.clear()
    rep = R.reproduce("toy", quick=True, workdir=tmp_path, only="prompts", echo=lines.append)
    assert rep["prompts"].startswith("ran"), rep
    assert any("data remade since it last ran" in x for x in lines)
    rep = R.reproduce("toy", quick=True, workdir=tmp_path, only="prompts", echo=lines.append)
    assert "skipped" in rep["prompts"]


def test_killed_stage_resumes_only_with_the_same_configuration(tmp_path, monkeypatch):
    """A stage killed half-way continues with --resume when rerun unchanged, and starts over
    (its partial outputs removed) when its command changed in between."""
    calls = []
    monkeypatch.setattr(R, "stage_table", _tiny_table(20))
    monkeypatch.setattr(R, "_fallback", lambda name: None)
    import main as cli_main

    monkeypatch.setattr(cli_main, "main", lambda argv: calls.append(list(argv)) or 0)
    stage = R.Stage("data", ["data", "synth", "--out", str(tmp_path / "data"), "--n", "20"], ["data"],
                    resume_state=tmp_path / "data" / "state.pt")
    runner = R.Runner("toy-quick", tmp_path, tmp_path / "assets", echo=lambda *a: None)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "state.pt").write_text("half-way")
    (tmp_path / "stamps").mkdir()
    (tmp_path / "stamps" / "data.started.json").write_text('{"argv": ["data", "synth", "--out", "%s", "--n", "20"]}' % (tmp_path / "data"))
    runner.run_stage(stage)
    assert calls[-1][-1] == "--resume"
    assert not (tmp_path / "stamps" / "data.started.json").exists()  # finished: the stamp replaces it

    (tmp_path / "stamps" / "data.json").unlink()
    (tmp_path / "stamps" / "data.started.json").write_text('{"argv": ["data", "synth", "--n", "999"]}')
    runner.run_stage(stage)
    assert calls[-1][-1] != "--resume" and not (tmp_path / "data").exists()


def test_dry_run_lists_every_stage_in_order(tmp_path):
    lines = []
    rep = R.reproduce("toy", quick=True, workdir=tmp_path / "w", dry_run=True, echo=lines.append)
    names = [k for k in rep if not k.startswith("_")]
    assert names[:4] == ["data", "clip", "clip_eval", "classifier"]
    assert names[-3:] == ["prompts", "eval", "table"]
    assert rep["data"].startswith("to run: data synth")
    assert not (tmp_path / "w" / "data").exists()


def test_unknown_preset_and_stage(tmp_path):
    from torch_utils.misc import UserError

    with pytest.raises(UserError, match="choices: toy"):
        R.reproduce("ffhq", workdir=tmp_path)
    with pytest.raises(UserError, match="unknown stage"):
        R.reproduce("toy", quick=True, workdir=tmp_path, only="bogus")


def test_reproduce_quick_end_to_end(tmp_path, monkeypatch):
    """From an empty folder to a complete RESULTS.md with every stage shrunk (about 20 s on 2 cores)."""
    rep = R.reproduce("toy", quick=True, workdir=tmp_path, echo=lambda *a: None)
    ran = [k for k, v in rep.items() if not k.startswith("_")]
    assert all(rep[k].startswith("ran") for k in ran), rep
    md = (tmp_path / "assets" / "RESULTS.md").read_text()
    assert "## Metrics" in md and "## Samples" in md and "## Speed" in md
    for method in R.PRESETS["toy-quick"]["eval_models"]:
        assert f"| `{method}` |" in md, method
    # A second run finds every stage done and reruns nothing.
    rep = R.reproduce("toy", quick=True, workdir=tmp_path, echo=lambda *a: None)
    assert all("skipped" in rep[k] for k in ran), rep
    # A flow retrained later (e.g. by `reproduce --only flow`): eval, which scores it, and the table rerun.
    flow_stamp = tmp_path / "stamps" / "flow.json"
    later = (tmp_path / "stamps" / "table.json").stat().st_mtime + 10
    os.utime(flow_stamp, (later, later))
    rep = R.reproduce("toy", quick=True, workdir=tmp_path, dry_run=True, echo=lambda *a: None)
    assert rep["eval"].startswith("to run") and rep["table"].startswith("to run"), rep
    assert "skipped" in rep["flow"] and "skipped" in rep["cvae-mapper"] and "skipped" in rep["pairs"], rep

    # scripts/adopt_reproduce.py makes the run's models the bundled ones (here into a scratch folder).
    import model.bundled as B
    from scripts.adopt_reproduce import adopt
    from scripts.compare_models import compare

    monkeypatch.setattr(B, "PRETRAINED_DIR", tmp_path / "pretrained")
    monkeypatch.setattr(B, "MANIFEST", tmp_path / "pretrained" / "manifest.json")
    assert not any(adopt(tmp_path).values())  # nothing bundled there before
    m = B.read_manifest()
    assert sorted(m) == sorted(B.NAMES)
    for name, entry in m.items():
        path = tmp_path / entry["file"]
        assert entry["sha256"] == B.sha256(path) and entry["command"].startswith("python main.py train "), entry
        assert entry["metrics"]["wall_time_s"] >= 0  # the stage's time (a quick stage may round to 0.0 s)
    assert "--export" in m["generator"]["command"] and "pairs_command" in m["flow"]
    assert m["classifier"]["metrics"]["mean_accuracy"] is not None and "attribute_accuracy_toy_prompts" in m["gan"]["metrics"]
    assert compare(tmp_path / "stylegan2.safetensors", tmp_path / m["generator"]["file"])["differ"] == 0
    assert all(adopt(tmp_path).values())  # adopting again: the same tensors
