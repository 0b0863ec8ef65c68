"""CelebA-format reading: the real attribute file, malformed input, and the toy-face round trip."""
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import main as cli_main
from dataset import toyfaces
from dataset.celeba import ATTR_INDEX, ATTRIBUTES, CelebADataset, read_attributes, read_partition
from torch_utils.misc import UserError

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "celeba" / "list_attr_celeba.txt"
if not FIXTURE.is_file():
    FIXTURE = Path("/work/shared/fixtures/celeba/list_attr_celeba.txt")


@pytest.mark.skipif(not FIXTURE.is_file(), reason="CelebA attribute excerpt not available")
def test_real_attribute_file():
    names, attrs = read_attributes(FIXTURE)
    assert len(names) == 500 and attrs.shape == (500, 40) and attrs.dtype == np.int8
    assert names[0] == "000001.jpg" and names[-1] == "000500.jpg"
    assert set(np.unique(attrs)) == {-1, 1}
    # Known rows of CelebA: 000001 is a smiling young woman with arched eyebrows and no beard;
    # 000003 is a young man with big lips and a pointy nose.
    r1 = dict(zip(ATTRIBUTES, attrs[0]))
    assert r1["Male"] == -1 and r1["Smiling"] == 1 and r1["Arched_Eyebrows"] == 1 and r1["No_Beard"] == 1
    assert r1["Young"] == 1 and r1["Eyeglasses"] == -1 and r1["5_o_Clock_Shadow"] == -1
    r3 = dict(zip(ATTRIBUTES, attrs[2]))
    assert r3["Male"] == 1 and r3["Big_Lips"] == 1 and r3["Pointy_Nose"] == 1 and r3["Smiling"] == -1
    assert attrs[6, 0] == 1  # 000007.jpg starts with a five o'clock shadow
    assert 0.3 < (attrs[:, ATTR_INDEX["Male"]] == 1).mean() < 0.6


def _attr_file(path, rows, count=None, eol="\r\n"):
    lines = [str(len(rows) if count is None else count), " ".join(ATTRIBUTES) + " "] + rows
    Path(path).write_bytes((eol.join(lines) + eol).encode())
    return path


def test_malformed_rows(tmp_path):
    good = "000001.jpg " + " ".join(["-1"] * 40)
    names, attrs = read_attributes(_attr_file(tmp_path / "ok.txt", [good, good.replace("000001", "000002")]))
    assert names == ["000001.jpg", "000002.jpg"] and (attrs == -1).all()
    with pytest.raises(UserError, match=r"short\.txt, line 4: .*39 values"):
        read_attributes(_attr_file(tmp_path / "short.txt", [good, "000002.jpg " + " ".join(["1"] * 39)]))
    with pytest.raises(UserError, match=r"badval\.txt, line 3: value '0' for Bald"):
        bad = "000001.jpg " + " ".join(["-1"] * 4 + ["0"] + ["-1"] * 35)
        read_attributes(_attr_file(tmp_path / "badval.txt", [bad]))
    with pytest.raises(UserError, match=r"count\.txt, line 1"):
        read_attributes(_attr_file(tmp_path / "count.txt", [good], count=3))
    with pytest.raises(UserError, match="not found"):
        read_attributes(tmp_path / "missing.txt")
    (tmp_path / "part.txt").write_text("000001.jpg 0\n000002.jpg 7\n")
    with pytest.raises(UserError, match=r"part\.txt, line 2"):
        read_partition(tmp_path / "part.txt")


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy") / "data"
    assert cli_main.main(["data", "synth", "--out", str(out), "--n", "50", "--seed", "3", "--workers", "1"]) == 0
    return out


