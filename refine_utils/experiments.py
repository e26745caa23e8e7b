"""What to train, at which scale, and the caches that make re-running a notebook cheap.

A ``RunSpec`` names one trained network: everything that changes its weights (and its training
history). Its ``key`` is a short hash of those fields plus ``CODE_VERSION`` (bumped whenever the
code changes the numbers), so a changed setting never reads a stale checkpoint or result.

A ``Profile`` names the specs of the whole book at one scale:

- ``smoke``: CPU, the offline ``digits`` data, the paper's depths at reduced widths, a few
  epochs. The whole book from scratch in minutes on 2 cores; what CI recomputes. ``digits``
  also stands in for CIFAR-100 (the appendix figures), which every figure caption says.
- ``cifar10-cpu``: real CIFAR-10 (10k training subset, full test set) at reduced widths, 10
  epochs, 2 seeds: CPU-hours. It omits parts of the book (``Profile.omitted``); their pages read
  ``smoke`` instead and say so.
- ``cifar10-long``: the same data trained toward the paper's regime (40-50 epochs, wider, 3 seeds):
  what the site publishes (``PUBLISHED``), part by part: the parts still training
  (``Profile.pending``) read ``cifar10-cpu`` meanwhile, and say so.
- ``paper``: PAPER.md exactly: full widths, the paper's schedules, CIFAR-10 / CIFAR-100, 4 seeds,
  on CUDA.

``setting(profile, device, seeds, part)`` validates a notebook's parameters. ``book_specs`` and
``pretrain`` list and train every network a profile needs (``refine results``). ``trained(spec)`` trains
(or resumes, or loads) a network with a checkpoint under ``cache_dir()``; ``result(...)`` caches a
JSON result under ``results_dir()/<profile>/<name>/`` keyed by the spec's hash, and records the
spec, profile, device, torch version and git commit that produced it, sealed with a checksum that
every read verifies. ``$REFINE_CACHE_DIR`` and
``$REFINE_RESULTS_DIR`` move the two caches (tests run from scratch in a temporary folder).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import math
import os
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from . import data, models, train

#: Bump when a code change alters trained weights, histories or results: every key changes.
CODE_VERSION = 3

ROOT = Path(__file__).resolve().parents[1]
DEVICES = ("cpu", "cuda")
#: Intra-op threads for CPU work: fixed, because float32 reductions can depend on the thread
#: count, and the committed smoke results must be recomputed bit for bit on any machine. One:
#: at the smoke widths (8-64 channels) a second thread gains little, and on a shared machine
#: two spinning threads lose a lot.
CPU_THREADS = 1
#: The dataset roles of the paper (main text, appendix).
ROLES = ("cifar10", "cifar100")
#: The book's parts: the main text's figures (CIFAR-10), their CIFAR-100 versions, the shared-block
#: experiments (Fig. 8-9, Table 1, the shared model's appendix), and "beyond" the paper (a vision
#: transformer beside ResNet-110, ``beyond.py``). A profile may leave a part out.
PARTS = ("main", "cifar100", "sharing", "beyond")
#: The order ``pretrain`` trains the parts in: the ViT's two runs (``CIFAR10_LONG``: ~9 core-hours)
#: before the shared-block part's eighteen (~22), so an interrupted profile has its chapter sooner.
TRAIN_ORDER = ("main", "cifar100", "beyond", "sharing")


# ----------------------------------------------------------------------------- specs


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
        return _hash(dict(fields, code=CODE_VERSION))

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


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class Profile:
    """The specs of the whole book at one scale.

    Args:
        name: what notebooks pass as ``profile``.
        description: one line for captions and the scorecard.
        device: the device its numbers are meant for.
        datasets: the dataset that plays each role of ``ROLES`` ("cifar10": main text,
            "cifar100": appendix).
        widths: channel multiplier per architecture (missing: 1.0).
        epochs: epochs per architecture (missing: the paper's own schedule).
        seeds: how many seeds (0, 1, ...) a figure averages by default.
        batch_size: training batch size.
        monitor: test examples the per-epoch monitors read during training.
        probe_examples: examples per split the probes read after training (None: all).
        taylor_examples: examples the Section 3 check reads (it runs the rest of the network
            once per block, so it is the costliest probe; None: all).
        unroll_scale: the output scaling of the extra unrolled steps (Fig. 7).
        part_seeds: seeds per part of ``PARTS`` where it differs from ``seeds``.
        part_widths: per part of ``PARTS``, the architectures whose width differs there from
            ``widths`` (so that a table compares networks of one width).
        part_epochs: per part of ``PARTS``, the architectures whose epochs differ there from
            ``epochs`` (so that a table compares networks trained equally long).
        omitted: the parts this profile does not run, each with the reason.
        pending: the parts it runs whose networks are still training, each with how far they
            are: a profile is published part by part, and its pages read ``fallback`` meanwhile.
        fallback: the profile whose results stand in for the omitted and pending parts (clearly
            labelled; where it lacks the part too, its own fallback stands in).
        precision, schedule_fit, train_eval: the ``RunSpec`` fields of every network it trains.
        cpu_isa: the instruction set its CPU kernels are held to (``pinned_isa``) so that its
            numbers agree across x86 machines; None: each machine's best (fastest).
    """

    name: str
    description: str
    device: str
    datasets: dict = field(default_factory=dict)
    widths: dict = field(default_factory=dict)
    epochs: dict = field(default_factory=dict)
    seeds: int = 1
    batch_size: int = 128
    monitor: int = 500
    probe_examples: int | None = None
    taylor_examples: int | None = None
    unroll_scale: float = 0.5
    part_seeds: dict = field(default_factory=dict)
    part_widths: dict = field(default_factory=dict)
    part_epochs: dict = field(default_factory=dict)
    omitted: dict = field(default_factory=dict)
    pending: dict = field(default_factory=dict)
    fallback: str | None = None
    precision: str = "float32"
    schedule_fit: str = "proportional"
    train_eval: int = 0
    cpu_isa: str | None = None

    @property
    def schedule_note(self) -> str:
        """How this profile's epochs fit the paper's learning-rate schedules, and why (captions)."""
        if self.schedule_fit == "budget":
            return ("the paper's learning rates, half the epochs at the first and each later drop halfway to the end "
                    "(a short budget compressed proportionally leaves most epochs at rates too small to learn)")
        if all(e == train.paper_schedule(a).epochs for a, e in self.epochs.items()):
            return "the paper's schedules"
        return "each paper schedule compressed to the epochs given, milestones at the paper's fractions"

    def schedule_of(self, arch: str) -> str:
        """How ``arch`` trains at this profile (captions): ``schedule_note`` for the paper's SGD
        networks; the ViT's own recipe (``train.VIT_RECIPE``), whose cosine keeps its shape at any length."""
        recipe = train.recipe(arch)
        if not isinstance(recipe.schedule, train.WarmupCosine):
            return self.schedule_note
        cos = recipe.schedule
        return (f"{train.OPTIMIZERS[recipe.optimizer]} (weight decay {recipe.weight_decay:g}) at peak rate {cos.lr:g}, linear warm-up over the first "
                f"{100 * cos.warmup / cos.epochs:g} % of the epochs, then cosine decay (the usual recipe for small ViTs)")

    def schedules(self, archs) -> str:
        """``schedule_of`` every one of ``archs``: said once when they agree, else per architecture."""
        notes: dict[str, list[str]] = {}
        for arch in archs:
            notes.setdefault(self.schedule_of(arch), []).append(arch)
        if len(notes) == 1:
            return next(iter(notes))
        return "; ".join(f"{', '.join(group)}: {note}" for note, group in notes.items())

    def dataset(self, role: str) -> str:
        if role not in ROLES:
            raise ValueError(f"unknown dataset role {role!r}; choose one of: {', '.join(ROLES)}")
        return self.datasets[role]

    def spec(self, arch: str, seed: int = 0, role: str = "cifar10", device: str | None = None,
             part: str = "main") -> RunSpec:
        recipe = train.recipe(arch)
        epochs = self.part_epochs.get(part, {}).get(arch, self.epochs.get(arch, recipe.schedule.epochs))
        width = self.part_widths.get(part, {}).get(arch, self.widths.get(arch, 1.0))
        return RunSpec(arch, self.dataset(role), width, epochs, seed, self.batch_size, recipe.weight_decay,
                       device=device or self.device, monitor=self.monitor, precision=self.precision,
                       schedule_fit=self.schedule_fit, train_eval=self.train_eval)


SMOKE = Profile(
    name="smoke",
    description="CPU smoke test: the paper's depths at reduced width on scikit-learn's digits, a few epochs",
    device="cpu",
    datasets={"cifar10": "digits", "cifar100": "digits"},
    # 8 channels where the paper has 100/150 at 32x32 (the costly resolution), 8/16/32 for
    # ResNet-110's 16/32/64, and 16/32/64 for wide's 160/320/640. The other ResNets (Table 1,
    # Fig. 8-9) run at 4/8/16 channels for 6 epochs; every caption states the widths.
    widths={**{a: 0.25 for a in models.ARCHS if a.startswith("resnet")},
            "single-representation": 0.08, "avg-pooling": 0.053, "resnet110": 0.5, "wide": 0.1,
            # The ViT at 24 dimensions (3 heads of 8), 30 epochs: 3.7 CPU-seconds an epoch with its
            # monitors, ~2 minutes of one core; 20 epochs left it at 36 % test accuracy, 30 reach 51 %.
            "vit": 0.25},
    epochs={**{a: 6 for a in models.ARCHS},
            "single-representation": 8, "avg-pooling": 8, "resnet110": 8, "wide": 8, "vit": 30},
    seeds=1,
    batch_size=64,
    monitor=200,
    probe_examples=300,
    taylor_examples=100,
    unroll_scale=0.5,
    cpu_isa="avx2",  # what every x86 machine of the last decade has; the CI machine has no more
)

PAPER = Profile(
    name="paper",
    description="PAPER.md exactly: full widths, the paper's schedules, CIFAR-10/100, 4 seeds, on a GPU",
    device="cuda",
    datasets={"cifar10": "cifar10", "cifar100": "cifar100"},
    seeds=4,
    batch_size=128,
    monitor=1000,
    probe_examples=None,
    unroll_scale=0.5,
)

CIFAR10_CPU = Profile(
    name="cifar10-cpu",
    description="real CIFAR-10 on a CPU: the 10k training subset, the full test set, the paper's depths at reduced "
                "width, each paper schedule compressed to 10 epochs, 2 seeds (1 for the shared-block part)",
    device="cpu",
    datasets={"cifar10": "cifar10-10k"},
    # Sized by measured one-thread step times (batch 128, 2-core machine): ResNet-110 at 8/16/32
    # channels 1.15 s, single-repr at 16 channels 0.59 s, avg-pool at 15 channels 0.80 s, wide at
    # 16/32/64 channels 0.62 s; with per-epoch evaluation and monitors, ~1 hour per seed.
    # The sharing part (Table 1, Fig. 8-9: ResNet-32 ... ResNet-182-UBN) runs one seed with
    # every ResNet at 4/8/16 channels, ResNet-110 included (so Table 1 compares one width).
    # Deep networks this narrow are overhead-bound: ResNet-182-UBN ~2.2 min per epoch on one
    # core (the other one busy), the ten networks ~2.5 CPU-hours in all.
    widths={**{a: 0.25 for a in models.ARCHS if a.startswith("resnet")},
            "resnet110": 0.5, "single-representation": 0.16, "avg-pooling": 0.1, "wide": 0.1},
    epochs={a: 10 for a in models.ARCHS},
    seeds=2,
    part_seeds={"sharing": 1},
    part_widths={"sharing": {"resnet110": 0.25}},
    omitted={"cifar100": "the machines this profile is for have no CIFAR-100",
             "beyond": "its networks trained 10 epochs are far from fitting the data; the vision transformer "
                       "is trained toward the paper's regime in cifar10-long"},
    fallback="smoke",
    batch_size=128,
    monitor=500,
    probe_examples=1000,
    taylor_examples=200,
    unroll_scale=0.5,
)

CIFAR10_LONG = Profile(
    name="cifar10-long",
    description="real CIFAR-10 on a CPU, trained toward the paper's regime: the 10k training subset, the full test set, "
                "the paper's depths at reduced width, 40-50 epochs of the paper's learning rates with half the epochs "
                "at the first rate, 3 seeds (the shared-block part: 2 seeds), the ViT 200 epochs of its own recipe",
    device="cpu",
    datasets={"cifar10": "cifar10-10k"},
    # Sized by measured one-thread float32 step times (batch 128, both cores busy; bench/README.md):
    # ResNet-110 at 8/16/32 channels 0.86 s, single-repr at 25 channels 1.22 s, avg-pool at 24
    # channels ~1.6 s, wide at 16/32/64 0.52 s. Batch 256 and torch.compile did not pay; bf16 runs
    # where it measures faster. Widths: cifar10-cpu's single-repr (16 channels) and avg-pool (15)
    # cannot fit the data; every ResNet runs at 8/16/32 channels. Epochs, by pilots:
    # - the schedule pilot (bench/pilot_schedule.json) trained single-repr 30 epochs on this CPU: 82 %
    #   un-augmented training accuracy, short of the 85 % target; hence 50 for single-repr and wide;
    # - the GPU pilot (bench/gpu_pilot.json: these very specs on a lent GPU, seed 0, bf16) then reached
    #   86-93 % training / 77-80 % test accuracy for the four main networks (ResNet-110 86 % at 41 of
    #   its 50 epochs), but 64-77 % for the shared-block part's ResNets at 30 epochs: they get 50, the
    #   main ResNet-110's, so its two seeds are that part's own and Table 1 compares equal budgets;
    # - the ViT (beyond the paper) at 100 epochs reached 89 %, at 150 97.0 % (one seed), at 200
    #   (the recipe's full length) 99.7 % on both seeds, with test accuracy flat at 67-68 % from
    #   epoch 100: it gets 200 epochs, ~80 s each on one core, two sessions per run (it resumes).
    # About 50 core-hours in all, from the rates measured while training (one process per core, epoch
    # with its train-eval pass): the main part's 12 runs ~16 (ResNet-110 1.6 min/epoch, single-repr
    # 2.1, avg-pool 2.3, wide 0.9; done), the ViT's 2 ~9 (~81 s/epoch), the shared-block part's 18
    # ~22 (ResNet-110's rate scaled by depth), pilots ~3.
    widths={**{a: 0.5 for a in models.ARCHS if a.startswith("resnet")},
            "single-representation": 0.25, "avg-pooling": 0.16, "wide": 0.1},
    # The ViT runs at width 1 (1.02M parameters).
    epochs={"resnet110": 50, "avg-pooling": 40, "single-representation": 50, "wide": 50, "vit": 200},
    seeds=3,
    part_seeds={"sharing": 2, "beyond": 2},
    part_epochs={"sharing": {a: 50 for a in models.ARCHS if a.startswith("resnet")}},
    omitted={"cifar100": "the machines this profile is for have no CIFAR-100"},
    # Published part by part: these train after the main part, and cifar10-cpu stands in meanwhile.
    pending={"sharing": "the networks of Table 1 and Fig. 8-9, training after the vision transformer's"},
    fallback="cifar10-cpu",
    batch_size=128,
    monitor=500,
    probe_examples=1000,
    taylor_examples=200,
    unroll_scale=0.5,
    precision="bf16",
    schedule_fit="budget",
    train_eval=2000,
)

CIFAR10_GPU = replace(
    CIFAR10_LONG, name="cifar10-gpu", device="cuda", widths={}, part_widths={}, pending={}, fallback="smoke",
    description="cifar10-long at the paper's full widths on a GPU: the same data, epochs, schedules and seeds "
                "(the ladder's GPU point: `make results PROFILE=cifar10-gpu`, bench/gpu_profile.sh on a device)")

PROFILES = {p.name: p for p in (SMOKE, CIFAR10_CPU, CIFAR10_LONG, CIFAR10_GPU, PAPER)}
#: The profile the site publishes: every notebook's default, and the one committed in results/.
PUBLISHED = "cifar10-long"


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}")
    return PROFILES[name]


