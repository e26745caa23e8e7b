"""The book at each scale: a ``Profile`` names the specs of every figure, and ``setting``
validates a notebook's parameters against one.

- ``smoke``: CPU, the offline ``digits`` data, the paper's depths at reduced widths, a few
  epochs. The whole book from scratch in minutes on 2 cores; what CI recomputes. ``digits``
  also stands in for CIFAR-100 (the appendix figures), which every figure caption says.
- ``cifar10-cpu``: real CIFAR-10 (10k training subset, full test set) at reduced widths, 10
  epochs, 2 seeds: CPU-hours. It omits parts of the book (``Profile.omitted``); their pages read
  ``smoke`` instead and say so.
- ``cifar10-long``: the same data trained toward the paper's regime (40-50 epochs, wider, 3 seeds):
  what the site publishes (``PUBLISHED``), part by part: the parts still training
  (``Profile.pending``) read ``cifar10-cpu`` meanwhile, and say so.
- ``paper``: the paper exactly: full widths, the paper's schedules, CIFAR-10 / CIFAR-100, 4 seeds,
  on CUDA.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from . import models, train
from .specs import DEVICES, RunSpec

#: The dataset roles of the paper (main text, appendix).
ROLES = ("cifar10", "cifar100")
#: The book's parts: the main text's figures (CIFAR-10), their CIFAR-100 versions, the shared-block
#: experiments (Fig. 8-9, Table 1, the shared model's appendix), and "beyond" the paper (a vision
#: transformer beside ResNet-110, ``beyond.py``). A profile may leave a part out.
PARTS = ("main", "cifar100", "sharing", "beyond")


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
                "at the first rate, 3 seeds (the shared-block part: 2), the ViT 200 epochs of its own recipe",
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
    # Sized at about 50 core-hours, from the rates measured while training (one process per core,
    # epoch with its train-eval pass): the main part's 12 runs ~16 (ResNet-110 1.6 min/epoch,
    # single-repr 2.1, avg-pool 2.3, wide 0.9), the ViT's 2 ~9 (~81 s/epoch), the shared-block
    # part's 18 ~22 (ResNet-110's rate scaled by depth), pilots ~3. Spent by the end of that part's
    # first seed: about 65 with every check and pilot, ~9 of them on runs lost unfinished with two
    # changes of machine; the later machines ran 110-layer epochs at 2.0-3.2 min, not 1.6. Its
    # second seed took about 25 more (epochs of its 110- to 182-layer nets 2.0-4.3 min beside another
    # run, by machine; ~3 of them on runs lost with a third change of machine): ~90 in all.
    widths={**{a: 0.5 for a in models.ARCHS if a.startswith("resnet")},
            "single-representation": 0.25, "avg-pooling": 0.16, "wide": 0.1},
    # The ViT runs at width 1 (1.02M parameters).
    epochs={"resnet110": 50, "avg-pooling": 40, "single-representation": 50, "wide": 50, "vit": 200},
    seeds=3,
    part_seeds={"sharing": 2, "beyond": 2},
    part_epochs={"sharing": {a: 50 for a in models.ARCHS if a.startswith("resnet")}},
    omitted={"cifar100": "the machines this profile is for have no CIFAR-100"},
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
    CIFAR10_LONG, name="cifar10-gpu", device="cuda", widths={}, part_widths={}, fallback="smoke",
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
