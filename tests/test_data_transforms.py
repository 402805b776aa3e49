"""Batched tensor transforms: identities, reference crops, determinism, no input mutation."""

import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from robustreid.transforms import functional as T


def _imgs(n=3, h=8, w=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)


def test_hflip_twice_is_identity_and_mirrors():
    x = _imgs()
    y = T.hflip(x)
    assert torch.equal(y[..., 0], x[..., -1])
    assert torch.equal(T.hflip(y), x)


def test_random_hflip_seeded_and_per_image():
    x = _imgs(n=64)
    before = x.clone()
    a = T.random_hflip(x, 0.5, torch.Generator().manual_seed(1))
    b = T.random_hflip(x, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and torch.equal(x, before)
    flipped = [torch.equal(a[i], x[i].flip(-1)) for i in range(64)]
    same = [torch.equal(a[i], x[i]) for i in range(64)]
    assert all(f or s for f, s in zip(flipped, same))
    assert 10 < sum(flipped) < 54
    assert torch.equal(T.random_hflip(x, 0.0), x) and torch.equal(T.random_hflip(x, 1.0), x.flip(-1))


def test_pad_crop_pad_zero_is_identity():
    x = _imgs()
    assert torch.equal(T.random_pad_crop(x, 0, torch.Generator().manual_seed(0)), x)


@settings(max_examples=25, deadline=None)
@given(pad=st.integers(1, 4), seed=st.integers(0, 2**31 - 1), floaty=st.booleans())
def test_pad_crop_is_a_window_of_the_zero_padded_image(pad, seed, floaty):
    x = _imgs(n=4, h=7, w=5, seed=seed % 100)
    if floaty:
        x = x.float() / 255
    out = T.random_pad_crop(x, pad, torch.Generator().manual_seed(seed))
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = F.pad(x, (pad,) * 4)
    for i in range(4):
        windows = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                   if torch.equal(padded[i, :, dy:dy + 7, dx:dx + 5], out[i])]
        assert windows, "each crop must be a window of the padded image"


def test_resize_uint8_sizes_and_constant_images():
    x = torch.full((2, 3, 40, 20), 77, dtype=torch.uint8)
    for size in [(20, 10), (80, 40), (33, 17), (40, 20)]:
        y = T.resize(x, size)
        assert y.dtype == torch.uint8 and y.shape == (2, 3) + size
        assert int(y.min()) == 77 and int(y.max()) == 77  # a flat image stays flat, rounding is exact
    # a smooth ramp survives an up/down round trip up to rounding and border effects
    ramp = (torch.arange(16).view(16, 1) * 8 + torch.arange(8).view(1, 8) * 4).to(torch.uint8)
    z = ramp.expand(1, 3, 16, 8).clone()
    back = T.resize(T.resize(z, (32, 16)), (16, 8))
    assert back.shape == z.shape
    assert (back.float() - z.float())[..., 2:-2, 2:-2].abs().max() <= 1
    assert T.resize(z[0], "4x2").shape == (3, 4, 2)


def _triangle_weights(n_in, n_out):
    """Antialiased bilinear (triangle filter of support = scale, like PIL) from its definition."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    w = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        c = (i + 0.5) * scale
        for x in range(n_in):
            w[i, x] = max(0.0, 1.0 - abs(x + 0.5 - c) / support)
        w[i] /= w[i].sum()
    return w


def test_resize_shrink_matches_triangle_filter_reference():
    x = torch.rand(1, 3, 12, 9, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    y = T.resize(x.float(), (4, 3))
    wy, wx = _triangle_weights(12, 4), _triangle_weights(9, 3)
    ref = torch.einsum("yh,nchw,xw->ncyx", wy, x, wx)
    assert torch.allclose(y.double(), ref, atol=1e-5)


def test_to_float_and_back():
    x = _imgs()
    f = T.to_float(x)
    assert f.dtype == torch.float32 and float(f.max()) <= 1 and float(f.min()) >= 0
    assert torch.equal(T.to_uint8(f), x)
