"""Training: SGD with momentum on the paper's piecewise-constant schedules (the ViT: AdamW with
warm-up and cosine decay, ``recipe``), resumable.

``train(model, data, cfg, checkpoint=path)`` runs ``cfg.epochs`` epochs, evaluates on the test
split, calls per-epoch callbacks (which may add metrics to the epoch's record), and saves a
checkpoint atomically after every epoch. Started again with the same path, it resumes from
the last completed epoch and ends with the same weights as an uninterrupted run (batches and
augmentation draws depend only on the seed and the epoch number).

The fast path is the only path. The data stay on the device as uint8 and are shuffled and
augmented there (``data.Loader``); activations are channels_last; loss and accuracy are
accumulated on the device and read once per epoch, so the step loop never waits for the host.
On CUDA the step runs in bf16 autocast (BatchNorm stays float32: autocast leaves its parameters
and running statistics alone, and its kernels accumulate the batch statistics of a bf16 input
in float32) with cuDNN's autotuner on; ``TrainConfig.compile`` adds ``torch.compile`` with CUDA graphs (CUDA only, ignored
with a warning on the CPU). On the CPU the step runs in float32 and, with the same seed,
bit-reproducibly (``tests/test_fastpath.py`` checks it against a plain reference loop), or, with
``TrainConfig.precision="bf16"``, in bf16 autocast where that pays on this CPU (``cpu_bf16``
measures it once per process; float32 elsewhere, said once); each epoch's record says which ran
(``bf16``).

A non-finite training loss stops the run cleanly: the history says ``diverged`` with the epoch,
and the checkpoint keeps the last finite weights (the initial ones for a divergence in the first
epoch) with that history, so the run is recorded and not retrained. Ctrl-C (or SIGTERM, which the
command line turns into one) raises ``Interrupted``, saying which epoch stopped and what the
checkpoint keeps; running the same training again resumes it.

Checkpoints are written atomically (a unique temporary file in the target folder, then
``os.replace``) with a SHA-256 of their tensors and metadata, verified on load; ``meta`` (the run's
spec) is stored, and resuming a checkpoint whose stored spec differs is refused.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import os
import pickle
import statistics
import tempfile
import time
import warnings
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm  # plain text bar: no ipywidgets warning inside notebooks

from .data import Dataset, Loader, Split

# (epochs, base lr, ((epoch, lr), ...)) per architecture family: PAPER.md section 4.
PAPER_SCHEDULES = {
    "single-representation": (200, 0.1, ((40, 0.02), (60, 0.004), (80, 0.0008))),
    "avg-pooling": (100, 0.1, ((40, 0.02), (60, 0.004), (80, 0.0008))),
    "resnet": (300, 0.1, ((80, 0.01), (120, 0.001), (200, 0.00001), (240, 0.000011))),
    "wide": (100, 0.1, ((60, 0.02),)),
}


@dataclass(frozen=True)
class Schedule:
    """Piecewise-constant learning rate: ``lr`` until the first milestone, then each milestone's."""

    epochs: int
    lr: float
    milestones: tuple[tuple[int, float], ...] = ()

    def lr_at(self, epoch: int) -> float:
        lr = self.lr
        for start, value in self.milestones:
            if epoch >= start:
                lr = value
        return lr

    def scaled(self, epochs: int) -> "Schedule":
        """The same schedule compressed (or stretched) to ``epochs``, milestones at the same fractions."""
        ms = tuple((max(1, round(e * epochs / self.epochs)), lr) for e, lr in self.milestones)
        return Schedule(epochs, self.lr, ms)

    def budgeted(self, epochs: int) -> "Schedule":
        """The same learning rates in ``epochs`` epochs, spent where a short budget needs them: the
        first drop at half the epochs, each later one halfway between the previous drop and the
        end (1/2, 3/4, 7/8, ...). Compressing a 300-epoch schedule proportionally into a few dozen
        epochs leaves a quarter of them at the high rate and most at rates too small to move the
        weights; this keeps the paper's values and order, with half the budget at the first."""
        ms, start = [], 0
        for k, (_, lr) in enumerate(self.milestones, 1):
            start = max(start + 1, round(epochs * (1 - 0.5 ** k)))
            ms.append((start, lr))
        return Schedule(epochs, self.lr, tuple(m for m in ms if m[0] < epochs))


