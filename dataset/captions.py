"""Captions from CelebA attributes, as in the CelebA text-to-face study.

A caption names the subject from ``Male`` ("a man" / "a woman"; "a person" when the
attribute is masked out) and describes a random subset of the attributes that are
present, in random order, with synonyms and several sentence templates, so one face is
seen with many wordings. ``No_Beard`` is inverted: a beard (No_Beard = -1) is described
like any present attribute; a clean-shaven man is called so only sometimes; a woman never.
Everything is deterministic for a seed.
"""
from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np

from dataset.celeba import ATTR_INDEX, ATTRIBUTES

# Phrases that follow the subject ("a woman <phrase>, <phrase> and <phrase>").
PHRASES: dict[str, list[str]] = {
    "5_o_Clock_Shadow": ["with a five o'clock shadow", "with stubble", "with a stubbly chin"],
    "Arched_Eyebrows": ["with arched eyebrows", "with arched brows"],
    "Attractive": ["who is attractive", "who is good-looking"],
    "Bags_Under_Eyes": ["with bags under the eyes", "with tired eyes"],
    "Bald": ["who is bald", "with a bald head", "with no hair"],
    "Bangs": ["with bangs", "with a fringe", "with bangs over the forehead"],
    "Big_Lips": ["with big lips", "with full lips"],
    "Big_Nose": ["with a big nose", "with a large nose"],
    "Black_Hair": ["with black hair", "with dark black hair", "with jet-black hair"],
    "Blond_Hair": ["with blond hair", "with blonde hair", "with fair blond hair"],
    "Blurry": ["in a blurry photo", "slightly out of focus"],
    "Brown_Hair": ["with brown hair", "with brunette hair", "with chestnut brown hair"],
    "Bushy_Eyebrows": ["with bushy eyebrows", "with thick eyebrows"],
    "Chubby": ["who is chubby", "with a chubby face"],
    "Double_Chin": ["with a double chin"],
    "Eyeglasses": ["wearing eyeglasses", "wearing glasses", "with glasses", "with spectacles"],
    "Goatee": ["with a goatee", "with a goatee beard"],
    "Gray_Hair": ["with gray hair", "with grey hair", "with silver gray hair"],
    "Heavy_Makeup": ["wearing heavy makeup", "with heavy makeup", "wearing eye shadow and blush"],
    "High_Cheekbones": ["with high cheekbones"],
    # Male picks the subject; the phrase is used only where a phrase is required.
    "Male": ["who is male"],
    "Mouth_Slightly_Open": ["with the mouth slightly open", "with an open mouth", "with parted lips"],
    "Mustache": ["with a mustache", "with a moustache"],
    "Narrow_Eyes": ["with narrow eyes", "with squinting eyes"],
    # No_Beard = +1: said only sometimes, and only of men (see caption()).
    "No_Beard": ["who is clean-shaven", "with no beard", "with a shaved face"],
    "Oval_Face": ["with an oval face"],
    "Pale_Skin": ["with pale skin", "with a pale complexion", "with fair pale skin"],
    "Pointy_Nose": ["with a pointy nose", "with a pointed nose"],
    "Receding_Hairline": ["with a receding hairline"],
    "Rosy_Cheeks": ["with rosy cheeks", "with pink cheeks"],
    "Sideburns": ["with sideburns"],
    "Smiling": ["smiling", "with a smile", "who is smiling", "with a big smile"],
    "Straight_Hair": ["with straight hair"],
    "Wavy_Hair": ["with wavy hair", "with curly hair"],
    "Wearing_Earrings": ["wearing earrings", "with earrings"],
    "Wearing_Hat": ["wearing a hat", "with a hat on", "in a hat"],
    "Wearing_Lipstick": ["wearing lipstick", "with red lipstick", "wearing red lipstick"],
    "Wearing_Necklace": ["wearing a necklace", "with a necklace"],
    "Wearing_Necktie": ["wearing a necktie", "wearing a tie"],
    "Young": ["who is young", "who looks young"],
}
# Phrases for a beard (No_Beard = -1, without a goatee).
BEARD_PHRASES = ["with a beard", "with a full beard", "with a thick beard"]
# Adjectives that may go before the subject instead ("a smiling young woman").
ADJECTIVES: dict[str, list[str]] = {
    "Smiling": ["smiling"],
    "Young": ["young"],
    "Bald": ["bald"],
    "Attractive": ["attractive"],
    "Chubby": ["chubby"],
    "Pale_Skin": ["pale"],
    "Blurry": ["blurry"],
}
BEARD_ADJECTIVES = ["bearded"]
SUBJECTS = {1: ["man", "man", "guy", "gentleman", "male person"], -1: ["woman", "woman", "lady", "female person"],
            0: ["person", "person", "face"]}
