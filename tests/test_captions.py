"""Captions from attributes: coverage, determinism, sensible beard handling, prompts from requests."""
from pathlib import Path

import numpy as np
import pytest

from dataset import captions as cap
from dataset.celeba import ATTR_INDEX, ATTRIBUTES, read_attributes

FIXTURE = Path("/work/shared/fixtures/celeba/list_attr_celeba.txt")


def _row(**on):
    r = np.full(40, -1, dtype=np.int8)
    r[ATTR_INDEX["No_Beard"]] = 1
    for k, v in on.items():
        r[ATTR_INDEX[k]] = v
    return r


def test_every_attribute_has_a_phrase():
    assert set(cap.PHRASES) == set(ATTRIBUTES)
    assert all(cap.PHRASES[a] and all(isinstance(p, str) and p for p in cap.PHRASES[a]) for a in ATTRIBUTES)
    assert "wearing eyeglasses" in cap.PHRASES["Eyeglasses"]


@pytest.mark.parametrize("attr", [a for a in ATTRIBUTES if a not in ("Male", "No_Beard")])
def test_each_attribute_is_described(attr):
    rng = np.random.default_rng(0)
    texts = [cap.caption(_row(**{attr: 1}), rng, keep=1.0) for _ in range(20)]
    words = {p for p in cap.PHRASES[attr]} | set(cap.ADJECTIVES.get(attr, []))
    assert all(any(w in t for w in words) for t in texts), texts[:3]


def test_subject_from_male():
    rng = np.random.default_rng(0)
    men = [cap.caption(_row(Male=1, Smiling=1), rng) for _ in range(30)]
    women = [cap.caption(_row(Smiling=1), rng) for _ in range(30)]
    assert all(any(w in t for w in ("man", "guy", "gentleman", "male")) for t in men)
    assert not any(" man" in t or "guy" in t or "gentleman" in t or "male person" in t.replace("female", "") for t in women)
    assert all(any(w in t for w in ("woman", "lady", "female")) for t in women)
    # With Male masked out, the subject is neutral.
    mask = np.ones(40, bool)
    mask[ATTR_INDEX["Male"]] = False
    neutral = [cap.caption(_row(Male=1, Smiling=1), rng, mask=mask) for _ in range(20)]
    assert not any("man" in t or "guy" in t for t in neutral)


def test_beard_handling():
    rng = np.random.default_rng(1)
    beard_words = ("beard", "bearded", "clean-shaven", "shaved", "goatee", "mustache", "moustache", "stubble")
    # A woman is never described with or without a beard, even with a bogus No_Beard = -1.
    for nb in (1, -1):
        for _ in range(50):
            t = cap.caption(_row(No_Beard=nb, Smiling=1, Eyeglasses=1), rng, keep=1.0)
            assert not any(w in t for w in beard_words), t
    bearded = [cap.caption(_row(Male=1, No_Beard=-1), rng, keep=1.0) for _ in range(30)]
    assert all("beard" in t for t in bearded)
    shaven = [cap.caption(_row(Male=1, Smiling=1), rng, keep=1.0) for _ in range(200)]
    n_said = sum(any(w in t for w in ("clean-shaven", "no beard", "shaved")) for t in shaven)
    assert 10 < n_said < 100  # sometimes, not always
    goatee = [cap.caption(_row(Male=1, No_Beard=-1, Goatee=1), rng, keep=1.0) for _ in range(30)]
    assert all("goatee" in t and "full beard" not in t and "bearded" not in t for t in goatee)


def test_deterministic_and_varied():
    attrs = np.stack([_row(Male=1, Smiling=1, Eyeglasses=1, Black_Hair=1), _row(Blond_Hair=1, Wearing_Hat=1, Bangs=1)])
    a = cap.captions(attrs, seed=5, n_per_image=6)
    b = cap.captions(attrs, seed=5, n_per_image=6)
    c = cap.captions(attrs, seed=6, n_per_image=6)
    assert a == b and a != c
    assert len(a) == 2 and all(len(x) == 6 for x in a)
    assert len(set(a[0])) > 3  # many wordings of the same face
    # Captions of an image do not depend on the other images in the batch.
    assert cap.captions(attrs, seed=5, n_per_image=6)[1] == a[1]


def test_random_subset_and_order():
    row = _row(Male=1, Smiling=1, Eyeglasses=1, Black_Hair=1, Wearing_Hat=1, Mustache=1)
    rng = np.random.default_rng(0)
    texts = [cap.caption(row, rng) for _ in range(200)]
    full = sum(all(k in t for k in ("glasses", "hat", "black", "mustache")) for t in texts)
    assert 0 < full < 200  # sometimes everything, sometimes a subset
    firsts = {min(("glasses", "hat", "black", "mustache"), key=lambda k: t.find(k) if k in t else 999) for t in texts}
    assert len(firsts) >= 3  # order varies