def paper_schedule(arch: str) -> Schedule:
    """The schedule PAPER.md gives for ``arch`` (all ResNet-(6n+2) variants use ResNet-110's)."""
    family = arch if arch in PAPER_SCHEDULES else "resnet" if arch.startswith("resnet") else None
    if family is None:
        raise ValueError(f"no paper schedule for {arch!r}")
    epochs, lr, ms = PAPER_SCHEDULES[family]
    return Schedule(epochs, lr, ms)


@dataclass(frozen=True)
class WarmupCosine:
    """Linear warm-up to ``lr`` over the first ``warmup`` epochs, then cosine decay towards 0 at
    the end; like ``Schedule``, the rate is set at the start of each epoch."""

    epochs: int
    lr: float
    warmup: int

    def lr_at(self, epoch: int) -> float:
        if epoch < self.warmup:
            return self.lr * (epoch + 1) / self.warmup
        t = (epoch - self.warmup) / max(1, self.epochs - self.warmup)  # 0 at the peak, < 1 in the last epoch
        return 0.5 * self.lr * (1 + math.cos(math.pi * t))

    def scaled(self, epochs: int) -> "WarmupCosine":
        """The same shape in ``epochs`` epochs: the warm-up keeps its fraction (at least one epoch)."""
        return WarmupCosine(epochs, self.lr, max(1, round(self.warmup * epochs / self.epochs)))


#: Each optimiser a recipe may name, with its name as captions write it.
OPTIMIZERS = {"sgd": "SGD", "adamw": "AdamW"}


@dataclass(frozen=True)
class Recipe:
    """How an architecture trains at full length: optimiser, weight decay, schedule."""

    optimizer: str  # "sgd" (momentum ``TrainConfig.momentum``) or "adamw" (betas 0.9, 0.999)
    weight_decay: float
    schedule: Schedule | WarmupCosine


#: The ViT's recipe, beyond the paper: the usual one for small ViTs trained from scratch on CIFAR
#: (AdamW, peak rate 1e-3 at batch 128, weight decay 0.05, linear warm-up over the first 5 % of
#: the epochs, cosine decay; 200 epochs at full length). The data, augmentation and loss are the
#: ResNets' (no label smoothing, mixup or RandAugment), so the probes compare like with like.
VIT_RECIPE = Recipe("adamw", 0.05, WarmupCosine(200, 1e-3, 10))


def recipe(arch: str) -> Recipe:
    """The ViT's ``VIT_RECIPE``; every paper architecture: SGD with weight decay 1e-4 on its paper schedule."""
    return VIT_RECIPE if arch == "vit" else Recipe("sgd", 1e-4, paper_schedule(arch))


#: CPU arithmetic of a training step (CUDA always runs bf16 autocast).
PRECISIONS = ("float32", "bf16")


@functools.lru_cache(maxsize=None)
def cpu_bf16() -> bool:
    """True when bf16 autocast pays on this CPU, decided once per process by measurement.

    Native bf16 (AVX512-BF16 or AMX) is necessary but not enough: on a 2-core AMD EPYC with
    AVX512-BF16 bf16 autocast trained 1.4-1.7x faster than float32, on a 2-core Intel Xeon whose
    VM exposes AVX512-BF16 but not AMX it trained 0.70-0.73x as fast. So a small residual network
    (ResNet-20 at 8/16/32 channels, batch 128) takes alternating training steps in both, with the
    caller's thread count (training runs measure with theirs), about three seconds in all, and
    bf16 is used when its median step is at least 10 % faster."""
    if not (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()):
        return False
    from .models import resnet

    torch.manual_seed(0)
    model = resnet(3, width=0.5).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(128, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (128,))
    times = {torch.float32: [], torch.bfloat16: []}
    for rep in range(5):
        for dtype in times:
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                loss = nn.functional.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if rep >= 2:  # the first two rounds warm up oneDNN's kernels
                times[dtype].append(time.perf_counter() - start)
    ratio = statistics.median(times[torch.float32]) / statistics.median(times[torch.bfloat16])
    _said(f"bf16 autocast trains {ratio:.2f}x as fast as float32 on this CPU: "
          f"{'training in bf16' if ratio >= 1.1 else 'training in float32'} where bf16 is asked for")
    return ratio >= 1.1


@functools.lru_cache(maxsize=None)
def _said(message: str) -> None:
    """Say ``message`` once per process (a warning, so notebooks and logs show it)."""
    warnings.warn(message, stacklevel=3)


