"""``refine``: the command line.

``refine train`` trains one network through the book's own path: its flags make a
``specs.RunSpec``, and ``experiments.run`` trains it (same seeding, same spec-keyed
checkpoint under ``$REFINE_CACHE_DIR``), so the command line and the notebooks share trained
networks and re-running a command resumes it; ``--out`` only exports a copy of the checkpoint.
``refine results`` computes a whole profile's results (``book.execute``).

Every flag, the data and the output locations are checked before any training, and every error
is one line naming the flag or file (exit code 2). Ctrl-C or SIGTERM stops training cleanly with
"interrupted at epoch N ...; re-run the same command to resume" (exit code 130 or 143).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import tempfile
import threading
from dataclasses import asdict
from pathlib import Path

import torch

from . import data, experiments, models, profiles, specs, store, sweep, train


class UsageError(ValueError):
    """A flag or location that cannot work; the message names it."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _natural(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {value}")
    return value


def _nonnegative_float(text: str) -> float:
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="refine", description="Reproduce 'Residual Connections Encourage Iterative Inference'.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one network (or resume it, or find it trained)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Train one architecture on its recipe (train.recipe), fitted to --epochs: SGD "
                                   "(momentum 0.9) on the paper's learning-rate schedule for that architecture, or, "
                                   "for the ViT, AdamW with warm-up and cosine decay. The checkpoint goes where the "
                                   "book's networks go, named by the run's settings (cache/, or $REFINE_CACHE_DIR), so "
                                   "the notebooks reuse it and re-running the same command resumes it.")
    t.add_argument("--arch", required=True, choices=list(models.ARCHS), metavar="ARCH",
                   help="architecture: " + ", ".join(models.ARCHS))
    t.add_argument("--dataset", default="digits", choices=data.DATASETS, metavar="DATASET",
                   help="dataset: " + ", ".join(data.DATASETS) + " (digits ships with scikit-learn and needs no download)")
    t.add_argument("--epochs", type=_positive_int, default=None,
                   help="epochs; the recipe's schedule is fitted to them (default: the recipe's full length, "
                        "the paper's for its architectures)")
    t.add_argument("--schedule-fit", default="proportional", choices=specs.SCHEDULE_FITS,
                   help="how the paper's schedule fits --epochs: milestones at the paper's fractions, or half the "
                        "epochs at the first rate (the ViT's cosine is scaled either way)")
    t.add_argument("--width", type=_positive_float, default=1.0, help="multiply every channel count (1.0 = the paper's network)")
    t.add_argument("--batch-size", type=_positive_int, default=128, help="training batch size")
    t.add_argument("--weight-decay", type=_nonnegative_float, default=None,
                   help="weight decay on conv and linear weights (default: the recipe's, 1e-4 with SGD, 0.05 for the ViT)")
    t.add_argument("--seed", type=_natural, default=0, help="seed for initialisation, shuffling and augmentation")
    t.add_argument("--device", default=None, choices=specs.DEVICES,
                   help="where to train (default: cuda when available); CUDA runs in bf16 autocast, compiled")
    t.add_argument("--precision", default="float32", choices=train.PRECISIONS,
                   help="CPU arithmetic: float32 (bit-reproducible) or bf16 autocast (where the CPU has AMX)")
    t.add_argument("--monitor", type=_natural, default=0,
                   help="test examples the per-epoch monitors read (the book's profiles use 200-1000; 0: none)")
    t.add_argument("--train-eval", type=_natural, default=0,
                   help="training images evaluated un-augmented after every epoch (0: none)")
    t.add_argument("--data-dir", default=None, help="folder with CIFAR (default: $REFINE_DATA_DIR or ./data)")
    t.add_argument("--download", action="store_true", help="download CIFAR with torchvision if it is not on disk")
    t.add_argument("--out", default=None, help="also export the trained checkpoint to this file")
    r = sub.add_parser("results", help="compute a profile's results: train its networks, execute every notebook",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Train every network the book needs at --profile (resuming from checkpoints; one "
                                   "whose history results/<profile>/ already holds is not trained again), --workers at "
                                   "a time, then execute every notebook with that profile, --workers kernels at a time. "
                                   "Results go to results/<profile>/ ($REFINE_RESULTS_DIR), checkpoints to cache/ "
                                   "($REFINE_CACHE_DIR), CIFAR is read from $REFINE_DATA_DIR (default ./data).")
    r.add_argument("--profile", required=True, help="a profile of refine_utils.profiles.PROFILES")
    r.add_argument("--workers", type=_positive_int, default=None,
                   help="training processes, then notebook kernels (default: one per CPU core)")
    r.add_argument("--out", default=None, help="folder for the executed notebooks (default: _build/executed/<profile>)")
    r.add_argument("--train-only", action="store_true",
                   help="only train (or resume) the networks; several such commands may run at once, each "
                        "taking the networks the others are not training")
    r.add_argument("--executor", default="processes", choices=("processes", "slurm", "local"),
                   help="where the networks train: processes on this machine, one Slurm job each (submitit), "
                        "or one local submitit job each")
    r.add_argument("--partition", default=None, help="Slurm partition (--executor slurm)")
    r.add_argument("--time", type=_positive_int, default=None, help="minutes a job may run (submitit executors)")
    r.add_argument("--gpus", type=_natural, default=None, help="GPUs per job (submitit executors)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with _sigterm_as_ctrl_c() as stopped:
        try:
            return results(args) if args.command == "results" else train_command(args)
        except (UsageError, data.DatasetMissing, data.DataError, train.CheckpointError,
                store.ResultError, store.MissingResult) as e:
            print(f"refine: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as e:  # train.Interrupted says at which epoch and what is kept
            print(f"refine: {e if isinstance(e, train.Interrupted) else 'interrupted'}", file=sys.stderr)
            return 128 + stopped.get("signal", signal.SIGINT)
        except OSError as e:  # e.g. a full disk while writing a checkpoint or a result
            print(f"refine: {_os_error(e)}", file=sys.stderr)
            return 1
        except sweep.SweepError as e:  # names each failed network or notebook with its error
            print(f"refine: {e}", file=sys.stderr)
            return 1


def _os_error(e: OSError) -> str:
    """One line: what went wrong and with which file."""
    if not e.strerror:
        return str(e)
    return e.strerror + (f": {e.filename}" if e.filename else "")


@contextlib.contextmanager
def _sigterm_as_ctrl_c():
    """While a command runs, SIGTERM stops it as Ctrl-C does (cleanly: checkpoints are written
    atomically); the yielded dict gets the signal's number when one arrives."""
    stopped = {}
    if threading.current_thread() is not threading.main_thread():
        yield stopped
        return

    def handler(signum, frame):
        stopped["signal"] = signum
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield stopped
    finally:
        signal.signal(signal.SIGTERM, previous)


def spec_of(args) -> specs.RunSpec:
    """The ``RunSpec`` that ``refine train``'s flags name (the device checked to exist here)."""
    device = args.device or train.default_device()
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device cuda: torch {torch.__version__} sees no CUDA device here; use --device cpu")
    recipe = train.recipe(args.arch)  # what a flag left out defaults to, as in the book's profiles
    epochs = args.epochs or recipe.schedule.epochs
    weight_decay = recipe.weight_decay if args.weight_decay is None else args.weight_decay
    try:
        return specs.RunSpec(args.arch, args.dataset, args.width, epochs, args.seed, args.batch_size,
                                   weight_decay, device, monitor=args.monitor, precision=args.precision,
                                   schedule_fit=args.schedule_fit, train_eval=args.train_eval)
    except ValueError as e:
        raise UsageError(str(e)) from None


def writable_folder(folder: Path, what: str) -> None:
    """Create ``folder`` if needed and write a temporary file there, or raise ``UsageError`` naming ``what``."""
    above = next(p for p in (folder, *folder.parents) if p.exists())
    if not above.is_dir():
        raise UsageError(f"{what}: {above} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".refine-write-check.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise UsageError(f"{what}: cannot write in {folder} ({e.strerror or e})") from None


def check_out(out: Path, spec: specs.RunSpec) -> None:
    """``--out`` must name a file in a writable folder, and must not replace a file of another run."""
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; name a file, e.g. {out / (spec.name + '.pt')}")
    writable_folder(out.parent, f"--out {out}")
    if out.exists():
        try:
            stored = train.load_checkpoint(out).get("meta")
        except train.CheckpointError:
            stored = None
        if stored != asdict(spec):
            raise UsageError(f"--out {out} exists and is not a checkpoint of this run ({spec.name}); "
                             "name another file or delete it")


def train_command(args) -> int:
    spec = spec_of(args)
    if args.data_dir is not None:  # experiments reads data where data.load looks: $REFINE_DATA_DIR
        os.environ["REFINE_DATA_DIR"] = str(Path(args.data_dir).resolve())
    ckpt = store.checkpoint_path(spec)
    writable_folder(ckpt.parent, "checkpoint folder ($REFINE_CACHE_DIR)")
    out = Path(args.out) if args.out else None
    if out is not None:
        check_out(out, spec)
    if args.download and spec.dataset != "digits":
        data.load(spec.dataset, download=True)
    experiments.dataset(spec.dataset)  # missing or malformed data fails here, before training
    params = models.count_parameters(experiments.initial(spec))
    optimizer = spec.train_config().optimizer
    print(f"{spec.arch} ({params:,} trainable parameters) on {spec.dataset}, {spec.epochs} epochs, {optimizer} "
          f"(weight decay {spec.weight_decay:g}), seed {spec.seed}, {spec.device} -> {ckpt}", flush=True)
    try:
        _, hist = experiments.run(spec, progress=True, wait=False)
    except experiments.Busy:
        print("another process is training this network: waiting for it", flush=True)
        _, hist = experiments.run(spec, progress=True)
    if hist.diverged is not None:
        print(f"refine: {spec.name} diverged at epoch {hist.diverged}; {ckpt} records it (delete it to train again)",
              file=sys.stderr)
        return 1
    if out is not None:
        train.save_checkpoint(out, train.load_checkpoint(ckpt))
    last = hist.records[-1]
    print(f"done: train acc {last['train_acc']:.4f}, test acc {last['test_acc']:.4f}, checkpoint {ckpt}"
          + (f", exported to {out}" if out is not None else ""))
    return 0


def results(args) -> int:
    from . import book

    if args.profile not in profiles.PROFILES:
        raise UsageError(f"unknown profile {args.profile!r}; choose one of: {', '.join(profiles.PROFILES)}")
    options = {}
    if args.executor == "processes":
        given = [f"--{k}" for k in ("partition", "time", "gpus") if getattr(args, k) is not None]
        if given:
            raise UsageError(f"{', '.join(given)} only apply with --executor slurm or local")
    else:
        options = {k: v for k, v in (("slurm_partition", args.partition), ("timeout_min", args.time),
                                     ("gpus_per_node", args.gpus)) if v is not None}
        if args.executor == "local" and "slurm_partition" in options:
            raise UsageError("--partition only applies with --executor slurm")
    book.execute(args.profile, args.out or f"_build/executed/{args.profile}", args.workers, train_only=args.train_only,
                 executor=args.executor, **options)
    print(f"done: networks trained in {store.cache_dir()}" if args.train_only else
          f"done: results in {store.results_dir() / args.profile}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