@dataclass(frozen=True)
class Setting:
    """A notebook's validated parameters: the profile, the device and the seeds to average.

    ``standing_in`` is None, or (the profile asked for, why it cannot show this ``part``: a
    predicate, "does not run this part (...)") when ``profile`` stands in for it."""

    profile: Profile
    device: str
    seeds: tuple[int, ...]
    part: str = "main"
    standing_in: tuple[str, str] | None = None

    def spec(self, arch: str, seed: int = 0, role: str = "cifar10") -> RunSpec:
        return self.profile.spec(arch, seed, role, self.device, self.part)


def setting(profile: str | None = None, device: str | None = None, seeds: int | None = None,
            part: str = "main", pending: bool = False) -> Setting:
    """Validate a notebook's ``parameters`` cell.

    Args:
        profile: a key of ``PROFILES``; None for the published one (``PUBLISHED``).
        device: "cpu", "cuda", or None for the profile's own device.
        seeds: how many seeds (0..seeds-1) to train and average; None for the profile's.
        part: the part of the book (``PARTS``) the notebook belongs to; a profile that omits it,
            or is still training it, hands over to its ``fallback`` profile, and the setting says so.
        pending: read a part still training from the profile's own results all the same (what
            computing them needs), not from its fallback.
    """
    prof = get_profile(PUBLISHED if profile is None else profile)
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; choose one of: {', '.join(PARTS)}")
    standing_in, chain = None, [prof.name]
    while part in prof.omitted or (part in prof.pending and not pending):
        why = (f"does not run this part ({prof.omitted[part]})" if part in prof.omitted
               else f"is still training this part's networks ({prof.pending[part]})")
        if prof.fallback is None:
            raise ValueError(f"profile {prof.name!r} {why}, and has no fallback profile to show instead")
        if prof.fallback in chain:
            raise ValueError(f"profiles {' -> '.join(chain + [prof.fallback])} fall back in a circle for part {part!r}")
        standing_in = standing_in or (prof.name, why)
        chain.append(prof.fallback)
        prof = get_profile(prof.fallback)
    device = prof.device if device is None else device
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose one of: {', '.join(DEVICES)} (or None for the profile's)")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device 'cuda' asked for, but torch {torch.__version__} sees no CUDA device here")
    n = prof.part_seeds.get(part, prof.seeds) if seeds is None else seeds
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"seeds must be a positive integer (how many seeds to average), got {seeds!r}")
    return Setting(prof, device, tuple(range(n)), part, standing_in)


