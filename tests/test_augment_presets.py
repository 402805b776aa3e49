"""The robust-training presets load, build, and take one training step (tiny inputs) with their augmentations,
hidden-layer noise and losses."""

import pytest
import torch

engine_config = pytest.importorskip("robustreid.engine.config")
models = pytest.importorskip("robustreid.models")

from robustreid.losses import build_losses  # noqa: E402
from robustreid.models.noise import attach_noise, set_progress  # noqa: E402
from robustreid.transforms.augment import AugContext, build_batch_augment  # noqa: E402

PRESETS = ["cpu_small_plain", "cpu_small_erasing", "cpu_small_patch", "cpu_small_cil", "cpu_small_igo",
           "cpu_small_npo", "cpu_small_noise", "cpu_small_corrupt", "cil_r50"]


def one_step(cfg, steps=2):
    torch.manual_seed(0)
    model = models.build_model(cfg.model, num_classes=4)
    handles = attach_noise(model, cfg.model.noise)
    aug = build_batch_augment(cfg.data.augs)
    losses = build_losses([dict(s, num_classes=4) if s["name"] == "center" else s for s in cfg.losses])
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    H, W = cfg.model.input_size
    pids = torch.arange(4).repeat_interleave(2)
    model.train()
    for it in range(steps):
        g = torch.Generator().manual_seed(it)
        batch = {"images": torch.rand(8, 3, H, W), "pids": pids, "camids": torch.zeros(8, dtype=torch.long)}
        b = aug(batch, AugContext(generator=g, epoch=it, mean=tuple(cfg.model.mean), std=tuple(cfg.model.std)))
        views = list(b.get("views") or [])
        x = torch.cat([b["images"]] + views)
        out = model(x)
        if views:  # split back as the engine does
            n = b["images"].shape[0]
            parts = {k: v for k, v in out.items() if isinstance(v, torch.Tensor) and v.shape[:1] == x.shape[:1]}
            clean = {k: v[:n] for k, v in parts.items()}
            clean["views"] = [{k: v[n * (i + 1):n * (i + 2)] for k, v in parts.items()} for i in range(len(views))]
            out = clean
        set_progress(model, it / steps)
        total, logs = losses(out, b)
        opt.zero_grad()
        total.backward()
        opt.step()
        assert torch.isfinite(total)
    return b, logs, handles


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_trains_one_step(preset):
    over = ["model.input_size=[32,16]"]
    if preset == "cil_r50":
        over += ["model.backbone=resnet18", "model.backbone_kwargs={width: 0.25}"]  # same recipe, tiny network
    cfg = engine_config.load_train_config(preset, over)
    b, logs, handles = one_step(cfg)
    names = [a["name"] for a in cfg.data.augs]
    if "augmix" in names:
        assert len(b["views"]) == 2 and "jsd" in logs and float(logs["jsd"]) >= 0
    if "igo" in names or "npo" in names:
        assert "occ_mask" in b and "clean_images" in b
    if "npo" in names:
        assert b["stripe_targets"].shape == (8, 4)
    if "corruption_aug" in names:
        assert "snow" not in b["aug_info"]["corruption"]["seen"] and "fog" in b["aug_info"]["corruption"]["held_out"]
    assert len(handles) == len(cfg.model.noise)
    if preset == "cpu_small_noise":
        assert len(handles) == 2