def test_synth_roundtrip(toy_dir):
    names, attrs = read_attributes(toy_dir / "list_attr_celeba.txt")
    assert len(names) == 50 and names[0] == "000001.jpg"
    part = read_partition(toy_dir / "list_eval_partition.txt")
    assert [sum(v == s for v in part.values()) for s in range(3)] == [40, 5, 5]
    full = CelebADataset(toy_dir, "all")
    assert len(full) == 50 and full.filenames == names
    assert np.array_equal(full.attrs, attrs)
    assert full.rendered_attributes == sorted(toyfaces.RENDERED_ATTRIBUTES, key=ATTRIBUTES.index)
    img, a = full[4]
    assert img.shape == (3, 64, 64) and img.dtype == torch.float32 and -1 <= img.min() and img.max() <= 1
    assert torch.equal(a, torch.from_numpy(attrs[4].astype(np.float32)))
    # The stored JPEG is the rendered face after its JPEG round trip.
    ref, ref_attrs = toyfaces.render(3, 4, jpeg=True)
    assert np.array_equal(ref_attrs, attrs[4])
    got = ((img.permute(1, 2, 0) + 1) * 127.5).round().numpy()
    assert np.abs(got - ref).mean() < 1.0
    train, val, test = (CelebADataset(toy_dir, s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (40, 5, 5)
    assert set(train.filenames).isdisjoint(test.filenames)
    u8 = train.images_uint8(progress=False)
    assert u8.shape == (40, 3, 64, 64) and u8.dtype == torch.uint8
    assert train.cache_path().is_file()
    again = CelebADataset(toy_dir, "train").images_uint8(progress=False)
    assert torch.equal(u8, again)
    x0, _ = train[0]
    assert torch.allclose(u8[0].float() / 127.5 - 1, x0)
    # Another resolution is cached separately and resized.
    small = CelebADataset(toy_dir, "val", resolution=32)
    assert small.images_uint8(progress=False).shape == (5, 3, 32, 32)
    assert small.cache_path() != CelebADataset(toy_dir, "val").cache_path()


def test_synth_deterministic_and_parallel(tmp_path, toy_dir):
    out = tmp_path / "again"
    toyfaces.write_dataset(out, 50, seed=3, workers=2, chunk=20, progress=False)
    assert (out / "list_attr_celeba.txt").read_bytes() == (toy_dir / "list_attr_celeba.txt").read_bytes()
    for f in ("000001.jpg", "000033.jpg", "000050.jpg"):
        assert (out / "img_align_celeba" / f).read_bytes() == (toy_dir / "img_align_celeba" / f).read_bytes()


def test_zip_layout_and_crop(tmp_path, toy_dir):
    from PIL import Image

    root = tmp_path / "celeba"
    root.mkdir()
    for f in ("list_attr_celeba.txt", "list_eval_partition.txt"):
        shutil.copy(toy_dir / f, root / f)
    # Real CelebA images are 178x218: write the first ones at that size into a zip.
    with zipfile.ZipFile(root / "img_align_celeba.zip", "w") as z:
        for i in range(50):
            name = f"{i + 1:06d}.jpg"
            im = Image.open(toy_dir / "img_align_celeba" / name).resize((178, 178))
            canvas = Image.new("RGB", (178, 218), (255, 0, 0))  # red bands must be cropped away
            canvas.paste(im, (0, 20))
            canvas.save(tmp_path / "x.jpg", quality=95)
            z.write(tmp_path / "x.jpg", f"img_align_celeba/{name}")
    ds = CelebADataset(root, "test", resolution=64)
    img, _ = ds[0]
    assert img.shape == (3, 64, 64)
    red = img[0] - (img[1] + img[2]) / 2
    assert red[:2].mean() < 0.5 and red[-2:].mean() < 0.5  # no red bands left


def test_bad_inputs(tmp_path, toy_dir):
    with pytest.raises(UserError, match="not found"):
        CelebADataset(tmp_path / "nope")
    root = tmp_path / "broken"
    shutil.copytree(toy_dir, root, ignore=shutil.ignore_patterns("cache"))
    (root / "img_align_celeba" / "000002.jpg").write_bytes(b"garbage")
    ds = CelebADataset(root, "train")
    with pytest.raises(UserError, match=r"000002\.jpg: cannot decode"):
        ds[1]
    os.remove(root / "img_align_celeba" / "000003.jpg")
    with pytest.raises(UserError, match=r"000003\.jpg: image not found"):
        ds[2]
    shutil.rmtree(root / "img_align_celeba")
    with pytest.raises(UserError, match="image folder not found"):
        CelebADataset(root, "train")
    with pytest.raises(UserError, match="split"):
        CelebADataset(toy_dir, "dev")


def test_cli_errors(tmp_path, capsys):
    rc = cli_main.main(["data", "synth", "--out", str(tmp_path / "x"), "--n", "0"])
    assert rc == 1 and "error: --n" in capsys.readouterr().err
