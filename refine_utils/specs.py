"""What one trained network is: a ``RunSpec`` names everything that changes its weights (and its
training history). Its ``key`` is a short hash of those fields plus ``CODE_VERSION`` (bumped
whenever the code changes the numbers), so a changed setting never reads a stale checkpoint or
result. The intra-op thread count of CPU work (``CPU_THREADS``, ``cpu_threads``) is fixed here
too: float32 reductions can depend on it, so it is part of what fixes a spec's numbers.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
from dataclasses import asdict, dataclass

import torch

from . import data, models, train

#: Bump when a code change alters trained weights, histories or results: every key changes.
CODE_VERSION = 3

DEVICES = ("cpu", "cuda")
#: Intra-op threads for CPU work: fixed, because float32 reductions can depend on the thread
#: count, and the committed smoke results must be recomputed bit for bit on any machine. One:
#: at the smoke widths (8-64 channels) a second thread gains little, and on a shared machine
#: two spinning threads lose a lot.
CPU_THREADS = 1


@contextlib.contextmanager
def cpu_threads(device: str):
    """Run CPU work with ``CPU_THREADS`` intra-op threads, then restore the caller's setting."""
    before = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(CPU_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class RunSpec:
    """One trained network: every field changes its weights or its recorded history.

    Args:
        arch: a key of ``models.ARCHS``.
        dataset: a name in ``data.DATASETS``.
        width: channel multiplier (1.0: the paper's network).
        epochs: epochs; the paper's schedule for ``arch`` is compressed to fit.
        seed: initialisation, shuffling and augmentation seed.
        batch_size, weight_decay: optimiser settings; the optimiser and the full-length schedule
            are the architecture's ``train.recipe`` (SGD with momentum 0.9 on the paper's
            schedule; AdamW with warm-up and cosine decay for the ViT).
        device: "cpu" or "cuda" (bf16 autocast, ``torch.compile``d with CUDA graphs: on an H100
            eager ResNet-110 ran at 0.89x the reference pipeline, compiled at 3.0x; see
            bench/README.md).
        monitor: test examples the per-epoch monitors read (intermediate accuracy, per-block
            cosine and l2 ratio); 0 records none.
        precision: CPU arithmetic, "float32" (bit-reproducible on any machine) or "bf16"
            autocast (where the CPU has native bf16; float32 elsewhere, said once).
        schedule: how the paper's schedule fits ``epochs``: "proportional" (milestones at the
            paper's fractions) or "budget" (``train.Schedule.budgeted``: half the epochs at the
            first rate, each later drop halfway to the end).
        train_eval: training images evaluated un-augmented in eval mode after every epoch
            (``train_eval_loss``, ``train_eval_acc`` in the history); 0 records none.
    """

    arch: str
    dataset: str
    width: float
    epochs: int
    seed: int = 0
    batch_size: int = 128
    weight_decay: float = 1e-4
    device: str = "cpu"
    monitor: int = 0
    precision: str = "float32"
    schedule_fit: str = "proportional"
    train_eval: int = 0

    def __post_init__(self):
        if self.arch not in models.ARCHS:
            raise ValueError(f"unknown architecture {self.arch!r}; choose one of: {', '.join(models.ARCHS)}")
        if self.dataset not in data.DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of: {', '.join(data.DATASETS)}")
        if not (self.width > 0 and math.isfinite(self.width)):
            raise ValueError(f"width must be a positive number, got {self.width!r}")
        for name in ("epochs", "batch_size"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.device not in DEVICES:
            raise ValueError(f"unknown device {self.device!r}; choose one of: {', '.join(DEVICES)}")
        if not (isinstance(self.weight_decay, (int, float)) and math.isfinite(self.weight_decay)
                and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        if self.precision not in train.PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of: {', '.join(train.PRECISIONS)}")
        if self.schedule_fit not in SCHEDULE_FITS:
            raise ValueError(f"unknown schedule_fit {self.schedule_fit!r}; choose one of: {', '.join(SCHEDULE_FITS)}")
        for name in ("monitor", "train_eval"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be a non-negative integer, got {getattr(self, name)!r}")

    @property
    def key(self) -> str:
        """12 hex digits naming this spec's checkpoint and results. Fields added after a spec was
        first hashed enter the hash only when they differ from their default, so every earlier
        key (and its committed results) stays valid."""
        fields = {k: v for k, v in asdict(self).items() if not (k in _LATER_FIELDS and v == _LATER_FIELDS[k])}
        return digest(dict(fields, code=CODE_VERSION))

    @property
    def name(self) -> str:
        """A readable file-name stem (the key makes it unique)."""
        return f"{self.arch}-{self.dataset}-w{self.width:g}-e{self.epochs}-s{self.seed}-{self.device}-{self.key}"

    def schedule(self) -> train.Schedule | train.WarmupCosine:
        paper = train.recipe(self.arch).schedule
        if self.epochs == paper.epochs:
            return paper
        if isinstance(paper, train.WarmupCosine):  # a cosine has no drops to place: either fit scales it
            return paper.scaled(self.epochs)
        return paper.budgeted(self.epochs) if self.schedule_fit == "budget" else paper.scaled(self.epochs)

    def train_config(self) -> train.TrainConfig:
        return train.TrainConfig(schedule=self.schedule(), batch_size=self.batch_size,
                                 weight_decay=self.weight_decay, seed=self.seed, compile=self.device == "cuda",
                                 precision=self.precision, train_eval=self.train_eval,
                                 optimizer=train.recipe(self.arch).optimizer)


#: How a shorter budget fits the paper's schedule (``RunSpec.schedule_fit``).
SCHEDULE_FITS = ("proportional", "budget")
#: RunSpec fields added after the first results were committed, with their defaults: a spec at
#: the defaults hashes as it did before they existed.
_LATER_FIELDS = {"precision": "float32", "schedule_fit": "proportional", "train_eval": 0}


def digest(obj) -> str:
    """12 hex digits of the SHA-256 of ``obj``'s canonical JSON: the keys of specs and results."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]
