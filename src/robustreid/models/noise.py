"""Noise inside the network: Gaussian noise on chosen layers' activations during training only.

``NoiseInjection`` adds ``σ·ε`` (``mode="additive"``) or multiplies by ``1 + σ·ε`` (``"multiplicative"``),
ε ~ N(0, 1) i.i.d. per activation, when it is in training mode and σ > 0. In eval mode it returns its input
object unchanged (no computation at all: bit-identical output, zero cost). σ is constant or annealed from
``sigma`` to ``sigma_end`` over the training progress p ∈ [0, 1] given by :meth:`NoiseInjection.set_progress`:
``linear``: σ0 + (σ1 - σ0)·p; ``cosine``: σ1 + (σ0 - σ1)·(1 + cos πp)/2.

Randomness: ``torch.randn_like``, i.e. torch's global generator of the activations' device (CPU: the generator
seeded by ``torch.manual_seed``; CUDA: the device's default generator, also seeded by ``torch.manual_seed``). The
engine seeds it (``robustreid.utils.seed.seed_everything``), so runs are reproducible on one device.

Placement by layer name with :func:`attach_noise`::

    handles = attach_noise(model, [{"layer": "backbone.layer2", "sigma": 0.1}])    # after stage 2
    handles = attach_noise(model, [{"layer": "head", "sigma": 0.2, "where": "input"}])  # before the head
    handles = attach_noise(model, [{"layer": "", "sigma": 0.1, "where": "input"}])  # on the model's input

Each spec: ``layer`` (a name from ``model.named_modules()``; ``""`` is the model itself), ``sigma``, ``mode``,
``schedule``, ``sigma_end`` (default: ``sigma``, or 0 when the schedule is not constant) and ``where``
(``"output"``: forward hook on the layer's output; ``"input"``: forward pre-hook on its first input). The hook is
active only while the hooked layer is in training mode. The ``NoiseInjection`` modules are also registered in the
model's tree (``model.noise_injections``, no parameters or buffers, so checkpoints are unchanged) so that
``model.eval()`` / ``model.train()`` and the engine's per-iteration ``set_progress(p)`` reach them; for a root
``nn.Sequential`` / ``nn.ModuleList`` (whose forward runs all children) they are not registered — call
:func:`set_progress` with the handles instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Sequence, Union

import torch
from torch import nn

MODES = ("additive", "multiplicative")
SCHEDULES = ("constant", "linear", "cosine")
WHERE = ("output", "input")
SPEC_KEYS = ("layer", "sigma", "mode", "schedule", "sigma_end", "where")


class NoiseInjection(nn.Module):
    def __init__(self, sigma: float = 0.1, mode: str = "additive", schedule: str = "constant",
                 sigma_end: Union[float, None] = None):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"noise mode: expected one of {', '.join(MODES)}, got {mode!r}")
        if schedule not in SCHEDULES:
            raise ValueError(f"noise schedule: expected one of {', '.join(SCHEDULES)}, got {schedule!r}")
        if sigma_end is None:
            sigma_end = sigma if schedule == "constant" else 0.0
        if sigma < 0 or sigma_end < 0:
            raise ValueError(f"noise sigma must be >= 0, got sigma={sigma}, sigma_end={sigma_end}")
        self.sigma0, self.sigma1 = float(sigma), float(sigma_end)
        self.mode, self.schedule = mode, schedule
        self.progress = 0.0

    def set_progress(self, p: float) -> None:
        self.progress = min(1.0, max(0.0, float(p)))

    @property
    def sigma(self) -> float:
        p = self.progress
        if self.schedule == "constant":
            return self.sigma0
        if self.schedule == "linear":
            return self.sigma0 + (self.sigma1 - self.sigma0) * p
        return self.sigma1 + (self.sigma0 - self.sigma1) * (1.0 + math.cos(math.pi * p)) / 2.0

    def noisy(self, x: torch.Tensor) -> torch.Tensor:
        """The noisy version of ``x`` (always, whatever the mode): the training-time transformation."""
        s = self.sigma
        if s == 0.0 or not x.is_floating_point():
            return x
        eps = torch.randn_like(x)
        return x + s * eps if self.mode == "additive" else x * (1.0 + s * eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        return self.noisy(x)

    def extra_repr(self) -> str:
        s = f"sigma={self.sigma0}, mode={self.mode}"
        if self.schedule != "constant":
            s += f", schedule={self.schedule}, sigma_end={self.sigma1}"
        return s


def _apply(obj: Any, fn) -> Any:
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, tuple):
        return tuple(_apply(o, fn) for o in obj)
    if isinstance(obj, list):
        return [_apply(o, fn) for o in obj]
    if isinstance(obj, dict):
        return {k: _apply(v, fn) for k, v in obj.items()}
    return obj


@dataclass
class NoiseHandle:
    """What :func:`attach_noise` returns per spec: the module, where it sits, and ``remove()``."""

    layer: str
    where: str
    module: NoiseInjection
    hook: Any
    owner: Any = None  # the ModuleList it is registered in, if any

    def remove(self) -> None:
        self.hook.remove()
        if self.owner is not None:
            for i, m in enumerate(list(self.owner)):
                if m is self.module:
                    del self.owner[i]
                    break

    def set_progress(self, p: float) -> None:
        self.module.set_progress(p)


def _check_spec(i: int, spec: Mapping[str, Any]) -> Dict[str, Any]:
    if not isinstance(spec, Mapping):
        raise ValueError(f"model.noise[{i}]: expected a mapping like {{layer: backbone.layer2, sigma: 0.1}}, "
                         f"got {type(spec).__name__}")
    unknown = [k for k in spec if k not in SPEC_KEYS]
    if unknown:
        raise ValueError(f"model.noise[{i}]: unknown key(s) {unknown}; expected keys: {', '.join(SPEC_KEYS)}")
    if "layer" not in spec:
        raise ValueError(f"model.noise[{i}]: missing 'layer' (a module name, '' for the model's input)")
    where = spec.get("where", "output")
    if where not in WHERE:
        raise ValueError(f"model.noise[{i}].where: expected one of {', '.join(WHERE)}, got {where!r}")
    try:
        sigma = float(spec.get("sigma", 0.1))
        sigma_end = spec.get("sigma_end")
        sigma_end = None if sigma_end is None else float(sigma_end)
    except (TypeError, ValueError):
        raise ValueError(f"model.noise[{i}]: sigma / sigma_end must be numbers, got {dict(spec)}") from None
    return {"layer": str(spec["layer"]), "where": where, "sigma": sigma, "sigma_end": sigma_end,
            "mode": spec.get("mode", "additive"), "schedule": spec.get("schedule", "constant")}


def attach_noise(model: nn.Module, specs: Sequence[Mapping[str, Any]] | None) -> List[NoiseHandle]:
    """Place a :class:`NoiseInjection` on each named layer of ``model`` (see module doc); returns the handles."""
    handles: List[NoiseHandle] = []
    if not specs:
        return handles
    modules = dict(model.named_modules())
    checked = [_check_spec(i, s) for i, s in enumerate(specs)]
    for i, s in enumerate(checked):
        if s["layer"] not in modules:
            names = [n for n in modules if n and not n.startswith("noise_injections")]
            raise ValueError(f"model.noise[{i}].layer: no layer named {s['layer']!r} in {type(model).__name__}; "
                             f"available: '' (the model itself), {', '.join(names)}")
    owner = None
    if not isinstance(model, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
        owner = getattr(model, "noise_injections", None)
        if not isinstance(owner, nn.ModuleList):
            owner = nn.ModuleList()
            model.add_module("noise_injections", owner)
    for s in checked:
        target = modules[s["layer"]]
        inj = NoiseInjection(s["sigma"], s["mode"], s["schedule"], s["sigma_end"])
        inj.train(target.training)
        if owner is not None:
            owner.append(inj)

        if s["where"] == "output":
            def hook(mod, inputs, output, _inj=inj):
                if not mod.training:
                    return None  # unchanged
                return _apply(output, _inj.noisy)

            h = target.register_forward_hook(hook)
        else:
            def pre_hook(mod, inputs, _inj=inj):
                if not mod.training or not inputs:
                    return None
                return (_apply(inputs[0], _inj.noisy),) + tuple(inputs[1:])

            h = target.register_forward_pre_hook(pre_hook)
        handles.append(NoiseHandle(s["layer"], s["where"], inj, h, owner))
    return handles


def set_progress(target: Union[nn.Module, Iterable[Any]], p: float) -> None:
    """Call ``set_progress(p)`` on every module of ``target`` (a model) or every handle in ``target``."""
    items = target.modules() if isinstance(target, nn.Module) else target
    for m in items:
        fn = getattr(m, "set_progress", None)
        if callable(fn) and m is not target:
            fn(p)


__all__ = ["NoiseInjection", "NoiseHandle", "attach_noise", "set_progress", "MODES", "SCHEDULES"]