def autocast_dtype(device: torch.device, precision: str = "float32") -> torch.dtype | None:
    """The autocast dtype a step on ``device`` runs in at ``precision`` (None: plain float32)."""
    if device.type == "cuda":
        return torch.bfloat16
    if precision == "bf16" and cpu_bf16():
        return torch.bfloat16
    return None


@dataclass(frozen=True)
class TrainConfig:
    """Everything that changes the trained weights (besides the model and the data)."""

    schedule: Schedule | WarmupCosine
    batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 1e-4
    seed: int = 0
    eval_batch_size: int = 1000
    compile: bool = False  # torch.compile the model (CUDA only; speed, not results)
    precision: str = "float32"  # CPU arithmetic: "float32" (bit-reproducible) or "bf16" autocast
    train_eval: int = 0  # training images evaluated un-augmented, in eval mode, after each epoch
    optimizer: str = "sgd"  # "sgd" (the paper's) or "adamw" (the ViT's, ``recipe``)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")

    @property
    def epochs(self) -> int:
        return self.schedule.epochs


@dataclass
class History:
    """One record per completed epoch (``epoch``, ``lr``, ``train_loss``, ``train_acc`` (running,
    on augmented batches in train mode), ``test_loss``, ``test_acc``, ``train_eval_loss``,
    ``train_eval_acc`` (un-augmented training images in eval mode, when ``TrainConfig.train_eval``)
    and whatever callbacks add), and ``diverged`` (epoch or None)."""

    records: list[dict] = field(default_factory=list)
    diverged: int | None = None

    def column(self, key: str) -> list:
        return [r[key] for r in self.records]


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read back."""


class Interrupted(KeyboardInterrupt):
    """Training stopped by the user; the message says at which epoch and what the checkpoint keeps."""


Callback = Callable[[int, nn.Module, dict], None]


def checksum(state: dict) -> str:
    """SHA-256 of a checkpoint's payload: every tensor's bytes and every other value, in key order."""
    h = hashlib.sha256()

    def feed(key: str, value) -> None:
        h.update(key.encode())
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous().reshape(-1)
            h.update(str((t.dtype, tuple(value.shape))).encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            for k in sorted(value, key=str):
                feed(f"{key}/{k}", value[k])
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                feed(f"{key}/{i}", v)
        else:
            h.update(json.dumps(value, sort_keys=True, default=str).encode())

    feed("", {k: v for k, v in state.items() if k != "checksum"})
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` and its checksum to ``path`` atomically: a unique temporary file in the same
    folder, then ``os.replace``, so a crash, a full disk or a second writer leaves the old file or
    the new one, never half; the temporary file is removed on any failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; a checkpoint is an ordinary file
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(dict(state, checksum=checksum(state)), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno == 28:  # ENOSPC
            raise OSError(e.errno, f"disk full: cannot write checkpoint {path} (the previous one, if any, is intact)") from None
        raise


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint with ``weights_only=True`` and verify its checksum (files written before
    checksums existed have none and are read as they are); a damaged file raises ``CheckpointError``."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, IndexError) as e:
        first = (str(e).splitlines() or [""])[0][:200]
        raise CheckpointError(f"checkpoint {path} is corrupt or not a refine_utils checkpoint "
                              f"({type(e).__name__}: {first}); delete it to retrain") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"checkpoint {path} is not a refine_utils checkpoint (no 'model' entry)")
    if "checksum" in state and state["checksum"] != checksum(state):
        raise CheckpointError(f"checkpoint {path} fails its checksum (its contents changed after it was written); "
                              "delete it to retrain")
    return state


def _check_meta(path, stored: dict, meta: dict) -> None:
    """Refuse to resume ``path`` when the spec it was trained with differs from ``meta``."""
    differ = sorted(k for k in stored.keys() & meta.keys() if stored[k] != meta[k])
    if differ:
        was = ", ".join(f"{k}={stored[k]!r}" for k in differ)
        now = ", ".join(f"{k}={meta[k]!r}" for k in differ)
        raise CheckpointError(f"checkpoint {path} was trained with {was}, not {now}: delete it, or choose another "
                              "output, to train these settings")


def _restore(path, state: dict, model: nn.Module, opt: torch.optim.Optimizer) -> History:
    """Load a checkpoint's weights and optimiser state into ``model`` and ``opt`` and return its
    history; a file that does not fit them (another network's, e.g. one written before checkpoints
    recorded their spec) raises a one-line ``CheckpointError`` instead of PyTorch's key listing."""
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        return History(state["history"]["records"], state["history"]["diverged"])
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        lines = str(e).splitlines()  # load_state_dict: a header, then "size mismatch for stem.weight: ..." etc.
        cause = f"no {e} entry" if isinstance(e, KeyError) else (lines[1:] or lines or [""])[0].split(":")[0].strip()
        unknown = "" if state.get("meta") else " records no spec and"
        raise CheckpointError(f"checkpoint {path}{unknown} does not fit this network ({cause}): delete it, "
                              "or train with the settings it was made with") from None


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def prepare(model: nn.Module, device: torch.device, compile: bool = False) -> nn.Module:
    """Move ``model`` to ``device`` in the fast layout and return the module to train with.

    Both devices use channels_last (on the CPU oneDNN then skips its layout conversions; see
    ``models.Block.skip`` for the one CPU kernel this needs to avoid). On CUDA, cuDNN's autotuner
    is switched on and, with ``compile``, the returned module is ``torch.compile(model)`` with
    CUDA graphs for full batches (it shares ``model``'s parameters). ``compile`` on the CPU is
    ignored with a warning: compiling there costs minutes, and the CPU path is the one the tests
    compare with a plain PyTorch loop.
    """
    model.to(device).to(memory_format=torch.channels_last)
    if device.type != "cuda":
        if compile:
            warnings.warn("TrainConfig.compile is CUDA-only; training eagerly on the CPU", stacklevel=2)
        return model
    torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest convolution once
    return torch.compile(model, mode="reduce-overhead", dynamic=False) if compile else model


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum (or AdamW, ``cfg.optimizer``); weight decay on convolution and linear
    weights (and the ViT's position embedding) only."""
    decay, no_decay = _param_groups(model)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                  {"params": no_decay, "weight_decay": 0.0}], lr=cfg.schedule.lr, betas=(0.9, 0.999))
    return torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                            {"params": no_decay, "weight_decay": 0.0}], lr=cfg.schedule.lr, momentum=cfg.momentum)


