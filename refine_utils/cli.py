"""``refine``: the command line. ``refine train`` trains one network and writes its checkpoint;
``refine results`` computes a whole profile's results (``book.execute``)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import data, models, train


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="refine", description="Reproduce 'Residual Connections Encourage Iterative Inference'.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one network and write its checkpoint",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Train one architecture with SGD (momentum 0.9) on the paper's learning-rate "
                                   "schedule for that architecture, compressed to --epochs. Re-running the same "
                                   "command resumes from the checkpoint.")
    t.add_argument("--arch", required=True, choices=list(models.ARCHS), metavar="ARCH",
                   help="architecture: " + ", ".join(models.ARCHS))
    t.add_argument("--dataset", default="digits", choices=data.DATASETS, metavar="DATASET",
                   help="dataset: " + ", ".join(data.DATASETS) + " (digits ships with scikit-learn and needs no download)")
    t.add_argument("--epochs", type=_positive_int, default=None,
                   help="epochs; the paper's schedule is compressed to fit (default: the paper's own length)")
    t.add_argument("--width", type=_positive_float, default=1.0, help="multiply every channel count (1.0 = the paper's network)")
    t.add_argument("--batch-size", type=_positive_int, default=128, help="training batch size")
    t.add_argument("--weight-decay", type=float, default=1e-4, help="L2 weight decay on conv and linear weights")
    t.add_argument("--seed", type=int, default=0, help="seed for initialisation, shuffling and augmentation")
    t.add_argument("--device", default=None, help="'cuda' or 'cpu' (default: cuda when available)")
    t.add_argument("--data-dir", default=None, help="folder with CIFAR (default: $REFINE_DATA_DIR or ./data)")
    t.add_argument("--download", action="store_true", help="download CIFAR with torchvision if it is not on disk")
    t.add_argument("--out", default=None, help="checkpoint file (default: checkpoints/<arch>-<dataset>-w<width>-e<epochs>-s<seed>.pt)")
    t.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA only)")
    r = sub.add_parser("results", help="compute a profile's results: train its networks, execute every notebook",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Train every network the book needs at --profile (resuming from checkpoints), "
                                   "--workers at a time, then execute every notebook with that profile. Results go to "
                                   "results/<profile>/ ($REFINE_RESULTS_DIR), checkpoints to cache/ ($REFINE_CACHE_DIR), "
                                   "CIFAR is read from $REFINE_DATA_DIR (default ./data).")
    r.add_argument("--profile", required=True, help="a profile of refine_utils.experiments.PROFILES")
    r.add_argument("--workers", type=_positive_int, default=None, help="training processes (default: one per CPU core)")
    r.add_argument("--out", default=None, help="folder for the executed notebooks (default: _build/executed/<profile>)")
    r.add_argument("--train-only", action="store_true",
                   help="only train (or resume) the networks; several such commands may run at once, each "
                        "taking the networks the others are not training")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "results":
        return results(args)
    try:
        ds = data.load(args.dataset, args.data_dir, download=args.download)
    except data.DatasetMissing as e:
        print(f"refine: {e}", file=sys.stderr)
        return 2
    model = models.build(args.arch, num_classes=ds.num_classes, width=args.width)
    schedule = train.paper_schedule(args.arch)
    if args.epochs is not None:
        schedule = schedule.scaled(args.epochs)
    cfg = train.TrainConfig(schedule=schedule, batch_size=args.batch_size, weight_decay=args.weight_decay,
                            seed=args.seed, compile=args.compile)
    out = Path(args.out or f"checkpoints/{args.arch}-{args.dataset}-w{args.width:g}-e{schedule.epochs}-s{args.seed}.pt")
    print(f"{args.arch} ({models.count_parameters(model):,} trainable parameters) on {args.dataset}, "
          f"{schedule.epochs} epochs -> {out}")
    try:
        hist = train.train(model, ds, cfg, device=args.device, checkpoint=out, meta=vars(args))
    except train.CheckpointError as e:
        print(f"refine: {e}", file=sys.stderr)
        return 2
    if hist.diverged is not None:
        print(f"diverged at epoch {hist.diverged}")
        return 1
    last = hist.records[-1]
    print(f"done: train acc {last['train_acc']:.4f}, test acc {last['test_acc']:.4f}, checkpoint {out}")
    return 0


def results(args) -> int:
    from . import book, experiments

    if args.profile not in experiments.PROFILES:
        print(f"refine: unknown profile {args.profile!r}; choose one of: {', '.join(experiments.PROFILES)}", file=sys.stderr)
        return 2
    try:
        book.execute(args.profile, args.out or f"_build/executed/{args.profile}", args.workers,
                     train_only=args.train_only)
    except data.DatasetMissing as e:
        print(f"refine: {e}", file=sys.stderr)
        return 2
    print(f"done: networks trained in {experiments.cache_dir()}" if args.train_only else
          f"done: results in {experiments.results_dir() / args.profile}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