# ----------------------------------------------------------------------------- caches


def cache_dir() -> Path:
    """Checkpoints: ``$REFINE_CACHE_DIR``, else ``cache/`` in the repository (git-ignored)."""
    return Path(os.environ.get("REFINE_CACHE_DIR", ROOT / "cache"))


def results_dir() -> Path:
    """Results root: ``$REFINE_RESULTS_DIR``, else ``results/`` in the repository (committed)."""
    return Path(os.environ.get("REFINE_RESULTS_DIR", ROOT / "results"))


@functools.lru_cache(maxsize=None)
def commit() -> str:
    """The repository's commit (``+dirty`` when tracked files differ from it), or "unknown"."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "refine_utils"],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


@functools.lru_cache(maxsize=4)
def dataset(name: str) -> data.Dataset:
    return data.load(name)


def monitors(spec: RunSpec, ds: data.Dataset) -> tuple[train.Callback, ...]:
    """Per-epoch callbacks recorded in every history of ``spec``: intermediate accuracy (Fig. 5),
    per-block cosine and l2 ratio (the appendix), gradient-norm ratio and activation norms (Fig. 8, 9)."""
    if spec.monitor == 0:
        return ()
    from . import probes

    def block_stats(epoch, model, record):
        stats = probes.split_block_stats(model, ds, "test", max_examples=spec.monitor)
        record["cos"], record["ratio"] = stats.cos_mean, stats.ratio_mean

    images, labels = diagnostic_batch(ds, spec.monitor, spec.device)
    return (probes.intermediate_accuracy_callback(ds, "test", max_examples=spec.monitor), block_stats,
            probes.diagnostics_callback(images, labels))


def diagnostic_batch(ds: data.Dataset, n: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``min(n, 256)`` test examples, normalised: the batch the diagnostics read."""
    loader = data.Loader(ds.test, ds.mean, ds.std, min(n, 256), train=False, device=device)
    return next(iter(loader))