def sgd_step(net: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
             precision: str = "float32") -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step of ``net`` on the batch ``x`` (B, 3, 32, 32), ``y`` (B,).

    Returns the batch's mean loss and its number of correct predictions as device tensors:
    nothing here waits for the device.
    """
    with _autocast(x.device, precision):
        logits = net(x).float()  # (B, classes)
        loss = nn.functional.cross_entropy(logits, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach(), (logits.detach().argmax(1) == y).sum()


@torch.no_grad()
def evaluate(model: nn.Module, loader: Loader, precision: str = "float32") -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` (in eval mode) over ``loader``."""
    was_training = model.training
    model.eval()
    loss = torch.zeros((), device=loader.device)
    correct = torch.zeros((), device=loader.device, dtype=torch.long)
    with _autocast(loader.device, precision):
        for x, y in loader:
            logits = model(x).float()
            loss += nn.functional.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
    model.train(was_training)
    n = len(loader.labels)
    return loss.item() / n, correct.item() / n


def _autocast(device: torch.device, precision: str = "float32"):
    dtype = autocast_dtype(device, precision)
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def train(model: nn.Module, data: Dataset, cfg: TrainConfig, device: str | None = None,
          checkpoint: str | os.PathLike | None = None, callbacks: tuple[Callback, ...] = (),
          progress: bool = True, meta: dict | None = None, step_losses: list[float] | None = None) -> History:
    """Train ``model`` on ``data.train`` as ``cfg`` says, resuming from ``checkpoint`` if it exists.

    Args:
        device: "cuda" or "cpu" (default: CUDA when available).
        checkpoint: file written after every epoch and read on start.
        callbacks: ``cb(epoch, model, record)`` after each epoch's evaluation; a callback adds
            its metrics to ``record`` (a dict), which is stored in the history.
        progress: show a tqdm progress bar over epochs.
        meta: extra JSON-able facts stored in the checkpoint (e.g. the run's spec).
        step_losses: if a list, every step's training loss is appended to it (read once per
            epoch with the epoch's other numbers).
    """
    dev = torch.device(device or default_device())
    torch.manual_seed(cfg.seed)
    fast = prepare(model, dev, cfg.compile)
    opt = make_optimizer(model, cfg)
    history, start = History(), 0
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, map_location=dev)
        _check_meta(checkpoint, state.get("meta") or {}, meta or {})
        history = _restore(checkpoint, state, model, opt)
        start = len(history.records)
    train_loader = Loader(data.train, data.mean, data.std, cfg.batch_size, True, dev, cfg.seed, channels_last=True)
    test_loader = Loader(data.test, data.mean, data.std, cfg.eval_batch_size, False, dev, channels_last=True)
    if cfg.train_eval:
        seen = Split(data.train.images[:cfg.train_eval], data.train.labels[:cfg.train_eval])  # a fixed slice
        seen_loader = Loader(seen, data.mean, data.std, cfg.eval_batch_size, False, dev, channels_last=True)
    compiled = fast is not model
    initial = None
    if checkpoint is not None and start == 0:  # what a divergence in the first epoch keeps
        initial = dict(model=copy.deepcopy(model.state_dict()), optimizer=copy.deepcopy(opt.state_dict()))

    bar = tqdm(range(start, cfg.epochs), desc="train", unit="epoch", disable=not progress, initial=start, total=cfg.epochs)
    epoch, saved = start, start
    try:
        for epoch in bar:
            if history.diverged is not None:
                break
            lr = cfg.schedule.lr_at(epoch)
            for group in opt.param_groups:
                group["lr"] = lr
            train_loader.set_epoch(epoch)
            model.train()
            loss_sum = torch.zeros((), device=dev)
            correct = torch.zeros((), device=dev, dtype=torch.long)
            losses = []
            for x, y in train_loader:
                full = len(y) == cfg.batch_size  # the compiled graph is for full batches; the last one runs eagerly
                if compiled and full:
                    torch.compiler.cudagraph_mark_step_begin()
                loss, hits = sgd_step(fast if full else model, opt, x, y, cfg.precision)
                loss_sum += loss * len(y)
                correct += hits
                if step_losses is not None:
                    losses.append(loss)
            n = len(train_loader.labels)
            train_loss, train_acc = loss_sum.item() / n, correct.item() / n  # the epoch's one sync
            if step_losses is not None:
                step_losses.extend(torch.stack(losses).tolist())
            if not math.isfinite(train_loss):
                history.diverged = epoch
                kept = _keep_finite(model, history, checkpoint, initial, meta, dev)
                bar.write(f"diverged at epoch {epoch}: training loss {train_loss}; {kept}")
                break
            test_loss, test_acc = evaluate(model, test_loader, cfg.precision)
            record = dict(epoch=epoch, lr=lr, train_loss=train_loss, train_acc=train_acc, test_loss=test_loss,
                          test_acc=test_acc)
            if cfg.train_eval:
                record["train_eval_loss"], record["train_eval_acc"] = evaluate(model, seen_loader, cfg.precision)
            if cfg.precision != "float32":
                record["bf16"] = autocast_dtype(dev, cfg.precision) is not None  # what this epoch ran in
            for cb in callbacks:
                cb(epoch, model, record)
            history.records.append(record)
            bar.set_postfix(loss=f"{train_loss:.3f}", test_acc=f"{test_acc:.3f}")
            if checkpoint is not None:
                save_checkpoint(checkpoint, dict(model=model.state_dict(), optimizer=opt.state_dict(),
                                                 history=asdict(history), meta=meta or {}))
                saved = epoch + 1
    except KeyboardInterrupt:
        kept = (f"{checkpoint} keeps {saved} of {cfg.epochs} epochs" if checkpoint is not None and saved
                else "nothing was saved")
        raise Interrupted(f"interrupted at epoch {epoch} ({kept}); re-run the same command to resume") from None
    finally:
        bar.close()  # on any exit, so that an error message starts on a line of its own
    model.eval()
    return history


def _keep_finite(model: nn.Module, history: History, checkpoint, initial: dict | None, meta: dict | None,
                 dev: torch.device) -> str:
    """After a divergence, put the last finite weights back into ``model`` and record the diverged
    history in ``checkpoint`` (so the run is not retrained); returns what was kept, for the message."""
    if checkpoint is None:
        return "no checkpoint to restore from: the model's weights are not finite"
    if Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, map_location=dev)
        what = f"the weights after epoch {len(state['history']['records']) - 1}"
    else:
        state, what = dict(initial, meta=meta or {}), "the initial weights (no epoch finished)"
    model.load_state_dict(state["model"])
    state["history"] = asdict(history)
    save_checkpoint(checkpoint, state)
    return f"{checkpoint} keeps {what} and the diverged history; it is not retrained (delete it to retry)"


def _param_groups(model: nn.Module) -> tuple[list, list]:
    """Weight decay on convolution and linear weights only, not on biases or BatchNorm."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():  # each shared Parameter once
        (decay if p.ndim > 1 else no_decay).append(p)
    return decay, no_decay