def test_mask_hides_attributes():
    row = _row(Male=1, Smiling=1, Big_Nose=1, Eyeglasses=1)
    mask = np.zeros(40, bool)
    for a in ("Male", "Smiling", "Eyeglasses", "No_Beard"):
        mask[ATTR_INDEX[a]] = True
    rng = np.random.default_rng(0)
    assert not any("nose" in cap.caption(row, rng, mask=mask) for _ in range(50))


@pytest.mark.skipif(not FIXTURE.is_file(), reason="CelebA attribute excerpt not available")
def test_real_rows_fit_clip_context():
    import clip

    _, attrs = read_attributes(FIXTURE)
    texts = [t for ts in cap.captions(attrs, seed=0, n_per_image=2) for t in ts]
    assert max(len(clip.clip._tokenizer.encode(t)) + 2 for t in texts) <= 77


def test_prompt_for():
    p = cap.prompt_for({"Smiling": 1, "Blond_Hair": 1, "Male": -1})
    assert "woman" in p and "smil" in p and "blond" in p
    assert "man" in cap.prompt_for({"Male": 1}).replace("woman", "")
    assert "beard" in cap.prompt_for({"No_Beard": -1}) and "man" in cap.prompt_for({"No_Beard": -1})
    assert "glasses" not in cap.prompt_for({"Eyeglasses": -1, "Male": 1})
    r1 = cap.prompt_for({"Eyeglasses": 1, "Wearing_Hat": 1}, np.random.default_rng(3))
    assert "glasses" in r1 or "spectacles" in r1
    assert r1 == cap.prompt_for({"Eyeglasses": 1, "Wearing_Hat": 1}, np.random.default_rng(3))
    with pytest.raises(ValueError):
        cap.prompt_for({"Glasses": 1})


def test_no_face_of_a_face():
    """The subject "face" (gender unknown) never lands in the "a face of ..." template."""
    rng = np.random.default_rng(0)
    texts = [cap.prompt_for({"Bald": 1, "Wearing_Hat": 1}, rng) for _ in range(300)]
    assert any(t.startswith("a face ") for t in texts)
    assert not any("face of a face" in t or "face of a pale face" in t for t in texts)


def _named(text: str, attr: str) -> bool:
    words = {p.removeprefix("with ") for p in cap.PHRASES[attr]} | set(cap.ADJECTIVES.get(attr, []))
    return any(w in text for w in words)


def test_false_caption_states_one_absent_thing():
    """A hard-negative caption names exactly what the face lacks: an absent attribute, a beard on a
    clean-shaven face, "clean-shaven" on a bearded man, or the other sex; every option is drawn."""
    rng = np.random.default_rng(0)
    mask = np.zeros(40, bool)
    for a in ("Male", "No_Beard", "Smiling", "Eyeglasses", "Black_Hair", "Wearing_Hat"):
        mask[ATTR_INDEX[a]] = True
    man = _row(Male=1, Smiling=1, Black_Hair=1)  # clean-shaven, no glasses, no hat
    seen = set()
    for _ in range(300):
        t = cap.false_caption(man, rng, mask=mask, keep=0.7)
        woman = any(w in t for w in ("woman", "lady", "female"))
        glasses, hat = _named(t, "Eyeglasses"), _named(t, "Wearing_Hat")
        beard = any(w.removeprefix("with ") in t for w in cap.BEARD_PHRASES) or "bearded" in t
        assert woman + glasses + hat + beard == 1, t  # one false statement
        assert "clean-shaven" not in t or not beard
        seen |= {k for k, v in dict(woman=woman, glasses=glasses, hat=hat, beard=beard).items() if v}
    assert seen == {"woman", "glasses", "hat", "beard"}
    bearded = _row(Male=1, No_Beard=-1, Eyeglasses=1, Black_Hair=1, Smiling=1, Wearing_Hat=1)
    texts = [cap.false_caption(bearded, rng, mask=mask, keep=1.0) for _ in range(200)]
    shaven = [t for t in texts if any(w in t for w in ("clean-shaven", "no beard", "shaved"))]
    assert shaven and all("beard" not in t.replace("no beard", "") for t in shaven)  # the beard is not also said
    assert all(any(w in t for w in ("woman", "lady", "female")) for t in texts if t not in shaven)
    # Deterministic for a seed; a row with nothing false to say is an error.
    a = [cap.false_caption(man, np.random.default_rng(5), mask=mask) for _ in range(3)]
    assert a == [cap.false_caption(man, np.random.default_rng(5), mask=mask) for _ in range(3)]
    only_sex_unknown = np.zeros(40, bool)
    only_sex_unknown[ATTR_INDEX["Smiling"]] = True
    with pytest.raises(ValueError):
        cap.false_caption(_row(Smiling=1), rng, mask=only_sex_unknown)
