"""Evaluation of every text-to-face method on one prompt file, the results table, the prompt file.

``evaluate(...)`` (behind ``python main.py eval``) generates K images per prompt with each
method, then scores them with models that no method was conditioned on:

- the attribute classifier (attribute accuracy, per attribute and on the prompts whose
  attribute combination no training image shows; the unprompted attributes' entropy);
- the *evaluation* CLIP (CLIP score, R-precision, Fréchet distance to real test images on
  its image features, diversity).

Methods are given as specs ``[LABEL=]KIND[@CHECKPOINT][+shift]``: ``flow``,
``gap-shift=flow+shift``, ``gap-noise=flow@runs/flow_noise.safetensors``. Labels that
start with ``gap-`` form the modality-gap ablation in the table. Results of several
``eval`` runs into the same JSON file are merged (one entry per label).

``write_results(...)`` (behind ``python main.py table``) turns the JSON into RESULTS.md and
picture tables (a prompt, then three images, per method).

``make_toy_prompts(...)`` writes the shipped prompt file (``prompts/toy.jsonl``).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from torch_utils.misc import UserError

ORDER = ("flow", "cvae-mapper", "cvae", "gan", "clip-opt", "unconditional", "real")
N_SHOWCASE = 6  # prompts kept (3 images each) for the picture tables


# ---------------------------------------------------------------------------
# Prompt files
# ---------------------------------------------------------------------------


def load_prompt_file(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a JSONL prompt file; every line ``{"prompt": str, "attributes": {name: 1|-1}, ...}``."""
    from dataset.celeba import ATTRIBUTES

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--prompts {path}: no such file")
    items = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}, line {lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str):
            raise UserError(f"{path}, line {lineno}: expected an object with a \"prompt\" string")
        if not obj["prompt"].strip():
            raise UserError(f"{path}, line {lineno}: empty prompt")
        attrs = obj.get("attributes", {})
        if not isinstance(attrs, dict):
            raise UserError(f"{path}, line {lineno}: \"attributes\" must be an object like {{\"Smiling\": 1}}")
        for k, v in attrs.items():
            if k not in ATTRIBUTES:
                raise UserError(f"{path}, line {lineno}: unknown attribute '{k}' (CelebA names, e.g. Smiling, Blond_Hair)")
            if v not in (1, -1):
                raise UserError(f"{path}, line {lineno}: attribute '{k}' must be 1 or -1, got {v!r}")
        obj["attributes"] = {k: int(v) for k, v in attrs.items()}
        items.append(obj)
    if not items:
        raise UserError(f"--prompts {path}: no prompts in the file")
    return items


# Attributes that cannot be asked for together (one hair colour; bald has no hair, bangs or hat).
_EXCLUSIVE = [
    {"Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Bald"},
    {"Bald", "Bangs"},
    {"Goatee", "No_Beard"},
]
# Combinations the toy renderer never draws (the world's correlations), asked for on purpose.
UNSEEN_SEEDS = [
    {"Bald": 1, "Male": -1},
    {"Mustache": 1, "Male": -1},
    {"Goatee": 1, "Male": -1},
    {"Bald": 1, "Wearing_Hat": 1},
    {"Wearing_Hat": 1, "Bangs": 1},
    {"Heavy_Makeup": 1, "Male": 1},
    {"Goatee": 1, "Wearing_Lipstick": 1},
    {"Bald": 1, "Male": -1, "Eyeglasses": 1},
    {"Mustache": 1, "Male": -1, "Smiling": 1},
    {"Wearing_Hat": 1, "Bangs": 1, "Blond_Hair": 1},
]


def _rendered_attributes() -> list[str]:
    try:
        from dataset.toyfaces import RENDERED_ATTRIBUTES

        return list(RENDERED_ATTRIBUTES)
    except ImportError:  # pragma: no cover
        return ["Male", "Smiling", "Eyeglasses", "Wearing_Hat", "Bald", "Bangs", "Black_Hair", "Blond_Hair",
                "Brown_Hair", "Gray_Hair", "Mustache", "Goatee", "Wearing_Lipstick", "Wearing_Earrings", "Pale_Skin"]


