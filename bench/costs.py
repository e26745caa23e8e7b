"""GPU-hours each figure of the paper costs at the paper profile, from measured throughput.

    python bench/costs.py                      # the latest CUDA run of bench/results.json
    python bench/costs.py --device H100 --out bench/costs.json
    python bench/costs.py --eager             # without torch.compile

A figure's cost is the training runs it needs (architecture, dataset, epochs of PAPER.md's
schedule, number of runs) at the images/s that ``bench_train.py`` measured for the library's
path on that card (compiled, as CUDA runs train, where the run measured it; eager elsewhere),
plus one pass over the 10,000 test images per epoch (a forward pass, counted as a third of a
training image). The per-block probes run on trained checkpoints and cost minutes, not hours;
they are left out. Architectures the benchmark does not time (ResNet-38/146/182, the
shared-block variants) take the rate of the nearest timed ResNet scaled by their counted FLOPs,
and say so (``estimated``). Runs shared by several figures (Figures 2-5 train the same four
networks) are counted once in the total.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from refine_utils import models, train  # noqa: E402

TRAIN_IMAGES, TEST_IMAGES = 50_000, 10_000
TABLE1 = ("resnet32", "resnet38", "resnet110-ubn", "resnet146-ubn", "resnet182-ubn", "resnet56", "resnet110")

#: figure -> [(arch, dataset, runs)], as PAPER.md section 5 describes each figure.
FIGURES = {
    "fig2-5": [(a, "cifar10", 1) for a in models.FIGURE_ARCHS],
    "fig6": [("resnet110", "cifar10", 1)],
    "fig7": [("resnet110", "cifar10", 4)],
    "fig8": [("resnet110-shared", "cifar10", 1), ("resnet32", "cifar10", 1)],
    "fig9": [("resnet110-shared-stats", "cifar10", 1), ("resnet110-shared-stats-gamma", "cifar10", 1),
             ("resnet110-ubn", "cifar10", 1)],
    "table1": [(a, d, 4) for d in ("cifar10", "cifar100") for a in TABLE1],
    "appendix-cifar100": [(a, "cifar100", 1) for a in models.FIGURE_ARCHS],
}


def _depth(arch: str) -> int | None:
    digits = "".join(c for c in arch.split("-")[0] if c.isdigit())
    return int(digits) if arch.startswith("resnet") and digits else None


def rates(run: dict, compiled: bool = False, any_width: bool = False) -> dict[str, tuple[float, bool]]:
    """Images/s per architecture for every architecture ``FIGURES`` needs: ``(rate, estimated)``.

    Only full-width rows count, unless ``any_width`` (for testing the plumbing on toy runs).
    """
    measured = {}
    for r in run["rows"]:
        if r["width"] != 1.0 and not any_width:
            continue
        rate = r.get("ours_compiled_img_s") if compiled else None
        measured[r["arch"]] = rate or r["ours_img_s"]
    out = {a: (v, False) for a, v in measured.items()}
    timed_resnets = sorted((d, a) for a in measured if (d := _depth(a)))
    needed = {a for runs in FIGURES.values() for a, _, _ in runs}
    for arch in sorted(needed - set(out)):
        depth = _depth(arch)
        if depth is None or not timed_resnets:
            raise ValueError(f"no width-1 throughput for {arch!r} in this run, and no ResNet to scale from")
        _, base = min(timed_resnets, key=lambda t: abs(t[0] - depth))
        out[arch] = (measured[base] * models.train_flops(base) / models.train_flops(arch), True)  # same width
    return out


def costs(run: dict, compiled: bool = False, any_width: bool = False) -> dict:
    """GPU-hours per figure and in total for one run of ``bench/results.json``."""
    rate = rates(run, compiled, any_width)

    def hours(arch: str, runs: int) -> float:
        epochs = train.paper_schedule(arch).epochs
        images = epochs * (TRAIN_IMAGES + TEST_IMAGES / 3)
        return runs * images / rate[arch][0] / 3600

    figures, unique = {}, {}
    for fig, runs in FIGURES.items():
        items = [dict(arch=a, dataset=d, runs=n, epochs=train.paper_schedule(a).epochs, img_s=round(rate[a][0], 1),
                      estimated=rate[a][1], gpu_hours=round(hours(a, n), 3)) for a, d, n in runs]
        figures[fig] = dict(gpu_hours=round(sum(i["gpu_hours"] for i in items), 2), runs=items)
        for a, d, n in runs:
            unique[(a, d)] = max(unique.get((a, d), 0), n)
    total = sum(hours(a, n) for (a, _), n in unique.items())
    path = "compiled where measured, else eager" if compiled else "eager"
    return dict(device=run["device"], date=run["date"], torch=run["torch"], path=path,
                assumptions=["paper schedules of PAPER.md section 4, batch 128",
                             "50,000 training images per epoch plus one test pass (10,000 images at 1/3 the cost)",
                             "probes and plots not counted (minutes)",
                             "runs of one architecture on one dataset are shared between figures: the total "
                             "counts the most runs any figure needs",
                             "architectures marked estimated: nearest timed ResNet's rate scaled by counted FLOPs"],
                figures=figures, total_gpu_hours=round(total, 2))


def latest_run(doc: dict, device: str | None) -> dict:
    """The last run whose device contains ``device`` (default: the last run on a GPU)."""
    for run in reversed(doc["runs"]):
        if (device is None and run["device"] != "cpu") or (device is not None and device in run["device"]):
            return run
    raise SystemExit(f"costs: no run on {device or 'a GPU'} in the results file yet; run bench/gpu_check.sh "
                     "on a GPU and add its run (bench/README.md says how)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=Path(__file__).with_name("results.json"))
    p.add_argument("--device", default=None, help="substring of the run's device name (default: the latest GPU run)")
    p.add_argument("--eager", action="store_true", help="eager throughput only (default: compiled where measured)")
    p.add_argument("--out", type=Path, default=None, help="write the JSON here (default: print it)")
    args = p.parse_args(argv)
    result = costs(latest_run(json.loads(args.results.read_text()), args.device), not args.eager)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)
    for fig, f in result["figures"].items():
        print(f"{fig:>18}: {f['gpu_hours']:8.2f} GPU-hours", file=sys.stderr)
    print(f"{'total (shared runs once)':>18}: {result['total_gpu_hours']:8.2f} GPU-hours on {result['device']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