TEMPLATES = [
    "{np}{rest}",
    "a photo of {np}{rest}",
    "a picture of {np}{rest}",
    "a portrait of {np}{rest}",
    "a close-up photo of {np}{rest}",
    "a face of {np}{rest}",
    "this is {np}{rest}",
]
NO_BEARD_RATE = 0.25  # how often a present "clean-shaven" is said of a man


def _article(word: str) -> str:
    return "an" if re.match(r"[aeiou]", word) and not word.startswith("eu") else "a"


def _noun_phrase(noun: str, adjectives: list[str]) -> str:
    words = adjectives + [noun]
    return f"{_article(words[0])} {' '.join(words)}"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _join(phrases: list[str]) -> str:
    """Post-modifiers after the subject: the "with ..." ones gathered into one clause at the end
    ("wearing glasses, smiling, with brown hair, bangs and an open mouth")."""
    if not phrases:
        return ""
    withs = [p[5:] for p in phrases if p.startswith("with ")]
    others = [p for p in phrases if not p.startswith("with ")]
    if not withs:
        return " " + _and(others)
    clause = "with " + _and(withs)
    return " " + ", ".join(others + [clause])


def _present(row: np.ndarray, mask: np.ndarray | None) -> tuple[int, list[str]]:
    """(gender: +1 man / -1 woman / 0 unknown, [described features]) of one attribute row."""
    on = lambda a: (mask is None or mask[ATTR_INDEX[a]]) and row[ATTR_INDEX[a]] > 0
    known = lambda a: mask is None or mask[ATTR_INDEX[a]]
    gender = (1 if row[ATTR_INDEX["Male"]] > 0 else -1) if known("Male") else 0
    feats = [a for a in ATTRIBUTES if a not in ("Male", "No_Beard") and on(a)]
    if known("No_Beard") and gender != -1:
        if row[ATTR_INDEX["No_Beard"]] < 0 and not on("Goatee"):
            feats.append("_Beard")
        elif row[ATTR_INDEX["No_Beard"]] > 0 and gender == 1:
            feats.append("No_Beard")
    return gender, feats


def _compose(gender: int, feats: list[str], rng: np.random.Generator, keep: float, max_features: int = 8,
             force: str | None = None) -> str:
    if "No_Beard" in feats and rng.random() >= NO_BEARD_RATE:
        feats = [f for f in feats if f != "No_Beard"]
    if feats and keep < 1:
        kept = [f for f in feats if rng.random() < keep]
        if not kept and force is None:
            kept = [feats[int(rng.integers(len(feats)))]]
        feats = kept
    order = rng.permutation(len(feats))
    feats = [feats[i] for i in order][:max_features]
    if force is not None:  # always named, at a random place
        feats = feats[: max_features - 1]
        feats.insert(int(rng.integers(len(feats) + 1)), force)
    adjectives, posts = [], []
    for f in feats:
        adj = BEARD_ADJECTIVES if f == "_Beard" else ADJECTIVES.get(f)
        if adj and len(adjectives) < 2 and rng.random() < 0.35:
            adjectives.append(adj[int(rng.integers(len(adj)))])
        else:
            ph = BEARD_PHRASES if f == "_Beard" else PHRASES[f]
            posts.append(ph[int(rng.integers(len(ph)))])
    nouns = SUBJECTS[gender]
    noun = nouns[int(rng.integers(len(nouns)))]
    np_ = _noun_phrase(noun, adjectives)
    template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
    if noun == "face" and template.startswith("a face of"):
        template = "{np}{rest}"  # not "a face of a face ..."
    return template.format(np=np_, rest=_join(posts))


def caption(attrs_row: Sequence[int], rng: np.random.Generator, mask: Sequence[bool] | None = None, keep: float = 0.8) -> str:
    """One caption for a row of 40 attributes (+1/-1).

    ``mask`` (bool [40]) restricts the description to attributes that the data has; ``keep``
    is the chance of naming each present attribute (at least one is named when any is present).
    """
    row = np.asarray(attrs_row)
    if row.shape != (len(ATTRIBUTES),):
        raise ValueError(f"expected {len(ATTRIBUTES)} attributes, got shape {row.shape}")
    m = None if mask is None else np.asarray(mask, dtype=bool)
    gender, feats = _present(row, m)
    return _compose(gender, feats, rng, keep)