def random_attribute_sets(n: int, rng: np.random.Generator, k_max: int = 4, pool: Sequence[str] | None = None) -> list[dict[str, int]]:
    """``n`` random, self-consistent attribute requests of 1..``k_max`` attributes each.

    Only what a prompt can say is asked: attributes wanted (+1), ``Male`` either way (man /
    woman) and ``No_Beard`` = -1 (a beard). ``dataset.captions.prompt_for`` leaves other
    unwanted attributes unsaid, so they are never requested as -1.
    """
    pool = list(pool or _rendered_attributes())
    out = []
    while len(out) < n:
        k = int(rng.integers(1, k_max + 1))
        chosen: dict[str, int] = {}
        for name in rng.permutation(pool):
            if len(chosen) >= k:
                break
            name = str(name)
            if any(name in g and any(c in g for c in chosen) for g in _EXCLUSIVE):
                continue
            if name == "Male":
                chosen[name] = 1 if rng.random() < 0.5 else -1
            elif name == "No_Beard":
                chosen[name] = -1  # "with a beard"
            else:
                chosen[name] = 1
        if chosen:
            out.append(chosen)
    return out


def prompt_text(attrs: dict[str, int], rng: np.random.Generator) -> str:
    """A wording of ``attrs``: ``dataset.captions.prompt_for`` with a random phrasing and sentence frame."""
    from dataset.captions import prompt_for

    return prompt_for(dict(attrs), rng=rng).strip()


def seen_combinations(data: str | os.PathLike) -> np.ndarray:
    """The training split's attributes [N, 40] (+1/-1)."""
    from dataset.celeba import CelebADataset

    return np.asarray(CelebADataset(data, "train").attrs)


def is_unseen(attrs: dict[str, int], train_attrs: np.ndarray) -> bool:
    from dataset.celeba import ATTR_INDEX

    ok = np.ones(len(train_attrs), dtype=bool)
    for k, v in attrs.items():
        ok &= train_attrs[:, ATTR_INDEX[k]] == v
    return not bool(ok.any())


