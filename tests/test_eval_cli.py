"""`generate`, `eval` and `table` through the command line, on real-class stand-ins."""
import json

import pytest
import torch
from PIL import Image

import main as cli_main
from t2f_standins import FIXTURE_G, make_tiny_clip, make_tiny_mapper

pytestmark = pytest.mark.skipif(not FIXTURE_G.is_file(), reason="fixture generator not found")


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    return {
        "dir": d,
        "clip": make_tiny_clip(d / "clip.pt", seed=0),
        "clip_eval": make_tiny_clip(d / "clip_eval.pt", seed=1),
        "flow": make_tiny_mapper(d / "flow.safetensors", "flow"),
        "bad_e": make_tiny_mapper(d / "bad_e.safetensors", "flow", e_dim=16),
        "G": str(FIXTURE_G),
    }


def run(args, capsys):
    rc = cli_main.main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_generate_writes_grid(parts, tmp_path, capsys):
    out = tmp_path / "g.png"
    args = ["generate", "a smiling woman", "a bald man", "-n", "3", "--seed", "0", "--out", str(out),
            "--clip", parts["clip"], "--generator", parts["G"], "--mapper", parts["flow"], "--trunc", "0.8"]
    rc, so, se = run(args, capsys)
    assert rc == 0, se
    im = Image.open(out)
    # 32x32 fixture images drawn at 2x: 3 columns of (64 + 2) + 2, 2 rows of (64 + 2 + 14 label) + 2.
    assert im.size == (3 * 66 + 2, 2 * 80 + 2)
    first = out.read_bytes()
    assert run(args, capsys)[0] == 0 and out.read_bytes() == first  # deterministic for a seed


@pytest.mark.parametrize("case,needle", [
    ("empty", "prompt 2 is empty"),
    ("unknown", "choices: flow, cvae-mapper, cvae, gan, clip-opt"),
    ("mismatch", "embeddings of size 16"),
    ("long", "longer than the CLIP context"),
])
def test_generate_bad_input_one_line(parts, tmp_path, capsys, case, needle):
    base = ["generate", "-n", "1", "--out", str(tmp_path / "x.png"), "--clip", parts["clip"], "--generator", parts["G"]]
    if case == "empty":
        args = base + ["a man", "", "--mapper", parts["flow"]]
    elif case == "unknown":
        args = base + ["a man", "--model", "dalle"]
    elif case == "mismatch":
        args = base + ["a man", "--mapper", parts["bad_e"]]
    else:
        args = base + ["a man " * 80, "--mapper", parts["flow"]]
    rc, so, se = run(args, capsys)
    assert rc == 1
    lines = [l for l in se.strip().splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], se
    assert not (tmp_path / "x.png").exists()


@pytest.fixture(scope="module")
def tiny_world(parts):
    from dataset.toyfaces import write_dataset
    from model.classifier import FORMAT
    from network.classifier import AttributeClassifier
    from dataset.celeba import ATTRIBUTES
    from torch_utils.persistence import save_checkpoint

    d = parts["dir"]
    write_dataset(d / "data", n=40, seed=0, workers=1, progress=False)
    torch.manual_seed(0)
    net = AttributeClassifier(num_attrs=40, resolution=32, channels=(8, 16))
    cfg = {"format": FORMAT, "num_attrs": 40, "resolution": 32, "channels": [8, 16], "attr_names": list(ATTRIBUTES),
           "attr_mask": [a in ("Smiling", "Male", "Eyeglasses", "Blond_Hair") for a in ATTRIBUTES]}
    save_checkpoint(d / "clf.safetensors", net.state_dict(), cfg)
    prompts = d / "p.jsonl"
    rows = [
        {"prompt": "a smiling woman", "attributes": {"Smiling": 1, "Male": -1}},
        {"prompt": "a man with eyeglasses", "attributes": {"Male": 1, "Eyeglasses": 1}},
        {"prompt": "a woman with blond hair", "attributes": {"Male": -1, "Blond_Hair": 1}, "unseen_combination": True},
    ]
    prompts.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return {"data": str(d / "data"), "clf": str(d / "clf.safetensors"), "prompts": str(prompts)}


