"""Activation maps and similarity-target Grad-CAM on constructed models whose answer is known by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from robustreid.viz.actmap import activation_maps
from robustreid.viz.gradcam import cam_weights, grad_cam, grad_cams
from robustreid.viz.layers import capture, default_layers, get_layer, to_map, token_grid, upsample
from robustreid.viz.sheet import row_overlays


class TopHalf(nn.Module):
    """Sees only the top half of the image: a 4×4 stride-4 patch convolution of the masked input."""

    input_size = (32, 16)

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 4, stride=4, bias=False), nn.ReLU())

    def forward(self, x):
        x = x.float() / 255 if x.dtype == torch.uint8 else x
        mask = torch.zeros_like(x)
        mask[:, :, : x.shape[2] // 2] = 1
        return self.features(x * mask).mean(dim=(2, 3))


def test_activation_map_of_a_top_half_model_is_zero_on_the_bottom_half():
    model = TopHalf().eval()
    imgs = torch.randint(0, 256, (3, 3, 32, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    maps = activation_maps(model, imgs, {"f": "features"})["f"]
    assert maps.values.shape == (3, 8, 4) and not maps.bands
    assert torch.all(maps.values[:, 4:] == 0)
    assert torch.all(maps.values[:, :4].amax(dim=(1, 2)) > 0)
    # the definition: mean over channels of the squared activation
    x = imgs.float() / 255
    x[:, :, 16:] = 0
    ref = model.features(x).pow(2).mean(dim=1)
    torch.testing.assert_close(maps.values, ref)
    # at image resolution, zero from one half-cell below the middle on (bilinear reaches 2 px across the edge)
    big = upsample(maps.values, (32, 16))
    assert torch.all(big[:, 18:] == 0) and torch.all(big[:, :14].amax(dim=(1, 2)) > 0)


class PatchNet(nn.Module):
    """embedding = GAP(ReLU(conv(x))): channel 0 fires on saturated red, channels 1-3 on green, blue, brightness."""

    input_size = (32, 16)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=True)
        w = torch.zeros(4, 3, 3, 3)
        w[0, 0], w[0, 1], w[0, 2] = 2 / 9, -2 / 9, -2 / 9
        w[1, 1], w[2, 2] = 1 / 9, 1 / 9
        w[3] = 1 / 27
        with torch.no_grad():
            self.conv.weight.copy_(w)
            self.conv.bias.copy_(torch.tensor([-0.3, 0.0, 0.0, 0.0]))
        self.act = nn.ReLU()

    def forward(self, x):
        x = x.float() / 255 if x.dtype == torch.uint8 else x
        return self.act(self.conv(x)).mean(dim=(2, 3))


def _scene(rng, top, left, background=True):
    img = np.zeros((3, 32, 16), dtype=np.float32)
    if background:  # cluttered greens, blues and greys, never saturated red
        img[1:] = rng.uniform(0.2, 0.9, size=(2, 32, 16))
        img[0] = rng.uniform(0.0, 0.5, size=(32, 16))
    img[:, top:top + 8, left:left + 8] = np.array([1.0, 0.0, 0.0])[:, None, None]
    return torch.from_numpy((img * 255).round().astype(np.uint8))


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_similarity_gradcam_peaks_at_the_pasted_discriminative_patch(method):
    rng = np.random.default_rng(0)
    model = PatchNet().eval()
    boxes = [(3, 2), (20, 6), (12, 0)]
    imgs = torch.stack([_scene(rng, t, l) for t, l in boxes])
    # the reference: the identity's patch alone (its true match shows the patch, nothing else of the scene)
    ref = model(torch.stack([_scene(rng, 10, 4, background=False)] * 3))
    cams = grad_cam(model, imgs, ref, "conv", method=method).values
    for cam, (t, l) in zip(cams, boxes):
        inside = torch.zeros(32, 16, dtype=torch.bool)
        inside[max(t - 1, 0):t + 9, max(l - 1, 0):l + 9] = True  # the patch and the 3×3 kernel's rim
        y, x = divmod(int(torch.argmax(cam)), 16)
        assert inside[y, x], (method, (y, x), (t, l))
        assert cam[inside].mean() > 5 * cam[~inside].mean()


def test_gradcam_equals_the_definition_for_a_pooled_conv_layer():
    """For f = GAP(A) and s = cos(f, r): ∂s/∂A_cij = (r̂_c − s f̂_c) / (|f| h w), w_c its spatial mean."""
    rng = np.random.default_rng(3)
    model = PatchNet().eval()
    imgs = torch.stack([_scene(rng, 5, 3), _scene(rng, 18, 7)])
    ref = torch.randn(2, 4, generator=torch.Generator().manual_seed(0)).abs()
    got = grad_cam(model, imgs, ref, "act").values
    with torch.no_grad():
        A = model.act(model.conv(imgs.float() / 255)).double()
    f = A.mean(dim=(2, 3))
    fn, rn = f / f.norm(dim=1, keepdim=True), ref.double() / ref.double().norm(dim=1, keepdim=True)
    s = (fn * rn).sum(dim=1, keepdim=True)
    w = (rn - s * fn) / f.norm(dim=1, keepdim=True) / (32 * 16)
    expect = (w[:, :, None, None] * A).sum(dim=1).clamp_min(0)
    torch.testing.assert_close(got.double(), expect, rtol=1e-4, atol=1e-9)


def test_gradcam_plus_plus_weights_by_hand():
    A = torch.tensor([1.0, 3.0]).view(1, 1, 2, 1)
    # G = 0.5 everywhere: α = 0.25 / (0.5 + 4 · 0.125) = 0.25 at each position -> w = 2 · 0.25 · 0.5
    assert cam_weights(A, torch.full((1, 1, 2, 1), 0.5), "gradcam++").item() == pytest.approx(0.25, abs=1e-5)
    # G = [0.5, -1]: the negative position has α = 1 / (2 − 4) but ReLU(G) = 0 -> only 0.25 · 0.5 remains
    G = torch.tensor([0.5, -1.0]).view(1, 1, 2, 1)
    assert cam_weights(A, G, "gradcam++").item() == pytest.approx(0.125, abs=1e-5)
    assert cam_weights(A, G, "gradcam").item() == pytest.approx(-0.25)
    with pytest.raises(ValueError, match="unknown CAM method"):
        cam_weights(A, G, "scorecam")


def test_self_reference_clean_image_uses_the_projection():
    model = PatchNet().eval()
    img = _scene(np.random.default_rng(5), 4, 4)[None]
    own = model(img)
    flat = grad_cam(model, img, own, "act").values  # cosine at its maximum: gradient zero
    assert float(flat.abs().max()) < 1e-6
    proj = grad_cam(model, img, own, "act", project=torch.tensor([True])).values
    assert float(proj.max()) > 0


def test_token_and_stripe_outputs_become_maps():
    grid = torch.arange(2 * 6 * 5, dtype=torch.float32).view(2, 5, 3, 2)  # N×C×h×w
    tokens = torch.cat([torch.full((2, 1, 5), -1.0), grid.flatten(2).transpose(1, 2)], dim=1)  # cls + 6 patches

    class Bare(nn.Module):
        pass

    assert token_grid(Bare(), 7, (96, 64)) == (3, 2)
    torch.testing.assert_close(to_map(tokens, Bare(), (96, 64)), grid)
    scores = torch.tensor([[0.9, 0.1, 0.5, 1.0]])
    for s in (scores, scores[..., None]):
        m = to_map(s, Bare(), (32, 16))
        assert m.shape == (1, 1, 4, 1) and torch.equal(m[0, 0, :, 0], scores[0])
    band = upsample(m[:, 0], (8, 2))[0]
    assert torch.equal(band[:, 0], scores[0].repeat_interleave(2))
    with pytest.raises(ValueError, match="not a map"):
        to_map(torch.zeros(1, 256), Bare(), (32, 16))


class StripeScorer(nn.Module):
    """A FED-like head: a per-stripe sigmoid score module whose output is N×4×1."""

    input_size = (32, 16)

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 4, stride=4), nn.ReLU())
        self.oem = nn.Sequential(nn.Linear(4, 1), nn.Sigmoid())

    def forward(self, x):
        fm = self.backbone(x.float())
        stripes = fm.view(x.shape[0], 4, 4, 2, 4).mean(dim=(3, 4)).transpose(1, 2)  # N×4 stripes×4 channels
        return (self.oem(stripes) * stripes).flatten(1)


def test_stripe_scores_are_shown_as_bands():
    model = StripeScorer().eval()
    imgs = torch.randint(0, 256, (2, 3, 32, 16), dtype=torch.uint8)
    maps = activation_maps(model, imgs, {"scores": "oem", "last stage": "backbone"})
    assert maps["scores"].bands and maps["scores"].values.shape == (2, 4, 1)
    with capture(model, ["oem"]) as store:
        model(imgs.float() / 255)
    torch.testing.assert_close(maps["scores"].values[..., 0], store["oem"][..., 0])
    cells = row_overlays(list(imgs), maps["scores"].values, ["clean", "fog s3"], bands=True)
    assert cells[0].bands == pytest.approx(store["oem"][0, :, 0].tolist())
    assert default_layers(model) == {"last stage": "backbone.1"}  # the last child of the backbone with a map


def test_capture_keeps_the_graph_even_with_inplace_ops_after_the_layer():
    net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(inplace=True))
    x = torch.randn(1, 3, 4, 4)
    with capture(net, ["0"], keep_graph=True) as store:
        y = net(x).sum()
        before = store["0"].detach().clone()
        (g,) = torch.autograd.grad(y, store["0"])
    torch.testing.assert_close(store["0"].detach(), before)
    torch.testing.assert_close(g, (before > 0).float())


def test_unknown_or_idle_layers_are_named():
    with pytest.raises(ValueError, match="closest: features"):
        get_layer(TopHalf(), "feature")
    model = TopHalf().eval()
    model.classifier = nn.Linear(8, 3)  # exists, never runs in eval
    img = torch.zeros(1, 3, 32, 16, dtype=torch.uint8)
    with pytest.raises(ValueError, match="did not run"):
        grad_cams(model, img, torch.ones(1, 8), ["classifier"])
    with pytest.raises(ValueError, match="did not run"):
        activation_maps(model, img, {"c": "classifier"})