def make_toy_prompts(out: str | os.PathLike, n: int = 120, seed: int = 0, data: str | os.PathLike | None = None) -> dict[str, Any]:
    """Write a prompt file of ``n`` prompts (1-4 rendered attributes, several wordings).

    Includes the deliberately unseen combinations of ``UNSEEN_SEEDS``; with ``data`` (the toy
    dataset) every prompt whose combination no training image shows gets
    ``"unseen_combination": true``.
    """
    rng = np.random.default_rng(seed)
    k = min(len(UNSEEN_SEEDS), max(1, n // 5))
    sets = [dict(s) for s in UNSEEN_SEEDS[:k]] + random_attribute_sets(max(0, n - k), rng)
    order = rng.permutation(len(sets))
    sets = [sets[i] for i in order]
    train = seen_combinations(data) if data is not None else None
    lines, seen_texts, n_unseen = [], set(), 0
    for attrs in sets:
        for _ in range(20):  # a different wording if this text already exists
            text = prompt_text(attrs, rng)
            if text not in seen_texts:
                break
        seen_texts.add(text)
        obj: dict[str, Any] = {"prompt": text, "attributes": attrs}
        if train is not None:
            obj["unseen_combination"] = is_unseen(attrs, train)
            n_unseen += int(obj["unseen_combination"])
        lines.append(json.dumps(obj, sort_keys=False))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"out": str(out), "prompts": len(lines), "unseen_combinations": n_unseen if train is not None else None}


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------


def parse_model_spec(spec: str) -> dict[str, Any]:
    """``[LABEL=]KIND[@CHECKPOINT][+shift]`` -> {label, kind, checkpoint, shift}."""
    from model.pipelines import MODELS

    s = spec.strip()
    if not s:
        raise UserError("--model: empty model name")
    label = None
    if "=" in s:
        label, s = s.split("=", 1)
    shift = None
    if s.endswith("+shift"):
        s, shift = s[: -len("+shift")], True
    elif s.endswith("+noshift"):
        s, shift = s[: -len("+noshift")], False
    ckpt = None
    if "@" in s:
        s, ckpt = s.split("@", 1)
    kind = s.strip()
    if kind not in MODELS:
        raise UserError(f"unknown model '{kind}'; choices: {', '.join(MODELS)}")
    return {"label": (label or spec).strip(), "kind": kind, "checkpoint": ckpt, "shift": shift}


def default_data_dir() -> str | None:
    """$TEXT2FACE_DATA, else the toy dataset beside the repository (../data/toy), else ./data/toy."""
    env = os.environ.get("TEXT2FACE_DATA")
    if env:
        return env
    root = Path(__file__).resolve().parent.parent
    for cand in (root.parent / "data" / "toy", root / "data" / "toy"):
        if (cand / "list_attr_celeba.txt").is_file():
            return str(cand)
    return None


class RealReference:
    """Test images of a CelebA-format folder with their attributes, eval-CLIP features and rates."""

    def __init__(self, data: str, max_images: int = 2000, seed: int = 0):
        from dataset.celeba import ATTRIBUTES, CelebADataset

        self.data = data
        ds = CelebADataset(data, "test")
        if len(ds) < 2:
            raise UserError(f"--data {data}: the test split has {len(ds)} image(s); need at least 2")
        images = ds.images_uint8(progress=False)
        attrs = np.asarray(ds.attrs)
        if len(images) > max_images:
            pick = np.sort(np.random.default_rng(seed).choice(len(images), max_images, replace=False))
            images, attrs = images[torch.from_numpy(pick)], attrs[pick]
        self.images, self.attrs = images, attrs
        self.mask = np.asarray(ds.attr_mask, dtype=bool)
        self.rates = {ATTRIBUTES[j]: float((attrs[:, j] > 0).mean()) for j in range(len(ATTRIBUTES)) if self.mask[j]}
        self._feats: dict[int, torch.Tensor] = {}

    def features(self, clip_model) -> torch.Tensor:
        from model.clip_io import encode_images

        key = id(clip_model)
        if key not in self._feats:
            self._feats[key] = encode_images(clip_model, self.images, batch_size=256, progress=False)
        return self._feats[key]


def _inception_weights() -> Path | None:
    """torchvision's Inception-v3 weights if they are already on disk (no download)."""
    try:
        hub = Path(torch.hub.get_dir()) / "checkpoints"
    except Exception:  # pragma: no cover
        return None
    hits = sorted(hub.glob("inception_v3_google-*.pth")) if hub.is_dir() else []
    return hits[0] if hits else None


@torch.no_grad()
def inception_features(images_u8: torch.Tensor, weights: Path, device="cpu", batch_size: int = 64) -> torch.Tensor:
    """2048-d pool features of torchvision's Inception-v3 (the FID network's architecture)."""
    import torch.nn.functional as F
    import torchvision

    net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    net.fc = torch.nn.Identity()
    net.eval().to(device)
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)
    out = []
    for i in range(0, len(images_u8), batch_size):
        x = images_u8[i : i + batch_size].to(device).float() / 255.0
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        out.append(net((x - mean) / std).float().cpu())
    return torch.cat(out)


