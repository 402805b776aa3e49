"""The training loop every method uses.

One :class:`Trainer`; methods that need something else override :meth:`Trainer.train_step`,
:meth:`Trainer.forward` or :meth:`Trainer.compute_loss` (and :meth:`build_model` / :meth:`build_losses`).

Per iteration: PK batch (uint8, decoded and resized by the data loader) -> device -> random flip and pad+crop on
the device -> float [0,1] -> configured batch augmentations -> one forward (clean images + extra views, split back)
-> combined loss -> backward (AMP / GradScaler on CUDA) -> optional gradient clipping -> optimiser step. The
learning rate is set every iteration from :func:`robustreid.engine.schedule.lr_factor` (a pure function of
(epoch, iteration)), and every random draw of an iteration comes from generators seeded by
``derive_seed(seed, epoch, iteration, rank)``, so a resumed run continues exactly where it stopped.

Files in the run directory (written by rank 0 only, atomically): ``config.yaml`` (fully resolved config),
``model.safetensors`` (latest weights, config embedded), ``best.safetensors`` (best mAP), ``state.pt`` (training
state), ``metrics.jsonl`` (one JSON object per log line / evaluation), ``train.log`` and optional ``tb/``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from ..utils.io import atomic_write_text, remove_stale_temporaries
from ..utils.progress import progress_bar
from ..utils.seed import derive_seed, seed_everything
from . import checkpoint as ckpt
from . import distributed as D
from .config import TrainConfig
from .schedule import lr_factor_from_config

log = logging.getLogger("robustreid.train")

Hook = Callable[["Trainer", int, int], None]


def resolve_amp(amp: str, device: torch.device) -> str:
    """The autocast mode the trainer uses: bf16 on CUDA and on CPU (CPU autocast; fast where the CPU has native
    bf16, e.g. AVX-512 BF16 / AMX, else emulated and slower than float32: a warning says so), fp16 on CUDA only
    (it needs the gradient scaler); anything else trains in float32."""
    if amp == "off" or device.type == "cuda":
        return amp
    if amp == "bf16" and device.type == "cpu":
        if not _cpu_has_native_bf16():
            log.warning("train.amp=bf16: this CPU has no native bf16 (AVX-512 BF16 / AMX); autocast emulates it "
                        "and is usually slower than float32")
        return amp
    log.warning("train.amp=%s needs CUDA (bf16 also works on CPU); training in float32 on %s", amp, device)
    return "off"


def _cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class _ResumableSampler(torch.utils.data.Sampler):
    """Wraps the PK sampler: yields its indices of the current epoch from batch ``skip`` on, at most ``limit``
    batches (so a resumed epoch decodes nothing it will not use)."""

    def __init__(self, sampler, batch_size: int):
        self.sampler = sampler
        self.batch_size = batch_size
        self.skip = 0
        self.limit = 0

    def __iter__(self) -> Iterator[int]:
        idx = list(iter(self.sampler))
        start = self.skip * self.batch_size
        stop = len(idx) if self.limit <= 0 else min(len(idx), self.limit * self.batch_size)
        return iter(idx[start:stop])

    def __len__(self) -> int:
        n = len(self.sampler)
        stop = n if self.limit <= 0 else min(n, self.limit * self.batch_size)
        return max(stop - self.skip * self.batch_size, 0)


def split_outputs(outputs: Dict[str, Any], sizes: Sequence[int]) -> Dict[str, Any]:
    """Outputs of one forward over ``cat([images] + views)`` -> outputs of the clean part with
    ``outputs["views"] = [dict per view]``. Tensors whose first dimension is the total batch are split; anything
    else is kept in the clean dict only."""
    total = sum(sizes)
    clean: Dict[str, Any] = {}
    views: List[Dict[str, Any]] = [dict() for _ in sizes[1:]]
    for k, v in outputs.items():
        if torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == total:
            parts = torch.split(v, list(sizes))
            clean[k] = parts[0]
            for d, p in zip(views, parts[1:]):
                d[k] = p
        else:
            clean[k] = v
    clean["views"] = views
    return clean


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("train.device=cuda but no CUDA device is available (use device=cpu or auto)")
        return torch.device("cuda", local_rank)
    return torch.device(name)


class Trainer:
    """Train ``cfg`` into ``out_dir``. ``dataset`` (a ``ReidDataset``) overrides ``cfg.data``; ``hooks`` are called
    as ``hook(trainer, epoch, iteration)`` after every iteration (after any checkpoint of that iteration)."""

    def __init__(self, cfg: TrainConfig, out_dir: Union[str, Path], *, resume: bool = False, dataset=None,
                 hooks: Sequence[Hook] = (), progress: Optional[bool] = None):
        self.cfg = cfg.validate()
        self.out_dir = Path(out_dir)
        self.resume = resume
        self.dataset = dataset
        self.hooks = list(hooks)
        self.progress = cfg.train.progress if progress is None else progress
        self.dist = D.init_distributed(cfg.train.device)
        self.device = resolve_device(cfg.train.device, self.dist.local_rank)
        self.is_main = self.dist.is_main
        self.amp = resolve_amp(cfg.train.amp, self.device)
        self.epoch = 0
        self.iteration = 0  # next iteration within self.epoch
        self.global_step = 0
        self.best: Dict[str, Any] = {"mAP": -1.0, "epoch": -1}
        self.last_eval: Dict[str, float] = {}
        self._tb = None
        self._setup_done = False

    # ------------------------------------------------------------------ building blocks (override as needed)
    def build_dataset(self):
        from ..data import load_dataset

        d = self.cfg.data
        return load_dataset(d.dataset, d.root, **dict(d.options))

    def build_model(self, num_classes: int) -> nn.Module:
        from ..models import build_model

        return build_model(self.cfg.model, num_classes)

    def build_losses(self, model: nn.Module) -> nn.Module:
        from ..losses import build_losses

        specs = []
        for spec in self.cfg.losses:
            spec = dict(spec)
            if spec["name"].lower() == "center":
                spec.setdefault("num_classes", self.num_classes)
                spec.setdefault("feat_dim", int(getattr(model, "feat_dim", 0)))
            specs.append(spec)
        return build_losses(specs)

    def sampler_repeats(self, pids: Sequence[int]) -> int:
        """``data.repeats``, or (0 = auto) about one pass over the images per epoch: round(N / (ids · k))."""
        d = self.cfg.data
        if d.repeats > 0:
            return d.repeats
        return max(1, round(len(pids) / (len(set(pids)) * d.k)))

    def build_sampler(self, pids: Sequence[int]):
        from ..data import PKSampler

        d = self.cfg.data
        return PKSampler(list(pids), d.p, d.k, seed=self.cfg.train.seed, rank=self.dist.rank,
                         world_size=self.dist.world_size, repeats=self.sampler_repeats(pids))

    def build_train_loader(self, samples, sampler):
        from ..data import build_loader

        d = self.cfg.data
        return build_loader(samples, batch_size=d.p * d.k, size=tuple(self.cfg.model.input_size), train=True,
                            sampler=sampler, num_workers=d.num_workers, cache=d.cache, seed=self.cfg.train.seed,
                            drop_last=True, pin_memory=self.device.type == "cuda")

    def build_batch_augment(self):
        from ..transforms.augment import build_batch_augment

        return build_batch_augment(self.cfg.data.augs)

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        s = self.cfg.solver
        if hasattr(model, "param_groups"):
            groups = model.param_groups(s.lr, s.weight_decay, s.bias_lr_factor, s.wd_norm)
        else:
            groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": s.lr,
                       "weight_decay": s.weight_decay}]
        for g in groups:
            g["base_lr"] = g["lr"]
        if s.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=s.lr, momentum=s.momentum, nesterov=s.nesterov)
        if s.optimizer == "adam":
            return torch.optim.Adam(groups, lr=s.lr)
        if s.optimizer == "adamw":
            return torch.optim.AdamW(groups, lr=s.lr)
        raise ValueError(f"solver.optimizer: unknown {s.optimizer!r}")

    def build_loss_optimizer(self, criterion: nn.Module) -> Optional[torch.optim.Optimizer]:
        """Losses with parameters (center loss) get their own SGD at ``solver.center_lr``; their gradients are
        divided by the loss weight before the step, as BoT does, so the centres move independently of it."""
        groups = []
        names = getattr(criterion, "names", None) or []
        weights = getattr(criterion, "weights", None) or []
        modules = list(getattr(criterion, "losses", []))
        for name, w, m in zip(names, weights, modules):
            params = [p for p in m.parameters() if p.requires_grad]
            if params:
                groups.append({"params": params, "lr": self.cfg.solver.center_lr, "grad_scale": 1.0 / w if w else 1.0,
                               "name": f"loss:{name}"})
        return torch.optim.SGD(groups, lr=self.cfg.solver.center_lr) if groups else None

    # ------------------------------------------------------------------ setup
    def setup(self) -> "Trainer":
        if self._setup_done:
            return self
        cfg = self.cfg
        if cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)
        seed_everything(cfg.train.seed)
        if cfg.train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(self.out_dir)  # left by a run killed mid-write
            self._setup_logging()
        if self.dataset is None:
            self.dataset = self.build_dataset()
        ds = self.dataset
        if not ds.train:
            note = (getattr(ds, "extra", None) or {}).get("note")
            raise ValueError(f"dataset {ds.name!r} at {ds.root} has no train images"
                             + (f" ({note})" if note else "") + "; training needs a train split")
        self.num_classes = ds.num_train_pids
        if self.num_classes < 2:
            raise ValueError(f"dataset {ds.name!r} at {ds.root}: the train split holds one identity; nothing can be "
                             f"learnt from it (the ID loss has one class, the triplet loss no negative): training "
                             f"needs at least 2 identities")
        pids = [s.pid for s in ds.train]
        if sorted(set(pids)) != list(range(self.num_classes)):
            raise ValueError(f"dataset {ds.name!r}: training pids must be relabelled 0..N-1 (got {min(pids)}..{max(pids)} "
                             f"for {self.num_classes} identities)")
        model = self.build_model(self.num_classes)
        if cfg.model.noise:
            from ..models.noise import attach_noise

            self.noise_handles = attach_noise(model, cfg.model.noise)
        if cfg.model.dropblock:
            from ..transforms.augment.dropblock import attach_dropblock

            self.dropblock_handles = attach_dropblock(model, cfg.model.dropblock)
        self.progress_modules = [m for m in model.modules() if hasattr(m, "set_progress")]
        model = model.to(self.device)
        if cfg.train.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.criterion = self.build_losses(model).to(self.device)
        self.optimizer = self.build_optimizer(model)
        self.loss_optimizer = self.build_loss_optimizer(self.criterion)
        self.frozen_modules, self.frozen_params = ([], [])
        if cfg.solver.freeze_backbone_epochs:
            self.frozen_modules, self.frozen_params = self.pretrained_part(model)
        self.scaler = torch.amp.GradScaler("cuda", enabled=(self.amp == "fp16"))
        self.batch_augment = self.build_batch_augment()
        self.sampler = self.build_sampler(pids)
        self.batch_size = cfg.data.p * cfg.data.k
        self.batch_sampler = _ResumableSampler(self.sampler, self.batch_size)
        self.loader = self.build_train_loader(ds.train, self.batch_sampler)
        n = len(self.sampler) // self.batch_size
        if n < 1:
            raise ValueError(f"an epoch holds fewer than one batch of {self.batch_size} images per rank "
                             f"({len(self.sampler)}); lower data.p / data.k")
        if cfg.train.max_iters_per_epoch > 0:
            n = min(n, cfg.train.max_iters_per_epoch)
        self.iters_per_epoch = n
        self.max_iters = n * cfg.solver.epochs
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model: nn.Module = DDP(model, device_ids=ids, find_unused_parameters=False)
        else:
            self.train_model = model
        if cfg.train.compile:
            self.train_model = torch.compile(self.train_model)
        if self.resume:
            self.load_checkpoint()
        else:
            self.run_train_start_hooks()
        if self.is_main:
            atomic_write_text(self.out_dir / "config.yaml", self._config_yaml())
            self._log_setup()
        self._setup_done = True
        return self

    def run_train_start_hooks(self) -> None:
        """Fresh (not resumed) start: ``on_train_start(trainer)`` of every model / criterion submodule that defines
        it, e.g. FED fills its memory bank from the training set (a resumed run restores that state instead)."""
        for m in list(self.model.modules()) + list(self.criterion.modules()):
            hook = getattr(m, "on_train_start", None)
            if callable(hook):
                hook(self)

    def _config_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.cfg.to_dict(), sort_keys=False)

    def _setup_logging(self) -> None:
        fh = logging.FileHandler(self.out_dir / "train.log", encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
        fh.setLevel(logging.INFO)
        log.addHandler(fh)
        log.setLevel(logging.INFO)
        self._file_handler = fh
        if self.cfg.train.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.warning("train.tensorboard=true but tensorboard is not installed "
                            "(pip install 'robustreid[tensorboard]'); continuing without it")
            else:
                self._tb = SummaryWriter(str(self.out_dir / "tb"))

    def _log_setup(self) -> None:
        ds, cfg = self.dataset, self.cfg
        nparams = sum(p.numel() for p in self.model.parameters())
        log.info("run dir %s | device %s | world size %d | amp %s | channels_last %s",
                 self.out_dir, self.device, self.dist.world_size, self.amp, cfg.train.channels_last)
        log.info("dataset %s: %d train images of %d ids, %d query, %d gallery", ds.name, len(ds.train),
                 self.num_classes, len(ds.query), len(ds.gallery))
        log.info("model %s/%s, %.2fM parameters, input %s; losses %s; batch %d×%d; %d iterations/epoch × %d epochs",
                 cfg.model.name, cfg.model.backbone, nparams / 1e6, list(cfg.model.input_size),
                 [s["name"] for s in cfg.losses], cfg.data.p, cfg.data.k, self.iters_per_epoch, cfg.solver.epochs)
        if self.global_step:
            log.info("resumed at epoch %d, iteration %d (step %d)", self.epoch, self.iteration, self.global_step)

    # ------------------------------------------------------------------ one iteration
    def set_lr(self, epoch: int, iteration: int) -> float:
        f = lr_factor_from_config(self.cfg.solver, epoch, iteration, self.iters_per_epoch)
        for g in self.optimizer.param_groups:
            g["lr"] = g["base_lr"] * f
        return self.cfg.solver.lr * f

    def prepare_batch(self, batch: Dict[str, Any], epoch: int, iteration: int) -> Dict[str, Any]:
        """Loader batch -> device batch with float images in [0,1], basic augs and the configured batch augs."""
        from ..transforms import functional as TF
        from ..transforms.augment import AugContext

        d = self.cfg.data
        gen = torch.Generator().manual_seed(derive_seed(self.cfg.train.seed, "augment", epoch, iteration,
                                                        self.dist.rank))
        images = batch["images"].to(self.device, non_blocking=True)
        if d.flip > 0:
            images = TF.random_hflip(images, d.flip, gen)
        if d.pad > 0:
            images = TF.random_pad_crop(images, d.pad, gen)
        out = {"images": TF.to_float(images),
               "pids": torch.as_tensor(batch["pids"]).to(self.device, non_blocking=True).long(),
               "camids": torch.as_tensor(batch["camids"]).to(self.device, non_blocking=True).long()}
        if len(self.batch_augment):
            m = self.cfg.model
            ctx = AugContext(generator=gen, epoch=epoch, max_epochs=self.cfg.solver.epochs,
                             progress=self.progress_at(epoch, iteration), iteration=self.global_step,
                             mean=tuple(m.mean), std=tuple(m.std))
            out = self.batch_augment(out, ctx)
        return out

    def progress_at(self, epoch: int, iteration: int) -> float:
        return min((epoch * self.iters_per_epoch + iteration) / max(self.max_iters, 1), 1.0)

    def forward(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        """One forward over the clean images and any extra views; outputs split back (``outputs["views"]``)."""
        images = batch["images"]
        views = list(batch.get("views") or [])
        x = torch.cat([images] + views) if views else images
        if self.cfg.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        # a model that needs more of the batch in train mode (IGOAS: the clean view; FED: the pids) names those
        # keys in ``train_inputs``; they are passed as keyword arguments (through DDP's forward)
        needed = tuple(getattr(self.model, "train_inputs", ()))
        missing = [k for k in needed if k not in batch]
        if missing:
            raise ValueError(f"model {self.cfg.model.name!r} needs the batch key(s) {missing} in training; the batch "
                             f"has {sorted(batch)} (add the augmentation that makes them to data.augs, e.g. igo)")
        extra = {k: batch[k] for k in needed}
        outputs = self.train_model(x, **extra)
        if not isinstance(outputs, dict):
            raise TypeError("the model must return a dict of outputs in train mode")
        if views:
            outputs = split_outputs(outputs, [images.shape[0]] + [v.shape[0] for v in views])
        return outputs

    def compute_loss(self, outputs: Dict[str, Any], batch: Dict[str, Any]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        return self.criterion(outputs, batch)

    def _autocast(self):
        if self.amp == "off":
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if self.amp == "bf16" else torch.float16)

    def train_step(self, batch: Dict[str, Any], epoch: int, iteration: int) -> Dict[str, torch.Tensor]:
        """One optimisation step on a loader batch; returns the values to log (0-d tensors, not synchronised)."""
        self.train_model.train()
        self.criterion.train()
        frozen = self.apply_freeze(epoch)
        b = self.prepare_batch(batch, epoch, iteration)
        # model-side randomness (dropout, hidden-layer noise) from the global generator, seeded per iteration
        torch.manual_seed(derive_seed(self.cfg.train.seed, "model", epoch, iteration, self.dist.rank))
        p = self.progress_at(epoch, iteration)
        for m in self.progress_modules:
            m.set_progress(p)
        self.optimizer.zero_grad(set_to_none=True)
        if self.loss_optimizer is not None:
            self.loss_optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            outputs = self.forward(b)
            loss, parts = self.compute_loss(outputs, b)
        self.scaler.scale(loss).backward()
        if frozen and self.dist.enabled:  # DDP needs every gradient each step: computed, then dropped here
            for prm in self.frozen_params:
                prm.grad = None
        if self.cfg.solver.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.solver.clip_grad)
        self.scaler.step(self.optimizer)
        if self.loss_optimizer is not None:
            self.scaler.unscale_(self.loss_optimizer)
            for g in self.loss_optimizer.param_groups:
                for prm in g["params"]:
                    if prm.grad is not None:
                        if self.dist.enabled:
                            prm.grad.copy_(D.all_reduce_mean(prm.grad))
                        prm.grad.mul_(g["grad_scale"])
            self.scaler.step(self.loss_optimizer)
        self.scaler.update()
        out = {"loss": loss.detach()}
        out.update({k: v.detach() for k, v in parts.items()})
        return out  # 0-d tensors: read (one device sync) only when logging

    def pretrained_part(self, model: nn.Module) -> Tuple[List[nn.Module], List[nn.Parameter]]:
        """(modules, trainable parameters) of the model's pretrained part: ``model.pretrained_modules()`` if the
        model says, else ``[model.backbone]``."""
        get = getattr(model, "pretrained_modules", None)
        backbone = getattr(model, "backbone", None)
        mods = list(get()) if callable(get) else ([backbone] if isinstance(backbone, nn.Module) else [])
        if not mods:
            raise ValueError(f"solver.freeze_backbone_epochs: model {type(model).__name__} has no backbone / "
                             "pretrained_modules() to freeze")
        seen, params = set(), []
        for m in mods:
            for prm in m.parameters():
                if prm.requires_grad and id(prm) not in seen:
                    seen.add(id(prm))
                    params.append(prm)
        return mods, params

    def apply_freeze(self, epoch: int) -> bool:
        """In the first ``solver.freeze_backbone_epochs`` epochs: the pretrained part in eval mode (BatchNorm
        statistics kept) and without gradient (under DDP its gradients are dropped before the step instead).
        Returns whether it is frozen at ``epoch``."""
        frozen = epoch < self.cfg.solver.freeze_backbone_epochs
        if not self.frozen_params:
            return False
        if frozen:
            for m in self.frozen_modules:
                m.eval()
        if not self.dist.enabled and self.frozen_params[0].requires_grad == frozen:
            for prm in self.frozen_params:
                prm.requires_grad_(not frozen)
            log.info("epoch %d: %s %d pretrained parameter tensors", epoch + 1, "freezing" if frozen else "training",
                     len(self.frozen_params))
        return frozen

    # ------------------------------------------------------------------ loop
    def train(self) -> Dict[str, Any]:
        """Run (or continue) training; returns the final evaluation (R1, mAP, ...) and the best score."""
        self.setup()
        cfg = self.cfg
        epochs = cfg.solver.epochs
        t_log, n_log = time.perf_counter(), 0
        bar = None
        if self.is_main and self.progress:
            bar = progress_bar(total=self.max_iters, initial=self.global_step, desc="train", unit="it")
        try:
            while self.epoch < epochs:
                epoch = self.epoch
                self.sampler.set_epoch(epoch)
                self.batch_sampler.skip = self.iteration
                self.batch_sampler.limit = self.iters_per_epoch
                for batch in self.loader:
                    it = self.iteration
                    if it >= self.iters_per_epoch:
                        break
                    lr = self.set_lr(epoch, it)
                    values = self.train_step(batch, epoch, it)
                    self.iteration += 1
                    self.global_step += 1
                    n_log += self.batch_size * self.dist.world_size
                    if bar is not None:
                        bar.update(1)
                    period = max(cfg.train.log_period, 1)
                    if self.global_step % period == 0 or self.iteration == self.iters_per_epoch:
                        values = {k: float(v) for k, v in values.items()}
                        if not all(map(np.isfinite, values.values())):
                            raise FloatingPointError(f"non-finite loss at epoch {epoch} iteration {it}: {values}; "
                                                     "lower solver.lr or turn on solver.clip_grad?")
                        dt = time.perf_counter() - t_log
                        ips = n_log / dt if dt > 0 else float("nan")
                        t_log, n_log = time.perf_counter(), 0
                        rec = {"type": "train", "epoch": epoch, "iter": it, "step": self.global_step, "lr": lr,
                               "img_s": round(ips, 1), **{k: round(v, 6) for k, v in values.items()}}
                        self._log_metrics(rec)
                        if bar is not None:
                            bar.set_postfix(loss=f"{values['loss']:.3f}", lr=f"{lr:.2e}", img_s=f"{ips:.0f}")
                    if cfg.train.checkpoint_period > 0 and self.global_step % cfg.train.checkpoint_period == 0 \
                            and self.iteration < self.iters_per_epoch:
                        self.save_checkpoint()
                    for hook in self.hooks:
                        hook(self, epoch, it)
                if self.iteration < self.iters_per_epoch:
                    raise RuntimeError(f"the loader ran out after {self.iteration} of {self.iters_per_epoch} "
                                       f"batches in epoch {epoch}")
                self.epoch, self.iteration = epoch + 1, 0
                last = self.epoch == epochs
                do_eval = (cfg.train.eval_period > 0 and self.epoch % cfg.train.eval_period == 0) or last
                if do_eval and self.has_test_split():
                    self.evaluate_and_track()
                self.save_checkpoint()
        finally:
            if bar is not None:
                bar.close()
        result = {"final": dict(self.last_eval), "best": dict(self.best), "steps": self.global_step}
        if self.is_main:
            log.info("done: %s", json.dumps(result))
        return result

    # ------------------------------------------------------------------ evaluation
    def has_test_split(self) -> bool:
        return bool(self.dataset.query) and bool(self.dataset.gallery)

    def extract(self, samples, desc: str = "extract") -> Optional[np.ndarray]:
        """Features of ``samples`` with the current model: every rank extracts its shard, rank 0 gets them all
        (other ranks get ``None``)."""
        from .extract import extract_features

        e = self.cfg.eval
        model = ckpt.unwrap(self.model)
        idx = D.shard_indices(len(samples), self.dist.rank, self.dist.world_size)
        mine = [samples[i] for i in idx]
        if mine:
            f = extract_features(model, mine, batch_size=e.batch_size, device=self.device, flip=e.flip,
                                 num_workers=self.cfg.data.num_workers, progress=self.progress and self.is_main,
                                 desc=desc)
            t = torch.from_numpy(f)
        else:
            t = torch.zeros((0, 0))
        if not self.dist.enabled:
            return t.numpy()
        if t.shape[1] == 0:
            raise ValueError("a rank has no evaluation images; too few query/gallery images for the world size")
        g = D.gather_rows(t.to(self.device))
        return g.cpu().numpy() if g is not None else None

    def evaluate(self) -> Optional[Dict[str, float]]:
        """Evaluate on the dataset's query/gallery; the metrics dict on rank 0, ``None`` on other ranks."""
        from ..eval import evaluate

        ds = self.dataset
        D.broadcast_buffers(ckpt.unwrap(self.model))  # BN statistics of rank 0 everywhere: one model, one feature space
        qf = self.extract(ds.query, "query")
        gf = self.extract(ds.gallery, "gallery")
        if qf is None or gf is None:
            return None
        r = evaluate(qf, gf, np.array([s.pid for s in ds.query]), np.array([s.pid for s in ds.gallery]),
                     np.array([s.camid for s in ds.query]), np.array([s.camid for s in ds.gallery]),
                     metric=self.cfg.eval.metric)
        return {k: float(v) for k, v in r.as_dict().items()}

    def evaluate_and_track(self) -> Optional[Dict[str, float]]:
        t0 = time.perf_counter()
        res = self.evaluate()
        D.barrier()
        if res is None:
            return None
        self.last_eval = res
        rec = {"type": "eval", "epoch": self.epoch, "step": self.global_step, **res,
               "seconds": round(time.perf_counter() - t0, 2)}
        self._log_metrics(rec)
        if res.get("mAP", -1.0) > self.best["mAP"]:
            self.best = {"mAP": res["mAP"], "epoch": self.epoch, "step": self.global_step}
            if self.is_main:
                ckpt.save_weights(self.out_dir / ckpt.BEST_NAME, self.model, self.cfg.to_dict(), self._weights_meta())
                log.info("new best mAP %.4f at epoch %d -> %s", res["mAP"], self.epoch, ckpt.BEST_NAME)
        return res

    # ------------------------------------------------------------------ logging
    def _log_metrics(self, rec: Dict[str, Any]) -> None:
        if not self.is_main:
            return
        with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
        if rec["type"] == "train":
            parts = " ".join(f"{k} {v:.4f}" for k, v in rec.items()
                             if k not in ("type", "epoch", "iter", "step", "lr", "img_s"))
            msg = (f"epoch {rec['epoch'] + 1}/{self.cfg.solver.epochs} it {rec['iter'] + 1}/{self.iters_per_epoch} "
                   f"lr {rec['lr']:.2e} {parts} | {rec['img_s']:.0f} img/s")
        else:
            msg = "eval after epoch {epoch}: ".format(**rec) + " ".join(
                f"{k} {rec[k]:.4f}" for k in ("R1", "R5", "R10", "mAP", "mINP") if k in rec)
        log.info(msg)
        if self._tb is not None:
            for k, v in rec.items():
                if k not in ("type", "epoch", "iter", "step") and isinstance(v, (int, float)):
                    self._tb.add_scalar(f"{rec['type']}/{k}", v, rec["step"])

    # ------------------------------------------------------------------ checkpoints
    def _weights_meta(self) -> Dict[str, Any]:
        return {"epoch": self.epoch, "iteration": self.iteration, "global_step": self.global_step}

    def state_dict(self) -> Dict[str, Any]:
        state = {
            "format": "robustreid.state/1",
            "epoch": self.epoch,
            "iteration": self.iteration,
            "global_step": self.global_step,
            "iters_per_epoch": self.iters_per_epoch,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "criterion": self.criterion.state_dict(),
            "rng": ckpt.rng_state(),
            "best": dict(self.best),
            "last_eval": dict(self.last_eval),
        }
        if self.loss_optimizer is not None:
            state["loss_optimizer"] = self.loss_optimizer.state_dict()
        if hasattr(self.sampler, "state_dict"):
            state["sampler"] = self.sampler.state_dict()
        if hasattr(self.batch_augment, "state_dict"):  # occluder pools (random_patch, npo) gathered so far
            state["augment"] = self.batch_augment.state_dict()
        return state

    def save_checkpoint(self) -> None:
        """Weights (``model.safetensors``) then state (``state.pt``), both atomically, rank 0 only."""
        if self.is_main:
            ckpt.save_weights(self.out_dir / ckpt.WEIGHTS_NAME, self.model, self.cfg.to_dict(), self._weights_meta())
            ckpt.save_state(self.out_dir / ckpt.STATE_NAME, self.state_dict())
        D.barrier()

    def load_checkpoint(self) -> None:
        """Resume from ``out_dir``: weights, optimiser(s), scaler, loss state, RNG, position and best score."""
        state_path = self.out_dir / ckpt.STATE_NAME
        state = ckpt.load_state(state_path)
        sd, meta = ckpt.read_weights(self.out_dir / ckpt.WEIGHTS_NAME)
        if int(json.loads(meta.get("global_step", "-1"))) != int(state["global_step"]):
            raise ckpt.CheckpointError(
                f"{self.out_dir}: {ckpt.WEIGHTS_NAME} (step {meta.get('global_step')}) and {ckpt.STATE_NAME} "
                f"(step {state['global_step']}) do not belong together (interrupted while saving?)")
        if int(state["iters_per_epoch"]) != self.iters_per_epoch:
            raise ckpt.CheckpointError(
                f"{state_path}: saved with {state['iters_per_epoch']} iterations per epoch, this config gives "
                f"{self.iters_per_epoch} (data.p / data.k / max_iters_per_epoch / dataset changed?)")
        ckpt.load_state_into(self.model, sd, str(self.out_dir / ckpt.WEIGHTS_NAME))
        self.optimizer.load_state_dict(state["optimizer"])
        for g in self.optimizer.param_groups:  # base lrs come from the config
            g.pop("initial_lr", None)
        self.scaler.load_state_dict(state["scaler"])
        self.criterion.load_state_dict(state["criterion"])
        if self.loss_optimizer is not None and "loss_optimizer" in state:
            self.loss_optimizer.load_state_dict(state["loss_optimizer"])
        if "sampler" in state and hasattr(self.sampler, "load_state_dict"):
            self.sampler.load_state_dict(state["sampler"])
        if "augment" in state and hasattr(self.batch_augment, "load_state_dict"):
            try:
                self.batch_augment.load_state_dict(state["augment"])
            except ValueError as e:
                raise ckpt.CheckpointError(f"{state_path}: {e}") from None
        ckpt.set_rng_state(state["rng"])
        self.epoch, self.iteration = int(state["epoch"]), int(state["iteration"])
        if self.iteration >= self.iters_per_epoch:
            self.epoch, self.iteration = self.epoch + 1, 0
        self.global_step = int(state["global_step"])
        self.best = dict(state.get("best", self.best))
        self.last_eval = dict(state.get("last_eval", {}))
        if self.is_main:
            self._trim_metrics()

    def _trim_metrics(self) -> None:
        """Drop metric lines logged after the checkpoint we resume from (they will be logged again)."""
        path = self.out_dir / "metrics.jsonl"
        if not path.exists():
            return
        keep = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if int(rec.get("step", 0)) <= self.global_step:
                keep.append(line)
        atomic_write_text(path, "".join(l + "\n" for l in keep))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        fh = getattr(self, "_file_handler", None)
        if fh is not None:
            log.removeHandler(fh)
            fh.close()
            self._file_handler = None


def train(cfg: TrainConfig, out_dir: Union[str, Path], *, resume: bool = False, dataset=None,
          hooks: Sequence[Hook] = (), progress: Optional[bool] = None) -> Dict[str, Any]:
    """Build a :class:`Trainer` and run it (closing its log files at the end)."""
    trainer = Trainer(cfg, out_dir, resume=resume, dataset=dataset, hooks=hooks, progress=progress)
    try:
        return trainer.train()
    finally:
        trainer.close()
