"""Each evaluation metric on a case with a known answer."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model import metrics as M


def test_fd_identical_sets_is_zero():
    x = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    assert M.frechet_distance(x, x) < 1e-6


def test_fd_closed_form_from_stats():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    s1 = a @ a.T + 0.1 * np.eye(6)
    s2 = np.diag(rng.uniform(0.5, 2.0, 6))
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    # Commuting case (both diagonal): Tr(S1 + S2 - 2 sqrt(S1 S2)) = sum (sqrt(s1) - sqrt(s2))^2.
    d1 = np.diag(np.diag(s1))
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(np.diag(d1)) - np.sqrt(np.diag(s2))) ** 2)
    assert M.frechet_distance_from_stats(mu1, d1, mu2, s2) == pytest.approx(want, rel=1e-9)
    # Same covariance: only the mean term remains.
    assert M.frechet_distance_from_stats(mu1, s1, mu2, s1) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-6)


def test_fd_shifted_gaussian_samples():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20000, 4, generator=g)
    y = torch.randn(20000, 4, generator=g) * 2.0 + torch.tensor([1.0, 0.0, -1.0, 2.0])
    # |dmu|^2 = 6; each dim (1 - 2)^2 = 1 -> 4; total 10.
    assert M.frechet_distance(x, y) == pytest.approx(10.0, rel=0.05)


def test_r_precision_matched_and_random():
    g = torch.Generator().manual_seed(0)
    prompts = F.normalize(torch.randn(200, 64, generator=g), dim=-1)
    idx = torch.arange(200).repeat_interleave(5)
    assert M.r_precision(prompts[idx], idx, prompts) == 1.0
    rnd = F.normalize(torch.randn(len(idx) * 2, 64, generator=g), dim=-1)
    r = M.r_precision(rnd, idx.repeat(2), prompts, k=99)
    assert 0.0 <= r < 0.03  # chance is 1/100


def test_r_precision_duplicate_prompt_texts_are_not_distractors():
    e = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=-1)
    # Image 0 equals prompts 0 and 1 (same text): a tie, but prompt 1 is no distractor.
    assert M.r_precision(e[:1], [0], e, prompt_texts=["a", "a", "b"]) == 1.0
    assert M.r_precision(e[:1], [0], e, prompt_texts=["a", "c", "b"]) == 0.0


def test_diversity():
    same = torch.ones(6, 3)
    assert M.diversity(same, [0, 0, 0, 1, 1, 1]) == pytest.approx(0.0, abs=1e-6)
    ortho = torch.eye(3)
    assert M.diversity(ortho, [0, 0, 0]) == pytest.approx(math.sqrt(2), rel=1e-6)


def test_clip_score():
    e = F.normalize(torch.randn(5, 8), dim=-1)
    assert M.clip_score(e, e) == pytest.approx(100.0, rel=1e-5)
    assert M.clip_score(e, -e) == pytest.approx(-100.0, rel=1e-5)


def test_attribute_accuracy_and_mask():
    names = ["Smiling", "Male", "Blurry"]
    probs = torch.tensor([[0.9, 0.2, 0.9], [0.1, 0.8, 0.1]])
    prompted = [{"Smiling": 1, "Male": -1, "Blurry": 1}, {"Smiling": 1, "Male": 1}]
    r = M.attribute_accuracy(probs, prompted, names, mask=[True, True, False])
    assert r["accuracy"] == pytest.approx(3 / 4)
    assert r["per_attribute"] == {"Male": 1.0, "Smiling": 0.5}
    assert r["unscored"] == 1 and r["scored"] == 4


def test_unprompted_entropy():
    names = ["Smiling", "Male"]
    # Male never prompted; generated images split 50/50 like the data -> ratio 1; collapsed -> 0.
    prompted = [{"Smiling": 1}] * 4
    varied = torch.tensor([[1.0, 0.9], [1.0, 0.1], [1.0, 0.8], [1.0, 0.3]])
    collapsed = torch.tensor([[1.0, 0.9]] * 4)
    assert M.unprompted_entropy(varied, prompted, names, {"Male": 0.5})["per_attribute"]["Male"] == pytest.approx(1.0)
    assert M.unprompted_entropy(collapsed, prompted, names, {"Male": 0.5})["per_attribute"]["Male"] == pytest.approx(0.0)
    # Smiling is prompted in every row: not scored.
    assert "Smiling" not in M.unprompted_entropy(varied, prompted, names, {"Male": 0.5, "Smiling": 0.5})["per_attribute"]


def _bundled(name):
    from model.bundled import bundled_path

    return bundled_path(name, required=False)


@pytest.mark.skipif(_bundled("classifier") is None, reason="bundled classifier not built yet")
def test_real_reference_reaches_classifier_accuracy():
    """Real test images carrying the prompted attributes score what the classifier itself scores on
    those attribute values (its recall per asked value on the test split): a perfect generator is
    limited by the classifier only."""
    from pathlib import Path

    from dataset.celeba import CelebADataset
    from model.classifier import load_classifier, predict_attributes
    from model.evaluate import default_data_dir, load_prompt_file
    from model.pipelines import RealPipeline

    data = default_data_dir()
    if data is None:
        pytest.skip("no toy dataset (set TEXT2FACE_DATA)")
    clf = load_classifier(_bundled("classifier"))
    items = load_prompt_file(Path(__file__).resolve().parents[1] / "prompts" / "toy.jsonl")
    items = [it for it in items if not it.get("unseen_combination")][:30]  # a real image matches every prompt
    attrs = [it["attributes"] for it in items]
    pipe = RealPipeline(data)
    imgs = pipe.generate([it["prompt"] for it in items], 4, seed=0, attributes=attrs)
    probs = predict_attributes(clf, imgs)
    rows = [a for a in attrs for _ in range(4)]
    acc = M.attribute_accuracy(probs, rows, clf.attr_names, mask=clf.attr_mask)
    # The classifier's own accuracy on the same asked values, over the whole test split.
    ds = CelebADataset(data, "test")
    test_probs = predict_attributes(clf, ds.images_uint8(progress=False)[:500]).numpy()
    truth = np.asarray(ds.attrs)[:500]
    want, total = 0.0, 0
    for a in rows:
        for k, v in a.items():
            j = clf.attr_names.index(k)
            if not bool(clf.attr_mask[j]):
                continue
            sel = truth[:, j] == v
            want += float(((test_probs[sel, j] > 0.5) == (v > 0)).mean())
            total += 1
    assert acc["scored"] == total
    print(f"real reference {acc['accuracy']:.3f}; classifier on the same asked values {want / total:.3f}")
    assert acc["accuracy"] >= want / total - 0.10  # attribute combinations make some asked values harder


@pytest.mark.skipif(_bundled("clip_eval") is None, reason="bundled evaluation CLIP not built yet")
def test_real_captioned_images_r_precision_well_above_chance():
    from pathlib import Path

    from model.clip_io import encode_images, encode_text, load_clip
    from model.evaluate import default_data_dir, load_prompt_file
    from model.pipelines import RealPipeline

    data = default_data_dir()
    if data is None:
        pytest.skip("no toy dataset (set TEXT2FACE_DATA)")
    items = load_prompt_file(Path(__file__).resolve().parents[1] / "prompts" / "toy.jsonl")
    items = [it for it in items if not it.get("unseen_combination")][:100]
    clip_model = load_clip(str(_bundled("clip_eval")))
    text = encode_text(clip_model, [it["prompt"] for it in items])
    imgs = RealPipeline(data).generate([it["prompt"] for it in items], 2, seed=0, attributes=[it["attributes"] for it in items])
    feats = encode_images(clip_model, imgs)
    r = M.r_precision(feats, torch.arange(len(items)).repeat_interleave(2), text, k=99)
    assert r > 0.05  # chance is 0.01
