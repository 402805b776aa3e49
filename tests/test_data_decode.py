"""read_image: every colour mode becomes 8-bit RGB; bad files give ImageReadError naming the file."""

import numpy as np
import pytest
import torch
from PIL import Image

from robustreid.data import ImageReadError, read_image


def _rgb(h=6, w=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_rgb_png_roundtrip_exact(tmp_path):
    arr = _rgb()
    Image.fromarray(arr).save(tmp_path / "a.png")
    t = read_image(tmp_path / "a.png")
    assert t.dtype == torch.uint8 and t.shape == (3, 6, 5)
    assert np.array_equal(t.permute(1, 2, 0).numpy(), arr)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    g = np.arange(30, dtype=np.uint8).reshape(6, 5) * 8
    Image.fromarray(g, mode="L").save(tmp_path / "g.png")
    t = read_image(tmp_path / "g.png")
    assert t.shape == (3, 6, 5)
    for c in range(3):
        assert np.array_equal(t[c].numpy(), g)


def test_rgba_composited_on_black(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 0  # fully transparent pixel -> black
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    t = read_image(tmp_path / "a.png")
    assert t.shape == (3, 4, 4)
    assert t[:, 0, 0].tolist() == [0, 0, 0]
    assert t[:, 1, 1].tolist() == [200, 200, 200]


def test_palette_and_cmyk_and_16bit(tmp_path):
    arr = _rgb(8, 8)
    pal = Image.fromarray(arr).convert("P", palette=Image.ADAPTIVE, colors=16)
    pal.save(tmp_path / "p.png")
    expect = np.asarray(pal.convert("RGB"))
    assert np.array_equal(read_image(tmp_path / "p.png").permute(1, 2, 0).numpy(), expect)

    cmyk = Image.new("CMYK", (4, 3), (0, 255, 255, 0))  # pure red in CMYK
    cmyk.save(tmp_path / "c.jpg", quality=100)
    t = read_image(tmp_path / "c.jpg")
    assert t.shape == (3, 3, 4)
    r, g, b = (t[c].float().mean().item() for c in range(3))
    assert r > 200 and g < 60 and b < 60

    g16 = np.array([[0, 65535], [257 * 100, 257 * 200]], dtype=np.uint16)
    Image.fromarray(g16).save(tmp_path / "d.png")
    t = read_image(tmp_path / "d.png")
    assert t[0].tolist() == [[0, 255], [100, 200]]


def test_missing_truncated_and_not_an_image(tmp_path):
    with pytest.raises(ImageReadError, match="nope.jpg.*does not exist"):
        read_image(tmp_path / "nope.jpg")
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "t.jpg", quality=95)
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="t.jpg"):
        read_image(tmp_path / "t.jpg")
    (tmp_path / "x.jpg").write_text("not an image")
    with pytest.raises(ValueError, match="x.jpg.*not a recognised image"):
        read_image(tmp_path / "x.jpg")
    with pytest.raises(ImageReadError, match="directory"):
        read_image(tmp_path)
