"""Layers of any model by name: find them, hook them, and turn what they output into a spatial map.

Every picture of ``robustreid viz`` looks at a module of ``model.named_modules()`` by its dotted name, so it works
on any model — BoT on ResNet, EfficientNet-Lite or ViT, IGOAS's two branches, FED's stripes — without the model
knowing about it. What a layer outputs becomes a map by its shape (:func:`to_map`):

- ``N×C×h×w`` (a CNN stage): as it is;
- ``N×T×C`` (transformer tokens): the last ``h·w`` tokens reshaped to the patch grid (class tokens dropped);
- ``N×K`` or ``N×K×1`` with K ≤ 32 (one score per horizontal stripe, e.g. FED's occlusion scores): K bands, top
  to bottom, as an ``N×1×K×1`` map.

:func:`default_layers` picks sensible layers when none is named (the last stage; a method's own branches).
"""

from __future__ import annotations

import contextlib
import difflib
import math
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..engine.checkpoint import unwrap
from ..engine.extract import model_input_size

#: outputs of at most this many values per image are read as per-stripe scores (bands)
MAX_BANDS = 32



def _present(model: nn.Module, wanted: Dict[str, str]) -> Dict[str, str]:
    """The entries of ``wanted`` ({label: module name}) whose module exists in ``model``."""
    names = {n for n, _ in model.named_modules()}
    return {label: n for label, n in wanted.items() if n in names}


def _igoas_layers(model: nn.Module, purpose: str) -> Dict[str, str]:
    """IGOAS: each branch's last map — the global branch's extra block, the suppression branch's output CBAM."""
    return _present(model, {"global branch": "global_block", "suppression branch": "occ_att_out"})


def _fed_layers(model: nn.Module, purpose: str) -> Dict[str, str]:
    """FED: the backbone's last stage and, for activation maps, the OEM's visibility score of each stripe."""
    out = generic_layers(model, purpose)
    if purpose == "actmap":
        out.update(_present(model, {"stripe scores (OEM)": "oem"}))
    return out


