"""Training what a profile needs: ``trained(spec)`` trains (or resumes, or loads) one network
with a checkpoint under ``store.cache_dir()``, recording the per-epoch monitors every history
has; ``book_specs`` and ``pretrain`` list and train every network of a profile (``refine results``),
one process per core, or through submitit on a cluster.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import os
from dataclasses import asdict

import torch

from . import data, models, train
from .profiles import PARTS, ROLES, Profile, get_profile
from .specs import RunSpec, cpu_threads
from .store import cache_dir, checkpoint_path, read_result, result, result_path, results_dir

#: The order ``pretrain`` trains the parts in: the ViT's two runs (``CIFAR10_LONG``: ~9 core-hours)
#: before the shared-block part's eighteen (~22), so an interrupted profile has its chapter sooner.
TRAIN_ORDER = ("main", "cifar100", "beyond", "sharing")


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
    with _lock(spec, wait), cpu_threads(spec.device):
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
    """A sweep worker's job: train ``spec``, return the epoch it diverged at (or None)."""
    return run(spec)[1].diverged


def stored_run(profile: str, spec: RunSpec, progress: bool = False, wait: bool = True) -> dict:
    """The record of ``spec``'s history in the results of ``profile`` (its ``value``: the per-epoch
    ``records`` and the epoch it ``diverged`` at, or None): read where stored, else trained (or
    resumed) and stored, so a finished network's history outlives its checkpoint."""
    def compute():
        _, history = run(spec, progress, wait)
        return dict(records=history.records, diverged=history.diverged)

    return result(profile, "history", spec, compute)


def _train_and_store(profile: str, spec: RunSpec) -> int | None:
    """A pretraining worker's job: ``stored_run``; the epoch it diverged at (or None)."""
    return stored_run(profile, spec)["value"]["diverged"]


def pretrain(profile: str, workers: int = 1, progress: bool = True, parts: tuple[str, ...] = PARTS,
             executor: str = "processes", **executor_options) -> list[int | None]:
    """Train (or resume, or find) every network of ``book_specs(profile, parts)``, ``workers``
    processes at a time; returns each run's divergence epoch (None: trained). A run's weights depend
    on its spec alone (seeded, ``CPU_THREADS`` threads), so this only changes when they are computed.
    Each network's history is stored in the results of ``profile`` as soon as it is trained, and one
    whose history is stored there is not trained again: on a new machine, with the committed results
    and no checkpoints, this trains only what is missing.

    ``executor`` "slurm" (or "local") hands the runs to submitit instead, one job per network, with
    ``executor_options`` passed to it (e.g. ``slurm_partition``, ``timeout_min``, ``gpus_per_node``):
    the path the ``paper`` profile's GPU-hours need; a pre-empted job resumes from its checkpoint."""
    from . import sweep

    every = book_specs(profile, parts)
    done = {s.key: read_result(path)["value"]["diverged"] for s in every
            if (path := result_path(profile, "history", s)).exists()}
    specs = [s for s in every if s.key not in done]
    for name in {spec.dataset for spec in every}:  # the notebooks read the data too
        dataset(name)  # missing data fails here, before any process starts or any run trains
    if done and progress:
        print(f"{len(done)} of {len(every)} networks have their history stored in {results_dir() / profile} and "
              "are not trained again (a result that needs one's weights trains it then)", flush=True)
    job = functools.partial(_train_and_store, profile)
    if not specs:
        trained = []
    elif executor != "processes":
        trained = sweep.run(job, specs, executor=executor, folder=cache_dir() / "sweeps", **executor_options)
    elif workers > 1:
        trained = sweep.run(job, specs, executor="processes", workers=workers, progress=progress)
    else:
        for spec in specs:  # one process: runs another process is training now are taken up last
            with contextlib.suppress(Busy):
                done[spec.key] = stored_run(profile, spec, progress, wait=False)["value"]["diverged"]
        trained = [done[s.key] if s.key in done else stored_run(profile, s, progress)["value"]["diverged"] for s in specs]
    done |= {s.key: d for s, d in zip(specs, trained)}
    return [done[s.key] for s in every]