def false_caption(attrs_row: Sequence[int], rng: np.random.Generator, mask: Sequence[bool] | None = None, keep: float = 0.8) -> str:
    """A caption that does not describe the face: one false statement among true ones.

    The false statement is drawn uniformly from what the row makes false: an attribute the
    face lacks (among those ``mask`` allows), a beard on a clean-shaven face or "clean-shaven"
    on a bearded man, or the other sex. The rest is a random subset (``keep``) of the present
    attributes, worded as ``caption`` words them. Used as a hard negative text in training:
    a caption differing from a true one by a single attribute.
    """
    row = np.asarray(attrs_row)
    if row.shape != (len(ATTRIBUTES),):
        raise ValueError(f"expected {len(ATTRIBUTES)} attributes, got shape {row.shape}")
    m = None if mask is None else np.asarray(mask, dtype=bool)
    gender, feats = _present(row, m)
    known = lambda a: m is None or m[ATTR_INDEX[a]]
    options = [a for a in ATTRIBUTES if a not in ("Male", "No_Beard") and known(a) and row[ATTR_INDEX[a]] < 0]
    if known("No_Beard"):
        if row[ATTR_INDEX["No_Beard"]] > 0:
            options.append("_Beard")
        elif gender == 1 and "_Beard" in feats:
            options.append("No_Beard")
    if gender != 0:
        options.append("Male")
    if not options:
        raise ValueError("no attribute of this row can be stated falsely")
    false = options[int(rng.integers(len(options)))]
    if false == "Male":
        gender = -gender
        # the true features, without what only a man is described with
        return _compose(gender, [f for f in feats if gender == 1 or f != "No_Beard"], rng, keep)
    # not the true statement that the false one contradicts ("clean-shaven" vs "with a beard")
    feats = [f for f in feats if {f, false} != {"No_Beard", "_Beard"}]
    return _compose(gender, feats, rng, keep, force=false)


def captions(attrs: np.ndarray, seed: int, n_per_image: int = 1, mask: Sequence[bool] | None = None,
             keep: float = 0.8, indices: Sequence[int] | None = None) -> list[list[str]]:
    """``n_per_image`` captions for each row of ``attrs`` [N, 40].

    The captions of row i depend only on (seed, indices[i]) (``indices`` defaults to 0..N-1):
    pass each image's index in the whole dataset so that it keeps its captions in any split.
    """
    attrs = np.asarray(attrs)
    if indices is None:
        indices = range(len(attrs))
    if len(indices) != len(attrs):
        raise ValueError(f"{len(indices)} indices for {len(attrs)} attribute rows")
    out = []
    for i, key in zip(range(len(attrs)), indices):
        rng = np.random.default_rng([seed, int(key)])
        out.append([caption(attrs[i], rng, mask, keep) for _ in range(n_per_image)])
    return out


def prompt_for(attributes: Mapping[str, int], rng: np.random.Generator | None = None) -> str:
    """A prompt from a request {CelebA name: +1 wanted / -1 unwanted}.

    Wanted attributes are all described; unwanted ones are left unsaid (CLIP reads negations
    poorly), except ``Male`` (picks "man"/"woman") and ``No_Beard`` (-1 asks for a beard).
    Without ``rng`` the wording is the first, plainest one.
    """
    for k in attributes:
        if k not in ATTR_INDEX:
            raise ValueError(f"unknown CelebA attribute '{k}'")
    gender = 0
    if "Male" in attributes:
        gender = 1 if attributes["Male"] > 0 else -1
    feats = [a for a in ATTRIBUTES if a not in ("Male", "No_Beard") and attributes.get(a, 0) > 0]
    if "No_Beard" in attributes and attributes["No_Beard"] < 0 and not attributes.get("Goatee", 0) > 0:
        feats.append("_Beard")
        if gender == 0:
            gender = 1
    if rng is None:
        posts = [BEARD_PHRASES[0] if f == "_Beard" else PHRASES[f][0] for f in feats]
        return f"a photo of {_noun_phrase(SUBJECTS[gender][0], [])}{_join(posts)}"
    return _compose(gender, feats, rng, keep=1.0, max_features=len(ATTRIBUTES))