def test_eval_and_table(parts, tiny_world, tmp_path, capsys):
    out = tmp_path / "res.json"
    common = ["--prompts", tiny_world["prompts"], "--n-per-prompt", "2", "--json", str(out), "--clip-eval", parts["clip_eval"],
              "--classifier", tiny_world["clf"], "--data", tiny_world["data"], "--clip", parts["clip"], "--generator", parts["G"],
              "--batch-size", "4"]
    rc, so, se = run(["eval", "--model", f"flow@{parts['flow']},unconditional,real,gap-shift=flow@{parts['flow']}+shift"] + common, capsys)
    assert rc == 0, se
    res = json.loads(out.read_text())
    assert set(res) == {"flow@" + parts["flow"], "unconditional", "real", "gap-shift"}
    assert len(res["real"]["per_prompt_correct_scored"]) == 3
    for entry in res.values():
        for key in ("attribute_accuracy", "attribute_accuracy_other_prompt", "clip_score", "r_precision", "fd", "diversity",
                    "ms_per_image", "images_per_s"):
            assert key in entry
        assert 0 <= entry["attribute_accuracy"] <= 1 and entry["n_images"] == 6
    assert res["gap-shift"]["modality_shift"] is True and res["gap-shift"]["group"] == "modality-gap"
    # A second run merges into the same file.
    rc, so, se = run(["eval", "--model", "cvae-mapper-free=unconditional"] + common, capsys)
    assert rc == 0, se
    assert len(json.loads(out.read_text())) == 5
    # The slow reference on the first prompts only; the table compares the flow on the same ones.
    rc, so, se = run(["eval", "--model", "clip-opt", "--max-prompts", "2", "--steps", "1"] + common, capsys)
    assert rc == 0, se
    assert json.loads(out.read_text())["clip-opt"]["n_prompts"] == 2

    assets = tmp_path / "assets"
    rc, so, se = run(["table", "--json", str(out), "--out", str(assets)], capsys)
    assert rc == 0, se
    md = (assets / "RESULTS.md").read_text()
    assert "## Metrics" in md and "## Modality-gap ablation" in md and "`real`" in md and "same images, other prompt" in md
    pngs = sorted(p.name for p in assets.glob("*.png"))
    assert "samples_real.png" in pngs and len(pngs) == 6
    assert "on the 2 prompts clip-opt was run on" in md and "times faster than clip-opt" in md
    for p in pngs:
        assert f"]({p})" in md


def test_eval_bad_prompt_file(parts, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a man", "attributes": {"Smiley": 1}}\n')
    rc, so, se = run(["eval", "--model", "unconditional", "--prompts", str(bad), "--n-per-prompt", "1", "--json",
                      str(tmp_path / "o.json"), "--clip-eval", parts["clip_eval"]], capsys)
    assert rc == 1 and "line 1: unknown attribute 'Smiley'" in se


def test_eval_generator(parts, tiny_world, tmp_path, capsys):
    out = tmp_path / "q.json"
    rc, so, se = run(["eval-generator", "--generator", parts["G"], "--data", tiny_world["data"], "--classifier", tiny_world["clf"],
                      "--clip-eval", parts["clip_eval"], "--n", "12", "--json", str(out)], capsys)
    assert rc == 0, se
    q = json.loads(out.read_text())
    assert q["n_samples"] == 12 and q["n_attributes"] == 4 and set(q["attributes"]) == {"Smiling", "Male", "Eyeglasses", "Blond_Hair"}
    assert 0 <= q["unambiguous_fraction"] <= 1 and q["fd_clip_generated_vs_test"] >= 0
    assert "unambiguous samples" in so and "Fréchet distance" in so
    # A sample ambiguous in one attribute is ambiguous: the overall share lies between the
    # largest per-attribute share and their sum.
    amb = [v["ambiguous"] for v in q["attributes"].values()]
    assert max(amb) - 1e-4 <= 1 - q["unambiguous_fraction"] <= sum(amb) + 1e-4
    assert all(0 <= v["ambiguous_real_test"] <= 1 for v in q["attributes"].values())
    # --record refuses a generator that is not the bundled one; a missing folder is one line.
    rc, so, se = run(["eval-generator", "--generator", parts["G"], "--data", tiny_world["data"], "--classifier", tiny_world["clf"],
                      "--clip-eval", parts["clip_eval"], "--n", "4", "--record"], capsys)
    assert rc != 0 and "only applies to the bundled generator" in se
    rc, so, se = run(["eval-generator", "--generator", parts["G"], "--data", str(tmp_path / "nope")], capsys)
    assert rc != 0 and "not found" in se and len(se.strip().splitlines()) == 1