#: method name (``model.config.name``) -> function(model, purpose) -> {label: module name}: a method's own layers
METHOD_LAYERS: Dict[str, Callable[[nn.Module, str], Dict[str, str]]] = {"igoas": _igoas_layers, "fed": _fed_layers}


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The module called ``name`` in ``model.named_modules()`` (clear error with the closest names)."""
    modules = dict(unwrap(model).named_modules())
    if name in modules:
        return modules[name]
    close = difflib.get_close_matches(name, list(modules), n=5, cutoff=0.4)
    hint = f"; closest: {', '.join(close)}" if close else ""
    raise ValueError(f"layer {name!r} is not a module of {type(unwrap(model)).__name__}{hint} "
                     f"(list them with `robustreid viz actmap --list-layers`)")


def _first_tensor(out, name: str) -> torch.Tensor:
    if torch.is_tensor(out):
        return out
    if isinstance(out, (tuple, list)) and out and torch.is_tensor(out[0]):
        return out[0]
    if isinstance(out, dict):
        for v in out.values():
            if torch.is_tensor(v):
                return v
    raise ValueError(f"layer {name!r} outputs {type(out).__name__}, not a tensor")


@contextlib.contextmanager
def capture(model: nn.Module, names: Sequence[str], *, keep_graph: bool = False) -> Iterator[Dict[str, torch.Tensor]]:
    """Within the block, every forward stores the output of each named layer in the yielded dict (the last call
    wins when a module runs several times). With ``keep_graph`` the stored tensor stays in the autograd graph and
    the layer passes a copy on, so in-place operations after it cannot change what was stored."""
    store: Dict[str, torch.Tensor] = {}
    handles = []

    def hook_for(name: str):
        def hook(_module, _inputs, out):
            t = _first_tensor(out, name)
            if not keep_graph:
                store[name] = t.detach()
                return None
            store[name] = t
            if torch.is_tensor(out):
                return out.clone()
            return None

        return hook

    try:
        for name in names:
            handles.append(get_layer(model, name).register_forward_hook(hook_for(name)))
        yield store
    finally:
        for h in handles:
            h.remove()


def token_grid(model: nn.Module, tokens: int, image_hw: Tuple[int, int]) -> Tuple[int, int]:
    """(h, w) of the patch grid for ``tokens`` tokens: the transformer backbone's own ``grid`` when it fits, else
    the factorisation of ``tokens`` minus up to 4 prefix tokens closest to the image's aspect ratio."""
    for m in unwrap(model).modules():
        grid = getattr(m, "grid", None)
        if isinstance(grid, tuple) and len(grid) == 2 and 0 < grid[0] * grid[1] <= tokens <= grid[0] * grid[1] + 4:
            return int(grid[0]), int(grid[1])
    ratio = image_hw[0] / max(image_hw[1], 1)
    best = None
    for prefix in range(0, 5):
        n = tokens - prefix
        for h in range(1, n + 1):
            if n % h == 0:
                err = abs(math.log((h / (n // h)) / ratio))
                if best is None or err < best[0] - 1e-9:
                    best = (err, h, n // h)
        if best is not None and best[0] < 0.05:
            break
    if best is None or best[0] > 0.7:
        raise ValueError(f"cannot arrange {tokens} tokens into a patch grid of aspect {ratio:.2f}")
    return best[1], best[2]


def to_map(out: torch.Tensor, model: nn.Module, image_hw: Tuple[int, int], name: str = "layer") -> torch.Tensor:
    """A layer's output as an N×C×h×w map (see the module docstring for the three cases)."""
    if out.dim() == 4:
        return out
    if out.dim() == 3 and out.shape[-1] == 1 and out.shape[1] <= MAX_BANDS:
        out = out[..., 0]
    if out.dim() == 2:
        if out.shape[1] > MAX_BANDS:
            raise ValueError(f"layer {name!r} outputs N×{out.shape[1]} vectors, not a map; pick a stage or a "
                             f"per-stripe score (at most {MAX_BANDS} values)")
        return out[:, None, :, None]
    if out.dim() == 3:
        h, w = token_grid(model, out.shape[1], image_hw)
        patches = out[:, out.shape[1] - h * w:]
        return patches.transpose(1, 2).reshape(out.shape[0], out.shape[2], h, w)
    raise ValueError(f"layer {name!r} outputs shape {tuple(out.shape)}; expected N×C×h×w, N×tokens×C or N×stripes")


def is_bands(m: torch.Tensor) -> bool:
    """True for a per-stripe score map (N×1×K×1)."""
    return m.dim() == 4 and m.shape[1] == 1 and m.shape[3] == 1


def _spatial(t: torch.Tensor) -> bool:
    return (t.dim() == 4 and t.shape[2] * t.shape[3] > 1) or t.dim() == 3


def _probe(model: nn.Module, parent: nn.Module, prefix: str) -> List[str]:
    """Names of ``parent``'s direct children whose output is spatial, in the order they finished on a dummy input."""
    order: List[str] = []
    handles = []
    for child_name, child in parent.named_children():
        full = f"{prefix}{child_name}"

        def hook(_m, _i, out, full=full):
            try:
                t = _first_tensor(out, full)
            except ValueError:
                return
            if _spatial(t):
                if full in order:
                    order.remove(full)
                order.append(full)

        handles.append(child.register_forward_hook(hook))
    h, w = model_input_size(model)
    try:
        p = next(model.parameters(), None)
        x = torch.zeros(1, 3, h, w, device=p.device if p is not None else "cpu")
        was = model.training
        model.eval()
        with torch.no_grad():
            model(x)
        model.train(was)
    finally:
        for hd in handles:
            hd.remove()
    return order


def default_layers(model: nn.Module, purpose: str = "actmap") -> Dict[str, str]:
    """{label: module name} to show when no layer is named (``purpose``: ``actmap`` or ``gradcam``).

    A model attribute ``viz_layers`` ({label: name}) wins; then the method's rule in :data:`METHOD_LAYERS` (IGOAS:
    each branch; FED: the last stage and the per-stripe OEM scores); then :func:`generic_layers`."""
    m = unwrap(model)
    own = getattr(m, "viz_layers", None)
    if isinstance(own, dict) and own:
        return dict(own)
    method = getattr(getattr(m, "config", None), "name", None)
    if method in METHOD_LAYERS:
        found = METHOD_LAYERS[method](m, purpose)
        if found:
            return found
    return generic_layers(m, purpose)


def generic_layers(model: nn.Module, purpose: str = "actmap") -> Dict[str, str]:
    """The last stage of any model.

    - a transformer backbone (``blocks``): its last block for ``actmap``; for ``gradcam`` the LayerNorm in front of
      the last block's attention (``blocks.L.norm1``), because the patch tokens that leave the last block no longer
      reach the class token;
    - otherwise the last direct child of ``model.backbone`` (or of the model) with a spatial output on a dummy
      input (ResNet ``layer4``, EfficientNet-Lite ``head``)."""
    m = unwrap(model)
    backbone = getattr(m, "backbone", None)
    parent, prefix = (backbone, "backbone.") if isinstance(backbone, nn.Module) else (m, "")
    blocks = getattr(parent, "blocks", None)
    if isinstance(blocks, nn.ModuleList) and len(blocks):
        last = f"{prefix}blocks.{len(blocks) - 1}"
        if purpose == "gradcam" and hasattr(blocks[-1], "norm1"):
            return {"last block (attention input)": f"{last}.norm1"}
        return {"last block": last}
    order = _probe(m, parent, prefix)
    if not order:
        raise ValueError(f"{type(m).__name__}: no child module with a spatial output; name a layer with --layer")
    return {"last stage": order[-1]}


def list_layers(model: nn.Module) -> List[Tuple[str, str]]:
    """(name, output shape) of every module on a dummy input at the model's input size, in execution order."""
    m = unwrap(model)
    shapes: Dict[str, str] = {}
    handles = []
    for name, mod in m.named_modules():
        if not name:
            continue

        def hook(_m, _i, out, name=name):
            try:
                shapes[name] = "×".join(str(s) for s in _first_tensor(out, name).shape[1:])
            except ValueError:
                shapes[name] = type(out).__name__
        handles.append(mod.register_forward_hook(hook))
    h, w = model_input_size(m)
    try:
        was = m.training
        m.eval()
        with torch.no_grad():
            m(torch.zeros(1, 3, h, w, device=next(m.parameters()).device))
        m.train(was)
    finally:
        for hd in handles:
            hd.remove()
    return list(shapes.items())


def upsample(maps: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """N×h×w (or N×1×h×w) maps -> N×H×W: bilinear for spatial maps, nearest for stripe bands (crisp edges)."""
    x = maps if maps.dim() == 4 else maps[:, None]
    mode = "nearest" if x.shape[-1] == 1 else "bilinear"
    kw = {} if mode == "nearest" else {"align_corners": False}
    return torch.nn.functional.interpolate(x.float(), size=tuple(size), mode=mode, **kw)[:, 0]


def normalise(maps: torch.Tensor, lower: Optional[float] = 0.0) -> torch.Tensor:
    """Each N×… map scaled to [0, 1]: divided by its maximum (``lower=0``: zero stays zero) or min–max scaled
    (``lower=None``). A map that is all zero stays zero."""
    flat = maps.reshape(maps.shape[0], -1)
    lo = flat.amin(dim=1, keepdim=True) if lower is None else torch.full_like(flat[:, :1], float(lower))
    span = (flat.amax(dim=1, keepdim=True) - lo).clamp_min(1e-12)
    return ((flat - lo) / span).clamp(0, 1).reshape(maps.shape)