@contextlib.contextmanager
def _threads(device: str):
    """Run CPU work with ``CPU_THREADS`` intra-op threads, then restore the caller's setting."""
    before = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(CPU_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def pinned_isa(isa: str | None):
    """Hold ATen's, oneDNN's and MKL's CPU kernels to the instruction set ``isa`` (e.g. "avx2"; None:
    no change) in the processes started meanwhile (training workers, notebook kernels) and in this
    one if it has not computed yet. Each library picks its kernels by the CPU's best instruction set,
    and float32 training amplifies the last bits in which they differ: ``smoke``'s numbers differed
    between an AVX-512 and an AVX2 machine in 58 of 65 records. On a machine whose best is ``isa``
    nothing changes (measured on an AVX2 EPYC: identical weights after training with and without)."""
    pins = {} if isa is None else {"ATEN_CPU_CAPABILITY": isa.lower(), "ONEDNN_MAX_CPU_ISA": isa.upper(),
                                   "MKL_CBWR": isa.upper()}
    saved = {k: os.environ.get(k) for k in pins}
    os.environ.update(pins)
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def checkpoint_path(spec: RunSpec) -> Path:
    return cache_dir() / f"{spec.name}.pt"


def initial(spec: RunSpec) -> models.ResidualNet:
    """The network ``spec`` names at initialisation: the very weights ``trained`` starts from."""
    torch.manual_seed(spec.seed)
    return models.build(spec.arch, num_classes=dataset(spec.dataset).num_classes, width=spec.width)


class Busy(RuntimeError):
    """Another process holds the spec's training lock (it is training that network now)."""


@contextlib.contextmanager
def _lock(spec: RunSpec, wait: bool):
    """Hold ``<checkpoint>.lock`` while training ``spec``: two processes never train one network at
    once. The second waits for the first (``wait``; it then finds the finished checkpoint) or
    raises ``Busy``. The lock is the kernel's (``flock``), so a killed process releases it; the
    temporary file a process killed while writing the checkpoint left is removed once it is held."""
    path = checkpoint_path(spec).with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise Busy(f"{spec.name} is being trained by another process") from None
        ckpt = checkpoint_path(spec)  # no one else writes it now: a temporary file a killed writer left goes
        for stale in ckpt.parent.glob(f".{ckpt.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        yield


def run(spec: RunSpec, progress: bool = False, wait: bool = True) -> tuple[models.ResidualNet, train.History]:
    """The network ``spec`` names, trained: loaded from its checkpoint, resumed, or trained from
    scratch (writing the checkpoint after every epoch). Returns the model (eval mode) and its
    history, which says ``diverged`` (with the epoch) for a run whose loss blew up. While another
    process trains the same spec, this waits for it (``wait``) or raises ``Busy``."""
    ds = dataset(spec.dataset)
    model = initial(spec)  # the initial weights depend on the seed alone, not on what ran before
    with _lock(spec, wait), _threads(spec.device):
        history = train.train(model, ds, spec.train_config(), device=spec.device, checkpoint=checkpoint_path(spec),
                              callbacks=monitors(spec, ds), progress=progress, meta=asdict(spec))
    return model, history


class Diverged(RuntimeError):
    """A probe asked for a network whose training diverged (there is nothing sound to probe)."""


def trained(spec: RunSpec, progress: bool = False) -> tuple[models.ResidualNet, train.History]:
    """``run(spec)``, for probes: a diverged run raises ``Diverged``."""
    model, history = run(spec, progress)
    if history.diverged is not None:
        raise Diverged(f"{spec.name} diverged at epoch {history.diverged}; {checkpoint_path(spec)} records it "
                       "(delete it to train the network again)")
    return model, history


def _part_runs(part: str, prof: Profile) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The dataset roles and the architectures one part of the book trains (what its figures and
    tables read): Table 1 has a column group per dataset the profile has."""
    from . import paper

    if part == "beyond":  # ResNet-110 is the main part's own network (same spec, same checkpoint)
        return ("cifar10",), ("resnet110", "vit")
    if part == "sharing":
        roles = tuple(r for r in ROLES if r in prof.datasets)
        return roles, tuple(dict.fromkeys([*paper.TABLE1["cifar10"], *models.ABLATION, "resnet32"]))
    return ("cifar100" if part == "cifar100" else "cifar10",), models.FIGURE_ARCHS


def book_specs(profile: str, parts: tuple[str, ...] = PARTS) -> list[RunSpec]:
    """Every network the book trains at ``profile`` (none for the parts it omits; only ``parts``),
    each once, in the order ``pretrain`` starts them: part by part (``TRAIN_ORDER``), seed 0
    of every network before seed 1, the costliest first within a seed. An interrupted profile
    thus has whole seeds of the main figures first."""
    prof = get_profile(profile)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown part(s) {', '.join(unknown)}; choose from: {', '.join(PARTS)}")
    specs = {}
    for p, part in enumerate(TRAIN_ORDER):
        if part in prof.omitted or part not in parts:
            continue
        roles, archs = _part_runs(part, prof)
        for role in roles:
            for arch in archs:
                for seed in range(prof.part_seeds.get(part, prof.seeds)):
                    spec = prof.spec(arch, seed, role, part=part)
                    specs.setdefault(spec.key, (p, seed, -_cost(spec), spec))
    return [entry[-1] for entry in sorted(specs.values(), key=lambda e: e[:3])]


def _cost(spec: RunSpec) -> float:
    return models.train_flops(spec.arch, spec.width) * spec.epochs


def _train_quietly(spec: RunSpec) -> int | None:
    """A pretraining worker's job: train ``spec``, return the epoch it diverged at (or None)."""
    return run(spec)[1].diverged


def pretrain(profile: str, workers: int = 1, progress: bool = True, parts: tuple[str, ...] = PARTS,
             executor: str = "processes", **executor_options) -> list[int | None]:
    """Train (or resume, or find) every network of ``book_specs(profile, parts)``, ``workers``
    processes at a time; returns each run's divergence epoch (None: trained). A run's weights depend
    on its spec alone (seeded, ``CPU_THREADS`` threads), so this only changes when they are computed.

    ``executor`` "slurm" (or "local") hands the runs to submitit instead, one job per network, with
    ``executor_options`` passed to it (e.g. ``slurm_partition``, ``timeout_min``, ``gpus_per_node``):
    the path the ``paper`` profile's GPU-hours need; a pre-empted job resumes from its checkpoint."""
    from . import sweep

    specs = book_specs(profile, parts)
    for name in {spec.dataset for spec in specs}:
        dataset(name)  # missing data fails here, before any process starts or any run trains
    if executor != "processes":
        return sweep.run(_train_quietly, specs, executor=executor, folder=cache_dir() / "sweeps", **executor_options)
    if workers > 1:
        return sweep.run(_train_quietly, specs, executor="processes", workers=workers, progress=progress)
    done = {}
    for spec in specs:  # one process: runs another process is training now are taken up last
        with contextlib.suppress(Busy):
            done[spec.key] = run(spec, progress=progress, wait=False)[1].diverged
    return [done[s.key] if s.key in done else run(s, progress=progress)[1].diverged for s in specs]


def _rounded(value, digits: int = 6):
    """Floats to ``digits`` significant digits (short, text-diffable JSON); the rest unchanged."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v, digits) for v in value]
    return value


class MissingResult(LookupError):
    """A result is not in the results folder and computing it is switched off (``cached_only``, or
    ``$REFINE_MISSING_RESULTS=error``, which ``make book`` sets)."""


class ResultError(RuntimeError):
    """A stored result that cannot be trusted: unreadable, or changed after it was written."""


_CACHED_ONLY = False
#: What ``result`` does when a result is missing: "compute" it (the default; ``refine results``,
#: papermill, the library) or raise ``MissingResult`` ("error": the book build reads committed results).
MISSING_RESULTS = ("compute", "error")


@contextlib.contextmanager
def cached_only():
    """Within this block ``result`` only reads: a missing result raises ``MissingResult``."""
    global _CACHED_ONLY
    before, _CACHED_ONLY = _CACHED_ONLY, True
    try:
        yield
    finally:
        _CACHED_ONLY = before


def _missing_results() -> str:
    mode = os.environ.get("REFINE_MISSING_RESULTS", "compute")
    if mode not in MISSING_RESULTS:
        raise ValueError(f"$REFINE_MISSING_RESULTS must be one of {', '.join(MISSING_RESULTS)}, got {mode!r}")
    return mode


def result_path(profile: str, name: str, spec: RunSpec, params: dict | None = None) -> Path:
    tag = spec.name if not params else f"{spec.name}-{_hash(dict(spec=spec.key, params=params))}"
    return results_dir() / profile / name / f"{tag}.json"


def result(profile: str, name: str, spec: RunSpec, compute: Callable[[], object], params: dict | None = None):
    """The record of ``compute()``'s JSON-able value for ``spec``: read from the results folder, or
    computed and stored. ``record["value"]`` is the value; the record also holds the spec, profile,
    params, device, torch version, commit and a checksum of all that (``record_checksum``).

    ``params`` are the probe's own settings (part of the cache key). The record comes back as
    stored (floats to 6 significant digits), so a fresh and a cached run print the same. A stored
    record that fails to parse or to match its checksum raises ``ResultError``; a missing one under
    ``cached_only`` or ``$REFINE_MISSING_RESULTS=error`` raises ``MissingResult``, naming the command
    that computes it."""
    path = result_path(profile, name, spec, params)
    if path.exists():
        return read_result(path)
    if _CACHED_ONLY or _missing_results() == "error":
        raise MissingResult(f"no result {path} ({name} of {spec.name}): `make results PROFILE={profile}` computes "
                            f"it (or unset REFINE_MISSING_RESULTS to compute it here)")
    with _threads(spec.device):
        value = _rounded(compute())
    record = dict(name=name, profile=profile, dataset=data.source(spec.dataset), arch=spec.arch, spec=asdict(spec),
                  params=params or {}, device=spec.device,
                  torch=torch.__version__, commit=commit(), value=value)
    write_result(path, record)
    return read_result(path)


def record_checksum(record: dict) -> str:
    """SHA-256 of a result record's canonical JSON, its ``checksum`` entry left out."""
    payload = {k: v for k, v in record.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _sealed_text(record: dict) -> str:
    """The stored form: indented, sorted JSON with the record's checksum (of the JSON as read back)."""
    record = json.loads(json.dumps({k: v for k, v in record.items() if k != "checksum"}))
    return json.dumps(dict(record, checksum=record_checksum(record)), indent=1, sort_keys=True) + "\n"


def write_result(path: Path, record: dict) -> None:
    """Store ``record`` with its checksum at ``path`` atomically: a unique temporary file in the same
    folder, then ``os.replace`` (two writers of one result each write whole files; the last stays)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(_sealed_text(record))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise OSError(e.errno, f"disk full: cannot write result {path}") from None
        raise


def read_result(path: Path) -> dict:
    """A stored record, verified: one that cannot be parsed, or whose checksum does not match, raises
    ``ResultError`` naming the file. Records written before checksums existed have none and are read
    as they are (every committed one is sealed: ``seal_results``)."""
    fix = (f"delete it and re-run `make results PROFILE={path.parent.parent.name}` to recompute it, or restore the "
           f"committed copy with `git checkout -- {path}`")
    try:
        record = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ResultError(f"result {path} is corrupt or empty ({type(e).__name__}: {e}); {fix}") from None
    if not isinstance(record, dict) or "value" not in record:
        raise ResultError(f"result {path} is not a refine_utils result (no 'value' entry); {fix}")
    if "checksum" in record:
        if record["checksum"] != record_checksum(record):
            raise ResultError(f"result {path} fails its checksum (its contents changed after it was written); {fix}")
    elif set(record) != _UNSEALED_KEYS:
        raise ResultError(f"result {path} has no checksum and is not a record written before checksums existed; {fix}")
    return record


#: The entries of a record written before checksums existed (the only records read without one).
_UNSEALED_KEYS = {"name", "profile", "dataset", "arch", "spec", "params", "device", "torch", "commit", "value"}


def seal_results(folder: Path) -> list[Path]:
    """Add a checksum to every record under ``folder`` that has none (written before checksums
    existed); returns the files sealed. A record that already has one is verified, not rewritten."""
    sealed = []
    for path in sorted(Path(folder).rglob("*.json")):
        record = read_result(path)
        if "checksum" not in record:
            write_result(path, record)
            sealed.append(path)
    return sealed
