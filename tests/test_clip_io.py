"""CLIP loading, identity and preprocessing, on a tiny randomly initialised clip.model.CLIP."""
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from model import clip_io
from torch_utils.misc import UserError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import clip
    import clip.model


def make_tiny_clip(path, seed=0):
    torch.manual_seed(seed)
    m = clip.model.CLIP(
        embed_dim=32, image_resolution=32, vision_layers=1, vision_width=64, vision_patch_size=8,
        context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=1, transformer_layers=1,
    )
    torch.save(m.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def tiny_clip_path(tmp_path_factory):
    return str(make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny.pt"))


def test_load_tiny_clip_float32_eval(tiny_clip_path):
    model = clip_io.load_clip(tiny_clip_path)
    assert not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.visual.input_resolution == 32


def test_load_missing_is_user_error(tmp_path):
    with pytest.raises(UserError, match="ViT-B/32"):
        clip_io.load_clip(str(tmp_path / "nope.pt"))
    with pytest.raises(UserError):
        clip_io.clip_identity("no-such-model")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="bad.pt"):
        clip_io.load_clip(str(bad))


def test_identity(tiny_clip_path, tmp_path):
    assert clip_io.clip_identity("ViT-B/32") == "ViT-B-32"
    ident = clip_io.clip_identity(tiny_clip_path)
    assert ident.startswith("sha256-") and "/" not in ident
    other = make_tiny_clip(tmp_path / "other.pt", seed=1)
    assert clip_io.clip_identity(str(other)) != ident


@pytest.mark.parametrize("size", [32, 48, 20])
def test_preprocess_matches_clip_pil(size):
    rng = np.random.default_rng(size)
    # Smooth-ish random image so the resampling comparison is meaningful.
    small = rng.integers(0, 256, (3, 8, 8), dtype=np.uint8)
    arr = np.array(Image.fromarray(small.transpose(1, 2, 0)).resize((size, size), Image.BILINEAR))
    ref = clip_io.clip_preprocess(32)(Image.fromarray(arr))
    u8 = torch.from_numpy(arr).permute(2, 0, 1)[None]
    got_u8 = clip_io.preprocess_tensor(u8, 32)[0]
    got_f = clip_io.preprocess_tensor(u8.float() / 127.5 - 1, 32)[0]
    assert got_u8.shape == ref.shape == (3, 32, 32)
    for got in (got_u8, got_f):
        diff = (got - ref).abs()
        assert diff.mean() < 0.01, diff.mean()
        assert diff.max() < 0.04, diff.max()


def test_preprocess_non_square_center_crop():
    x = torch.zeros(1, 3, 40, 60, dtype=torch.uint8)
    x[..., :, 25:35] = 255  # a bright band in the centre
    out = clip_io.preprocess_tensor(x, 32)
    assert out.shape == (1, 3, 32, 32)
    assert out[0, :, :, 16].mean() > out[0, :, :, 0].mean()


def test_encode_normalised(tiny_clip_path):
    model = clip_io.load_clip(tiny_clip_path)
    t = clip_io.encode_text(model, ["a man", "a woman wearing a hat", "a man"], batch_size=2)
    assert t.shape == (3, 32) and t.dtype == torch.float32
    assert torch.allclose(t.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(t[0], t[2], atol=1e-6)
    imgs = torch.randint(0, 256, (5, 3, 64, 64), dtype=torch.uint8)
    e = clip_io.encode_images(model, imgs, batch_size=2)
    assert e.shape == (5, 32)
    assert torch.allclose(e.norm(dim=-1), torch.ones(5), atol=1e-5)
    # batch size does not change the result
    e2 = clip_io.encode_images(model, imgs, batch_size=5)
    assert torch.allclose(e, e2, atol=1e-5)


def test_long_prompt(tiny_clip_path):
    model = clip_io.load_clip(tiny_clip_path)
    long = "a face " * 60
    with pytest.raises(UserError, match="context"):
        clip_io.encode_text(model, [long])
    with pytest.warns(UserWarning, match="truncated"):
        e = clip_io.encode_text(model, [long], truncate=True)
    assert e.shape == (1, 32)


def test_tokens_match_clip_tokenize(tiny_clip_path):
    model = clip_io.load_clip(tiny_clip_path)
    prompts = ["a man", "A Woman, wearing a HAT!", "", "a face " * 60]
    with pytest.warns(UserWarning, match="truncated"):
        ours = clip_io.tokenize(model, prompts, truncate=True)
    assert torch.equal(ours, clip.tokenize(prompts, context_length=77, truncate=True))


def test_plain_ascii_shortcut_matches_clip_tokenizer():
    """The tokenizer's shortcut for plain ASCII gives SimpleTokenizer.encode's tokens on random text
    (plain ASCII, and text with whitespace, "&", entities, accents, curly quotes, control characters)."""
    import random
    import string

    tok = clip.clip._tokenizer
    rng = random.Random(0)
    pools = [string.printable, string.ascii_letters + " .,!?'-", string.printable + "&;é’“”ﬁ\u3000\x00\x1b"]
    texts = ["a man", "  A  Woman,\twearing a HAT! ", "&amp; a hat", "café", "it’s", "x\x1b[31my"]
    texts += ["".join(rng.choice(pools[i % 3]) for _ in range(rng.randint(0, 40))) for i in range(3000)]
    assert sum(bool(clip_io._PLAIN_ASCII.fullmatch(t)) for t in texts) > 1000  # the shortcut is exercised
    for t in texts:
        assert clip_io._bpe_tokens(tok, t) == tok.encode(t), repr(t)


@pytest.mark.parametrize("heads,layers", [(1, 1), (2, 3)])
def test_text_features_on_prefix_equal_encode_text(tmp_path, heads, layers):
    """Cutting the context after the last end-of-text token changes nothing (causal mask)."""
    torch.manual_seed(heads * 10 + layers)
    m = clip.model.CLIP(
        embed_dim=16, image_resolution=32, vision_layers=1, vision_width=64, vision_patch_size=16,
        context_length=77, vocab_size=49408, transformer_width=32, transformer_heads=heads, transformer_layers=layers,
    ).eval()
    with torch.no_grad():  # non-trivial positional embeddings and layer norms
        m.positional_embedding.normal_(std=0.5)
        for b in m.transformer.resblocks:
            b.ln_1.weight.uniform_(0.5, 1.5)
    prompts = ["a man", "a smiling woman with blond hair and a hat", "bald", "a face " * 60]
    with pytest.warns(UserWarning, match="truncated"):
        tokens = clip_io.tokenize(m, prompts, truncate=True)
    with torch.no_grad():
        full = m.encode_text(tokens)
        for sub in (tokens, tokens[:3], tokens[2:3]):  # prefixes of 77, 12 and 3 positions
            ref = m.encode_text(sub)
            assert torch.allclose(clip_io._text_features(m, sub), ref, atol=1e-5, rtol=1e-5)
    assert torch.allclose(clip_io.encode_text(m, prompts[:3]), torch.nn.functional.normalize(full[:3], dim=-1), atol=1e-5)


# ---------------------------------------------------------------------------
# Embedding caches (dataset/embeddings.py and `data embed`)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    from dataset import toyfaces

    out = tmp_path_factory.mktemp("toy") / "data"
    toyfaces.write_dataset(out, 30, seed=2, workers=1, progress=False)
    return out


def test_embed_cache_roundtrip(toy_data, tiny_clip_path, tmp_path, monkeypatch):
    import main as cli_main
    from dataset import embeddings as emb
    from dataset.captions import captions

    rc = cli_main.main(["data", "embed", "--data", str(toy_data), "--clip", tiny_clip_path,
                        "--captions-per-image", "3", "--batch-size", "16"])
    assert rc == 0
    ident = clip_io.clip_identity(tiny_clip_path)
    d = toy_data / "embeddings" / ident
    assert (d / "image_all_r64.safetensors").is_file() and (d / "text_all_k3_s0.safetensors").is_file()

    e = emb.load_embeddings(toy_data, tiny_clip_path, compute=False)
    assert e.identity == ident and len(e) == 30
    assert e.image.shape == (30, 32) and e.text.shape == (30, 3, 32)
    assert torch.allclose(e.image.norm(dim=-1), torch.ones(30), atol=1e-5)
    assert torch.allclose(e.text.norm(dim=-1), torch.ones(30, 3), atol=1e-5)
    assert e.captions == captions(e.attrs, seed=0, n_per_image=3, mask=e.attr_mask)
    # The cached values are what the model gives.
    model = clip_io.load_clip(tiny_clip_path)
    assert torch.allclose(e.text[5, 1], clip_io.encode_text(model, [e.captions[5][1]])[0], atol=1e-5)
    from dataset.celeba import CelebADataset

    imgs = CelebADataset(toy_data, "all").images_uint8(progress=False)
    assert torch.allclose(e.image[:4], clip_io.encode_images(model, imgs[:4]), atol=1e-5)

    # Reused: no encoding happens the second time, for 'all' and for a split cut from it.
    def boom(*a, **k):
        raise AssertionError("recomputed")

    monkeypatch.setattr(clip_io, "encode_images", boom)
    monkeypatch.setattr(clip_io, "encode_text", boom)
    e2 = emb.embed_dataset(toy_data, tiny_clip_path, captions_per_image=3)
    assert torch.equal(e2.image, e.image) and torch.equal(e2.text, e.text)
    test = emb.load_embeddings(toy_data, tiny_clip_path, split="test")
    idx = [e.filenames.index(f) for f in test.filenames]
    assert len(test) == 3 and torch.equal(test.image, e.image[idx]) and test.captions == [e.captions[i] for i in idx]
    monkeypatch.undo()

    # Another CLIP model gets its own cache and other values: never mixed.
    other = make_tiny_clip(tmp_path / "other.pt", seed=5)
    e3 = emb.load_embeddings(toy_data, str(other), captions_per_image=3)
    assert e3.identity != ident and (toy_data / "embeddings" / e3.identity).is_dir()
    assert not torch.allclose(e3.image, e.image, atol=1e-3)
    # A cache whose records do not match (here: another caption seed) is not reused.
    e4 = emb.embed_dataset(toy_data, tiny_clip_path, captions_per_image=3, seed=1)
    assert e4.captions != e.captions


def test_embed_errors(toy_data, tmp_path, tiny_clip_path):
    import main as cli_main
    from dataset import embeddings as emb

    assert cli_main.main(["data", "embed", "--data", str(tmp_path / "none"), "--clip", tiny_clip_path]) == 1
    assert cli_main.main(["data", "embed", "--data", str(toy_data), "--clip", str(tmp_path / "missing.pt")]) == 1
    with pytest.raises(UserError, match="data embed"):
        emb.load_embeddings(toy_data, tiny_clip_path, split="val", captions_per_image=7, compute=False)
