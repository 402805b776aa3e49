"""Parity of robustreid's similarity-target Grad-CAM / Grad-CAM++ with the maintained pytorch-grad-cam package.

pytorch-grad-cam cannot be installed next to our CPU-only torch (it needs torchvision; docs/viz.md says why), so
this check runs it from a scratch environment with its torchvision import stubbed (Grad-CAM never calls it)::

    python3 -m venv /tmp/gc && /tmp/gc/bin/pip install --no-deps grad-cam==1.5.7 ttach opencv-python-headless
    PYTHONPATH=src:/tmp/gc/lib/python3.11/site-packages OMP_NUM_THREADS=1 .venv/bin/python \
        benchmarks/viz_gradcam_parity.py

Both maps go through the package's own scaling (min-max per layer, resize, min-max), so what is compared is the
class-activation map itself: ReLU(sum_c w_c A_c) with the package's weights and ours, on the same model, layer,
inputs and cosine-similarity targets.
"""
import sys, types
import numpy as np
import torch
# pytorch-grad-cam imports torchvision at module level (transforms in utils/image.py, ops in model_targets.py) but
# Grad-CAM itself never calls it: stub the module so the package imports against our CPU-only torch.
tv = types.ModuleType("torchvision"); tvt = types.ModuleType("torchvision.transforms")
tvtf = types.ModuleType("torchvision.transforms.functional")
for n in ("Compose", "Normalize", "ToTensor"):
    setattr(tvt, n, object)
tvtf.resize = None
tv.transforms = tvt; tvt.functional = tvtf
sys.modules.update({"torchvision": tv, "torchvision.transforms": tvt, "torchvision.transforms.functional": tvtf})
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
from pytorch_grad_cam.utils.image import scale_cam_image
from robustreid.models import ModelConfig, build_model
from robustreid.viz.gradcam import grad_cam
from robustreid.viz.layers import get_layer, token_grid

class CosTarget:
    def __init__(self, ref): self.ref = ref
    def __call__(self, out): return torch.nn.functional.cosine_similarity(out, self.ref, dim=0)

torch.manual_seed(0)
cases = {
    "resnet18 BoT": (ModelConfig(backbone="resnet18", backbone_kwargs={"width": 0.5}, input_size=(128, 64)),
                     "backbone.layer4", None),
    "ViT-tiny BoT (cls)": (ModelConfig(backbone="vit_tiny_patch16", pooling="cls", input_size=(128, 64),
                                       backbone_kwargs={"depth": 4}), "backbone.blocks.3.norm1", "vit"),
}
for name, (cfg, layer, kind) in cases.items():
    model = build_model(cfg, 10).eval()
    x = torch.randint(0, 256, (6, 3, 128, 64), dtype=torch.uint8)
    ref = model(torch.randint(0, 256, (6, 3, 128, 64), dtype=torch.uint8).float() / 255).detach()
    reshape = None
    if kind == "vit":
        h, w = token_grid(model, 1 + 8 * 4, (128, 64))
        reshape = lambda t: t[:, 1:].reshape(t.shape[0], h, w, t.shape[2]).permute(0, 3, 1, 2)
    for ours_m, Theirs in (("gradcam", GradCAM), ("gradcam++", GradCAMPlusPlus)):
        ours = grad_cam(model, x, ref, layer, method=ours_m).values.numpy()
        ours_scaled = scale_cam_image(scale_cam_image(ours, (64, 128)))  # their per-layer then final scaling
        cam = Theirs(model=model, target_layers=[get_layer(model, layer)], reshape_transform=reshape)
        theirs = cam(input_tensor=x.float() / 255, targets=[CosTarget(r) for r in ref])
        print(f"{name:20s} {ours_m:10s} max |ours - pytorch-grad-cam| = {np.abs(ours_scaled - theirs).max():.2e}")