def _to_u8(images: torch.Tensor) -> torch.Tensor:
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def _showcase_indices(items: list[dict[str, Any]], k: int = N_SHOWCASE) -> list[int]:
    """A fixed set of prompts for the picture tables: some unseen combinations, the rest spread out."""
    unseen = [i for i, it in enumerate(items) if it.get("unseen_combination")]
    pick = unseen[:2]
    rest = [i for i in range(len(items)) if i not in pick]
    step = max(1, len(rest) // max(1, k - len(pick)))
    pick += rest[::step][: k - len(pick)]
    return sorted(pick)[:k]


def evaluate(
    models: Sequence[str],
    prompts_file: str | os.PathLike,
    n_per_prompt: int,
    json_out: str | os.PathLike,
    clip_eval: str | None = None,
    classifier: str | None = None,
    data: str | None = None,
    batch_size: int = 16,
    device: str = "cpu",
    clip: str | None = None,
    generator: str | None = None,
    seed: int = 0,
    steps: int = 50,
    max_prompts: int | None = None,
    temperature: float = 1.0,
    trunc: float = 1.0,
    progress: bool = True,
) -> dict[str, Any]:
    """Score each model spec on the prompt file; merge the results into ``json_out``; return them."""
    from tqdm import tqdm

    from dataset.celeba import ATTRIBUTES
    from model import metrics as M
    from model.bundled import bundled_path
    from model.classifier import load_classifier, predict_attributes
    from model.clip_io import encode_images, encode_text, load_clip
    from model.pipelines import ModelCache, build_pipeline

    if n_per_prompt < 1:
        raise UserError(f"--n-per-prompt must be at least 1, got {n_per_prompt}")
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    specs = [parse_model_spec(s) for s in models]
    items = load_prompt_file(prompts_file)
    if max_prompts:
        items = items[: int(max_prompts)]
    prompts = [it["prompt"] for it in items]
    attrs = [it["attributes"] for it in items]
    P, K = len(items), int(n_per_prompt)

    clip_eval = str(clip_eval or bundled_path("clip_eval"))
    classifier = str(classifier or bundled_path("classifier"))
    data = data or default_data_dir()
    cache = ModelCache(device)
    if clip is not None or any(s["kind"] in ("flow", "cvae-mapper", "cvae", "gan", "clip-opt") for s in specs):
        cond_name = str(clip or bundled_path("clip"))
        from model.clip_io import clip_identity

        if os.path.isfile(cond_name) and os.path.isfile(clip_eval) and clip_identity(cond_name) == clip_identity(clip_eval):
            raise UserError(f"--clip-eval {clip_eval} is the conditioning CLIP; evaluation needs a different CLIP model")
    eval_clip = load_clip(clip_eval, device=device)
    clf = load_classifier(classifier, device=device)
    clf_mask = clf.attr_mask.numpy().astype(bool)
    real = RealReference(data) if data is not None else None
    if real is None:
        import warnings

        warnings.warn("no --data folder: fd, the 'real' reference and the data entropy are skipped")
    mask = clf_mask & (real.mask if real is not None else clf_mask)
    text_emb = encode_text(eval_clip, prompts, progress=False)
    inc_w = _inception_weights()
    real_inc = inception_features(real.images, inc_w, device) if (inc_w is not None and real is not None) else None
    real_feats = real.features(eval_clip) if real is not None else None

    json_out = Path(json_out)
    samples_dir = json_out.with_name(json_out.stem + "_samples")
    results: dict[str, Any] = {}
    if json_out.is_file():
        try:
            results = json.loads(json_out.read_text())
        except json.JSONDecodeError:
            raise UserError(f"--json {json_out}: exists but is not JSON; remove it or choose another file") from None
    showcase = _showcase_indices(items)
    unseen_rows = [i for i, it in enumerate(items) if it.get("unseen_combination")]
    chunk = max(1, batch_size // K)

    for spec in specs:
        label, kind = spec["label"], spec["kind"]
        pipe = build_pipeline(kind, clip=clip, generator=None if kind in ("cvae", "gan", "real") else generator,
                              mapper=spec["checkpoint"], device=device,
                              data=data, cache=cache, modality_shift=spec["shift"])
        opts: dict[str, Any] = {"batch_size": batch_size}
        if kind in ("flow", "cvae-mapper"):
            opts.update(temperature=temperature, trunc=trunc)
        if kind == "clip-opt":
            opts.update(steps=steps)
        if kind in ("cvae", "gan", "real"):
            opts["attributes_all"] = attrs
        # Warm-up call (lazy initialisation, caches) outside the timing.
        pipe.generate(prompts[:1], 1, seed, **_opts_for(opts, attrs[:1]))
        seconds, images = 0.0, []
        bar = tqdm(total=P * K, desc=f"eval {label}", unit="img", disable=not progress, dynamic_ncols=True)
        for c0 in range(0, P, chunk):
            sl = slice(c0, min(P, c0 + chunk))
            x = pipe.generate(prompts[sl], K, seed + c0, **_opts_for(opts, attrs[sl]))
            seconds += pipe.last_info["seconds"]
            images.append(_to_u8(x))
            bar.update(len(x))
        bar.close()
        images = torch.cat(images)  # [P*K, 3, H, W] uint8
        group = torch.arange(P).repeat_interleave(K)
        img_attrs = [attrs[int(g)] for g in group]

        probs = predict_attributes(clf, images)
        acc = M.attribute_accuracy(probs, img_attrs, ATTRIBUTES, mask=mask)
        # This method's own chance level: the same images scored against the next prompt's attributes.
        shuffled = M.attribute_accuracy(probs, [attrs[(int(g) + 1) % P] for g in group], ATTRIBUTES, mask=mask)
        feats = encode_images(eval_clip, images, batch_size=256, progress=False)
        entry: dict[str, Any] = {
            "kind": kind,
            "checkpoint": spec["checkpoint"],
            "modality_shift": getattr(pipe, "modality_shift", None),
            "group": "modality-gap" if label.startswith("gap-") else "main",
            "attribute_accuracy": acc["accuracy"],
            "attribute_accuracy_other_prompt": shuffled["accuracy"],
            "per_attribute_accuracy": acc["per_attribute"],
            "attribute_counts": acc["counts"],
            "clip_score": M.clip_score(feats, text_emb[group]),
            "r_precision": M.r_precision(feats, group, text_emb, k=99, seed=seed, prompt_texts=prompts),
            "fd": M.frechet_distance(feats, real_feats) if real_feats is not None else None,
            "fd_features": f"evaluation CLIP image embeddings ({feats.shape[1]}-d), scipy.linalg.sqrtm",
            "fid": None,
            "diversity": M.diversity(feats, group),
            "ms_per_image": 1000.0 * seconds / len(images),
            "images_per_s": len(images) / seconds if seconds > 0 else None,
            "batch_size": batch_size,
            "device": str(device),
            "seconds": seconds,
            "n_prompts": P,
            "n_per_prompt": K,
            "n_images": len(images),
            "per_prompt_correct_scored": [_correct_scored(M.attribute_accuracy(
                probs[i * K : (i + 1) * K], img_attrs[i * K : (i + 1) * K], ATTRIBUTES, mask=mask)) for i in range(P)],
        }
        if unseen_rows:
            rows = [i for i in range(len(images)) if int(group[i]) in set(unseen_rows)]
            entry["unseen_combination_accuracy"] = M.attribute_accuracy(probs[rows], [img_attrs[i] for i in rows], ATTRIBUTES, mask=mask)["accuracy"]
            entry["n_unseen_prompts"] = len(unseen_rows)
        if real is not None:
            ent = M.unprompted_entropy(probs, img_attrs, ATTRIBUTES, real.rates)
            entry["unprompted_entropy_ratio"] = ent["mean"]
            entry["unprompted_entropy_per_attribute"] = ent["per_attribute"]
        if real_inc is not None:
            entry["fid"] = M.frechet_distance(inception_features(images, inc_w, device), real_inc)
        if kind == "clip-opt":
            entry["steps"] = steps
        if kind in ("flow", "cvae-mapper"):
            entry["temperature"], entry["trunc"] = temperature, trunc
        # Picture-table samples: 3 images of each showcase prompt.
        samples_dir.mkdir(parents=True, exist_ok=True)
        sfile = samples_dir / (re.sub(r"[^A-Za-z0-9_.-]+", "_", label) + ".npz")
        sel = torch.cat([images[i * K : i * K + min(3, K)] for i in showcase])
        np.savez_compressed(sfile, images=sel.numpy(), prompts=np.array([prompts[i] for i in showcase]), per_prompt=min(3, K))
        entry["samples"] = os.path.relpath(sfile, json_out.parent)
        entry["eval"] = {
            "prompts": str(prompts_file),
            "clip_eval": clip_eval,
            "classifier": classifier,
            "data": data,
            "seed": seed,
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU threads visible, torch {torch.__version__}, {torch.get_num_threads()} torch thread{'s' if torch.get_num_threads() != 1 else ''}",
            "inception_fid": inc_w is not None,
        }
        results[label] = _jsonable(entry)
        json_out.parent.mkdir(parents=True, exist_ok=True)
        tmp = json_out.with_name(json_out.name + ".tmp")
        tmp.write_text(json.dumps(results, indent=2) + "\n")
        os.replace(tmp, json_out)
    return results


def _correct_scored(acc: dict[str, Any]) -> list[int]:
    scored = int(acc["scored"])
    return [int(round(acc["accuracy"] * scored)) if scored else 0, scored]


def _opts_for(opts: dict[str, Any], attrs_slice: list[dict[str, int]]) -> dict[str, Any]:
    o = {k: v for k, v in opts.items() if k != "attributes_all"}
    if "attributes_all" in opts:
        o["attributes"] = attrs_slice
    return o


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


# ---------------------------------------------------------------------------
# Results table
# ---------------------------------------------------------------------------


def _fmt(v, nd=3):
    if v is None:
        return "–"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 100:
            return f"{v:.1f}"
        return f"{v:.{nd}f}"
    return str(v)


def _ordered(results: dict[str, Any]) -> list[str]:
    def key(label):
        kind = results[label].get("kind", label)
        return (results[label].get("group") == "modality-gap", ORDER.index(kind) if kind in ORDER else 99, label)

    return sorted((k for k, v in results.items() if isinstance(v, dict) and "attribute_accuracy" in v), key=key)


def picture_table(images: np.ndarray, prompts: Sequence[str], per_prompt: int, title: str, scale: int = 2):
    """A PIL image: the method's name on top, then one row per prompt: the prompt, then its images."""
    import textwrap

    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    n, c, h, w = images.shape
    h, w = h * scale, w * scale
    text_w, pad, head = 170, 4, 18
    width = text_w + per_prompt * (w + pad) + pad
    height = head + len(prompts) * (h + pad) + pad
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, 3), title, fill=(0, 0, 0), font=font)
    for r, p in enumerate(prompts):
        y = head + r * (h + pad)
        lines = textwrap.wrap(str(p), width=26)[: max(1, h // 12)]
        for li, line in enumerate(lines):
            draw.text((pad, y + 2 + 12 * li), line, fill=(0, 0, 0), font=font)
        for j in range(per_prompt):
            k = r * per_prompt + j
            if k >= n:
                break
            im = Image.fromarray(np.ascontiguousarray(images[k].transpose(1, 2, 0))).resize((w, h), Image.NEAREST)
            canvas.paste(im, (text_w + j * (w + pad), y))
    return canvas


def write_results(json_path: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """RESULTS.md + picture tables from an ``eval`` JSON file; returns the markdown path."""
    json_path, out_dir = Path(json_path), Path(out_dir)
    if not json_path.is_file():
        raise UserError(f"--json {json_path}: no such file (run `python main.py eval` first)")
    try:
        results = json.loads(json_path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"--json {json_path}: not valid JSON ({e.msg})") from None
    labels = _ordered(results)
    if not labels:
        raise UserError(f"--json {json_path}: no model results in the file")
    out_dir.mkdir(parents=True, exist_ok=True)
    main = [l for l in labels if results[l].get("group") != "modality-gap"]
    gap = [l for l in labels if results[l].get("group") == "modality-gap"]
    first = results[labels[0]]
    ev = first.get("eval", {})
    md: list[str] = ["# Results", ""]
    md.append(
        f"Generated by `python main.py table --json {json_path} --out {out_dir}` from the output of "
        f"`python main.py eval` ({first.get('n_prompts')} prompts of `{ev.get('prompts')}`, "
        f"{first.get('n_per_prompt')} images per prompt, seed {ev.get('seed')}). Scored by models no method "
        "was conditioned on: the attribute classifier and the evaluation CLIP."
    )
    md.append("")
    md.append(f"Machine: {ev.get('machine')}; evaluated {ev.get('date')}.")
    md.append("")
    md.append("Rebuild the JSON with (then the `table` command above):")
    md.append("")
    md.append("```")
    groups: dict[tuple, list[str]] = {}
    for l in labels:
        r = results[l]
        key = (r.get("eval", {}).get("prompts"), r.get("n_prompts"), r.get("n_per_prompt"), r.get("batch_size"), r.get("steps"),
               r.get("eval", {}).get("seed"))
        spec = l if (l == r.get("kind") and not r.get("checkpoint")) else \
            f"{l}={r.get('kind')}" + (f"@{r['checkpoint']}" if r.get("checkpoint") else "") + \
            ("" if r.get("modality_shift") is None else ("+shift" if r.get("modality_shift") else "+noshift"))
        groups.setdefault(key, []).append(spec)
    for (prompts, n_prompts, k, bs, steps, seed), specs in groups.items():
        cmd = f"python main.py eval --model {','.join(specs)} --prompts {prompts} --n-per-prompt {k} --json {json_path} --batch-size {bs}"
        if n_prompts is not None and n_prompts < first.get("n_prompts", 0) or (n_prompts != first.get("n_prompts")):
            cmd += f" --max-prompts {n_prompts}"
        if steps is not None:
            cmd += f" --steps {steps}"
        if seed:
            cmd += f" --seed {seed}"
        md.append(cmd)
    md.append("```")
    md.append("")
    md += ["## Metrics", ""]
    cols = ["method", "prompts x images", "attribute acc.", "same images, other prompt", "acc. on unseen combos", "CLIP score", "R-precision", "FD (eval-CLIP)",
            "diversity", "unprompted entropy", "ms / image", "images / s"]
    md.append("| " + " | ".join(cols) + " |")
    md.append("|" + "---|" * len(cols))
    for l in main:
        r = results[l]
        md.append("| " + " | ".join([
            f"`{l}`", f"{r.get('n_prompts')} x {r.get('n_per_prompt')}", _fmt(r.get("attribute_accuracy")), _fmt(r.get("attribute_accuracy_other_prompt")),
            _fmt(r.get("unseen_combination_accuracy")), _fmt(r.get("clip_score"), 2),
            _fmt(r.get("r_precision")), _fmt(r.get("fd"), 4), _fmt(r.get("diversity")), _fmt(r.get("unprompted_entropy_ratio")),
            _fmt(r.get("ms_per_image"), 1), _fmt(r.get("images_per_s"), 1)]) + " |")
    md.append("")
    md.append(
        "attribute acc.: fraction of prompted attributes (present or absent as asked) the classifier finds; "
        "same images, other prompt: the method's own chance level, its images scored against the next prompt's attributes "
        "(text steers a method as far as its attribute acc. rises above this); "
        "acc. on unseen combos: the same on prompts whose attribute combination no training image shows; "
        "CLIP score: 100 x cosine of prompt and image (evaluation CLIP); R-precision: own prompt ranked first among "
        "it and 99 other prompts of the file; FD: Fréchet distance to real test images on evaluation-CLIP image "
        "features (scipy.linalg.sqrtm); diversity: mean pairwise L2 distance between unit-norm evaluation-CLIP "
        "features of a prompt's samples; unprompted entropy: entropy of the attributes a prompt does not name, "
        "relative to the data's (1 = varies as in the data). `unconditional` ignores the prompt (chance level); "
        "`real` is real test images with the prompted attributes (ceiling)."
    )
    if any(results[l].get("fid") is not None for l in main):
        md.append("")
        md.append("FID (Inception-v3 pool features): " + ", ".join(f"`{l}` {_fmt(results[l].get('fid'), 2)}" for l in main if results[l].get("fid") is not None))
    md.append("")

    # Speed.
    md += ["## Speed", ""]
    ref = next((l for l in main if results[l].get("kind") == "clip-opt"), None)
    bs = sorted({results[l].get("batch_size") for l in main})
    md.append(f"Wall time per generated image at batch size {', '.join(str(b) for b in bs)} on {first.get('device')} "
              "(model loading and one warm-up call excluded).")
    md.append("")
    md.append("| method | ms / image | images / s | times faster than clip-opt |")
    md.append("|---|---|---|---|")
    for l in main:
        r = results[l]
        if r.get("kind") == "real":
            continue
        sp = (results[ref]["ms_per_image"] / r["ms_per_image"]) if ref and r.get("ms_per_image") else None
        md.append(f"| `{l}` | {_fmt(r.get('ms_per_image'), 2)} | {_fmt(r.get('images_per_s'), 1)} | {_fmt(sp, 1) + 'x' if sp else '–'} |")
    md.append("")
    flow = next((l for l in main if results[l].get("kind") == "flow"), None)
    if flow and ref:
        f, c = results[flow], results[ref]
        speed = c["ms_per_image"] / f["ms_per_image"]
        f_acc, subset_note = f["attribute_accuracy"], ""
        if c.get("n_prompts", 0) < f.get("n_prompts", 0) and f.get("per_prompt_correct_scored"):
            # clip-opt ran on the first prompts of the file only: compare on those.
            cs = np.array(f["per_prompt_correct_scored"][: c["n_prompts"]], dtype=float).reshape(-1, 2)
            f_acc = float(cs[:, 0].sum() / cs[:, 1].sum()) if cs[:, 1].sum() > 0 else f_acc
            subset_note = f" on the {c['n_prompts']} prompts clip-opt was run on"
        dacc = (f_acc or 0) - (c["attribute_accuracy"] or 0)
        ok_speed, ok_acc = speed >= 100, dacc >= -0.05
        md.append(
            f"Target: the flow mapper at least 100x faster per image than clip-opt at the same batch size, with attribute "
            f"accuracy within 0.05 of clip-opt's or better. Measured: {speed:,.0f}x faster "
            f"({'met' if ok_speed else 'NOT met'}); accuracy{subset_note} {f_acc:.3f} vs {c['attribute_accuracy']:.3f} "
            f"(difference {dacc:+.3f}, {'met' if ok_acc else 'NOT met'}; clip-opt ran {c.get('steps')} steps per image)."
        )
        md.append("")
    elif flow:
        md.append("clip-opt was not evaluated in this file, so the speed-up over it is not reported.")
        md.append("")
    else:
        md.append("The flow mapper is not in this file, so its target (100x faster than clip-opt, attribute accuracy "
                  "within 0.05 of clip-opt's) is not checked here.")
        md.append("")

    if gap:
        md += ["## Modality-gap ablation", ""]
        md.append("Same prompts and seeds; variants of the flow mapper (labels `gap-*`).")
        md.append("")
        md.append("| variant | checkpoint | inference shift | attribute acc. | CLIP score | R-precision | FD | diversity |")
        md.append("|---|---|---|---|---|---|---|---|")
        for l in gap:
            r = results[l]
            md.append(f"| `{l}` | {r.get('checkpoint') or 'bundled'} | {'yes' if r.get('modality_shift') else 'no'} | "
                      f"{_fmt(r.get('attribute_accuracy'))} | {_fmt(r.get('clip_score'), 2)} | {_fmt(r.get('r_precision'))} | "
                      f"{_fmt(r.get('fd'), 4)} | {_fmt(r.get('diversity'))} |")
        md.append("")

    # Per-attribute accuracy.
    names = sorted({a for l in main for a in (results[l].get("per_attribute_accuracy") or {})})
    if names:
        md += ["## Accuracy per prompted attribute", ""]
        md.append("| attribute | " + " | ".join(f"`{l}`" for l in main) + " |")
        md.append("|---|" + "---|" * len(main))
        for a in names:
            md.append(f"| {a} | " + " | ".join(_fmt((results[l].get("per_attribute_accuracy") or {}).get(a), 2) for l in main) + " |")
        md.append("")

    # Picture tables.
    md += ["## Samples", ""]
    md.append("A prompt, then three images, per method (the same prompts and seeds for every method).")
    md.append("")
    for l in labels:
        s = results[l].get("samples")
        if not s:
            continue
        sp = (json_path.parent / s)
        if not sp.is_file():
            md.append(f"- `{l}`: samples file {s} not found")
            continue
        z = np.load(sp)
        img = picture_table(z["images"], [str(p) for p in z["prompts"]], int(z["per_prompt"]), title=l)
        fname = "samples_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", l) + ".png"
        img.save(out_dir / fname, optimize=True)
        md.append(f"### `{l}`")
        md.append("")
        md.append(f"![{l}]({fname})")
        md.append("")
    path = out_dir / "RESULTS.md"
    path.write_text("\n".join(md))
    return path


def summary_lines(results: dict[str, Any]) -> list[str]:
    """One line per method, for the terminal."""
    lines = [f"{'method':<22} {'attr acc':>8} {'CLIP':>7} {'R-prec':>7} {'FD':>9} {'div':>6} {'ms/img':>9}"]
    for l in _ordered(results):
        r = results[l]
        lines.append(f"{l:<22} {_fmt(r.get('attribute_accuracy')):>8} {_fmt(r.get('clip_score'), 2):>7} "
                     f"{_fmt(r.get('r_precision')):>7} {_fmt(r.get('fd'), 4):>9} {_fmt(r.get('diversity')):>6} "
                     f"{_fmt(r.get('ms_per_image'), 2):>9}")
    return lines
