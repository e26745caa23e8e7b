"""The device check of issue 6, in one process and one time budget (``bench/gpu_check.sh`` runs it).

In order, each part guarded so that a failure is recorded and the next part still runs:

1. ``pytest -m cuda``: the CUDA path's tests (bf16 autocast, channels_last, float32 BatchNorm,
   no host synchronisation in the step loop, compile, resume).
2. The throughput table: every paper architecture at full width, the library's default path
   against the reference pipeline (``bench_train.measure_arch``), with achieved TFLOP/s and the
   fraction of the card's dense bf16 peak.
3. A short real CIFAR-10 run: ResNet-110 on the 10k training subset (``cifar10-10k`` from
   ``$REFINE_DATA_DIR``) for ``CIFAR_EPOCHS`` epochs, compiled as the book's CUDA runs train,
   which must reach ``CIFAR_MIN_ACC`` test accuracy.
4. With the time that is left: ``torch.compile`` throughput for the architectures of the targets.
5. GPU-hours per figure at the paper profile (``costs.py``) from this run's throughput.

After every part the whole record is rewritten to ``<out>/gpu_check.json``, so a run cut off
by its time limit still leaves what it measured. ``--dry`` runs everything on the CPU at toy
sizes (the script's own test; its numbers mean nothing).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bench_train as bt  # noqa: E402
import costs as cost_model  # noqa: E402
from refine_utils import data, models, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 450  # the issue allows 8 minutes on one H100; leave room for start-up and copying back
CIFAR_EPOCHS = 30
CIFAR_MIN_ACC = 0.60  # conservative: ResNet-110 on 10k images for 30 epochs is expected near 0.75
COMPILE_ARCHS = ("resnet110", "wide", "avg-pooling")  # the architectures the targets name
COMPILE_RESERVE_S = 75  # start a compiled measurement only with this much time left


class Check:
    def __init__(self, out: Path, dry: bool, budget_s: float):
        self.out, self.dry, self.t0, self.budget_s = out, dry, time.time(), budget_s
        self.record = dict(date=time.strftime("%Y-%m-%d %H:%M:%S %Z"), dry=dry, torch=torch.__version__,
                           cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(), driver=driver_version(),
                           machine=bt.machine(),
                           device=bt.device_name("cpu" if dry else "cuda"), budget_s=budget_s, parts={})

    def left(self) -> float:
        return self.budget_s - (time.time() - self.t0)

    def save(self) -> None:
        self.record["elapsed_s"] = round(time.time() - self.t0, 1)
        path = self.out / "gpu_check.json"
        path.write_text(json.dumps(self.record, indent=1) + "\n")

    def part(self, name: str, fn) -> None:
        """Run one part, record its result or its error, and save."""
        print(f"\n=== {name} ({self.left():.0f} s of the budget left)", flush=True)
        t = time.time()
        try:
            result = fn()
            status = "ok"
        except Exception as e:  # recorded, and the next part runs
            traceback.print_exc()
            result, status = {"error": f"{type(e).__name__}: {e}"}, "error"
        self.record["parts"][name] = dict(status=status, seconds=round(time.time() - t, 1), **result)
        self.save()


def driver_version() -> str | None:
    """The NVIDIA driver's version as nvidia-smi reports it (None without one)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def run_tests(check: Check) -> dict:
    junit = check.out / "pytest-cuda.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", f"--junitxml={junit}",
           "--continue-on-collection-errors", str(ROOT / "tests")]  # a module needing a package absent there
    proc = subprocess.run(cmd, cwd=ROOT, timeout=max(60, min(240, check.left() - 200)))
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None or c.find("error") is not None]
    junit.unlink()
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return dict(rc=proc.returncode, **counts, failed=failed)


def bench_config(dry: bool) -> bt.BenchConfig:
    if dry:
        return bt.BenchConfig(device="cpu", width=0.125, widths={"avg-pooling": 0.0625, "wide": 0.0625}, steps=1,
                              warmup=1, rounds=1, batch_size=32, workers=1)
    return bt.BenchConfig(device="cuda", steps=30, warmup=5, rounds=3, batch_size=128)


def run_table(check: Check, cfg: bt.BenchConfig) -> dict:
    torch.backends.cudnn.benchmark = True
    images, labels = bt.synthetic_cifar(seed=cfg.seed)
    name = bt.device_name(cfg.device)
    rows = []
    for arch in bt.PAPER_ARCHS:
        rows.append(bt.measure_arch(arch, cfg, images, labels, name))
        check.record["bench"] = bench_run(cfg, rows, name)
        check.save()
    return dict(archs=len(rows))


def bench_run(cfg: bt.BenchConfig, rows: list[dict], name: str) -> dict:
    """The table as one run of bench/results.json."""
    return dict(date=time.strftime("%Y-%m-%d"), device=name, torch=torch.__version__, machine=bt.machine(),
                threads=torch.get_num_threads(), batch_size=cfg.batch_size, steps=cfg.steps, rounds=cfg.rounds,
                warmup=cfg.warmup, workers=cfg.workers, compile="off", rows=rows)


def run_compiled(check: Check, cfg: bt.BenchConfig) -> dict:
    """Compiled throughput of COMPILE_ARCHS, each alternated with its own reference, while time lasts."""
    if cfg.device == "cpu":
        return dict(skipped="torch.compile is CUDA-only")
    if "bench" not in check.record:
        return dict(skipped="no throughput table to add to")
    images, labels = bt.synthetic_cifar(seed=cfg.seed)
    name = bt.device_name(cfg.device)
    rows = {r["arch"]: r for r in check.record["bench"]["rows"]}
    done, skipped, failed = [], [], {}
    for arch in COMPILE_ARCHS:
        if check.left() < COMPILE_RESERVE_S or arch not in rows:
            skipped.append(arch)
            continue
        t = time.time()
        try:
            c = bt.measure_arch(arch, replace(cfg, compile="on"), images, labels, name)
        except Exception as e:
            traceback.print_exc()
            failed[arch] = f"{type(e).__name__}: {e}"
            continue
        row = rows[arch]
        row.update(ours_compiled_img_s=c["ours_img_s"], ratio_compiled=c["ratio"], compiled_ref_img_s=c["ref_img_s"],
                   ours_compiled_tflops=c["ours_tflops"], compile_warmup_s=c["warmup_s"]["ours_compiled"])
        if "peak_frac" in c:
            row["peak_frac"] = max(row.get("peak_frac", 0.0), c["peak_frac"])
        done.append(arch)
        check.record["bench"]["compile"] = "both"
        print(f"{arch}: compiled in {time.time() - t:.0f} s all told", flush=True)
        check.save()
    return dict(done=done, skipped_for_time=skipped, failed=failed)


def run_cifar(check: Check) -> dict:
    """ResNet-110 on the 10k CIFAR-10 subset: must reach CIFAR_MIN_ACC (the dry run: a tiny slice, no bar)."""
    data_dir = os.environ.get("REFINE_DATA_DIR", "data")
    if check.dry:
        try:
            ds = data.load("cifar10-10k", data_dir)
        except data.DatasetMissing:
            ds = data.load("digits")
        ds = data.Dataset(ds.name, data.Split(ds.train.images[:256], ds.train.labels[:256]),
                          data.Split(ds.test.images[:256], ds.test.labels[:256]), ds.num_classes, ds.mean, ds.std)
        arch_width, epochs, device = 0.125, 2, "cpu"
    else:
        ds = data.load("cifar10-10k", data_dir)
        arch_width, epochs, device = 1.0, CIFAR_EPOCHS, "cuda"
    schedule = train.Schedule(epochs, 0.1, ((epochs // 2, 0.01), (3 * epochs // 4, 0.001)))
    cfg = train.TrainConfig(schedule=schedule, batch_size=128, seed=0, compile=not check.dry)  # as CUDA runs train
    torch.manual_seed(0)
    model = models.build("resnet110", width=arch_width)
    t = time.time()
    hist = train.train(model, ds, cfg, device=device, progress=False)
    seconds = time.time() - t
    last = hist.records[-1] if hist.records else {}
    acc = last.get("test_acc")
    passed = None if check.dry else (hist.diverged is None and acc is not None and acc >= CIFAR_MIN_ACC)
    print(f"resnet110 on {ds.name} ({len(ds.train)} images), {len(hist.records)} epochs in {seconds:.0f} s: "
          f"test accuracy {acc}, bar {CIFAR_MIN_ACC} -> {'dry run' if passed is None else 'PASS' if passed else 'FAIL'}")
    return dict(dataset=ds.name, train_images=len(ds.train), width=arch_width, epochs=epochs, compiled=cfg.compile,
                schedule=[schedule.lr, list(map(list, schedule.milestones))], train_seconds=round(seconds, 1),
                img_s_incl_eval=round(epochs * len(ds.train) / seconds, 1), test_acc=acc, min_acc=CIFAR_MIN_ACC,
                passed=passed, diverged=hist.diverged,
                history=[{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in hist.records])


def run_costs(check: Check) -> dict:
    run = check.record.get("bench")
    if not run:
        return dict(skipped="no throughput table")
    result = cost_model.costs(run, any_width=check.dry)  # dry: toy widths, plumbing only
    return result | dict(total_gpu_hours_compiled=cost_model.costs(run, True, check.dry)["total_gpu_hours"])


def summary(check: Check) -> None:
    print("\n=== summary")
    run = check.record.get("bench")
    if run:
        print(bt.markdown_table(run))
        check.record["targets"] = bt.target_report(run)
        for line in check.record["targets"]:
            print("target:", line)
    for name, part in check.record["parts"].items():
        extra = {k: part[k] for k in ("passed", "failed", "test_acc", "error", "skipped", "skipped_for_time", "total_gpu_hours")
                 if k in part}
        print(f"{name}: {part['status']} in {part['seconds']} s {extra}")
    print(f"elapsed {time.time() - check.t0:.0f} s of a {check.budget_s:.0f} s budget")
    check.save()


COMPILED_KEYS = ("ours_compiled_img_s", "ratio_compiled", "ours_compiled_tflops")


def merge_compiled(run: dict, other: dict) -> list[str]:
    """Add to ``run`` the compiled throughput that ``other`` (a ``bench_train.py --compile both``
    run on the same card) measured for architectures the check had no time to compile; returns
    them. The other run's own reference rate comes along as ``compiled_ref_img_s``."""
    if other["device"] != run["device"]:
        raise SystemExit(f"compiled run is on {other['device']}, the check on {run['device']}")
    rows = {r["arch"]: r for r in run["rows"]}
    added = []
    for o in other["rows"]:
        row = rows.get(o["arch"])
        if row is None or row.get("ours_compiled_img_s") or not o.get("ours_compiled_img_s") or o["width"] != row["width"]:
            continue
        row.update({k: o[k] for k in COMPILED_KEYS}, compiled_ref_img_s=o["ref_img_s"])
        row["peak_frac"] = max(row.get("peak_frac", 0.0), o.get("peak_frac", 0.0))
        added.append(o["arch"])
    if added:
        run["compile"] = "both"
    return added


def record_results(check_json: Path, results: Path, costs_out: Path, compiled: Path | None = None,
                   notes: tuple[str, ...] = ()) -> None:
    """Back on the development machine: add a check's throughput run to ``results`` (with the
    CIFAR run's outcome and the tests' counts, the compiled rows of a second ``compiled`` run if
    given, and ``notes`` on what was found), write GPU-hours to ``costs_out``, print the table."""
    rec = json.loads(check_json.read_text())
    if rec.get("dry"):
        raise SystemExit(f"{check_json} is a dry run: its numbers mean nothing")
    if "bench" not in rec:
        raise SystemExit(f"{check_json} has no throughput table (parts: {rec.get('parts')})")
    run = rec["bench"]
    parts = rec["parts"]
    run["gpu_check"] = dict(
        tests={k: parts["tests"].get(k) for k in ("passed", "failures", "errors", "skipped", "failed")} if "tests" in parts else None,
        cifar={k: parts["cifar"].get(k) for k in ("dataset", "width", "epochs", "compiled", "test_acc", "min_acc", "passed",
                                                  "train_seconds")}
        if "cifar" in parts else None,
        versions={k: rec.get(k) for k in ("torch", "cuda", "cudnn", "driver")}, elapsed_s=rec.get("elapsed_s"))
    if notes:
        run["gpu_check"]["notes"] = list(notes)
    if compiled:
        run["gpu_check"]["compiled_from"] = dict(file=compiled.name, archs=merge_compiled(run, json.loads(compiled.read_text())))
    bt.append_run(results, run)
    costs_out.write_text(json.dumps(cost_model.costs(run, compiled=True), indent=1) + "\n")  # the CUDA default
    print(bt.markdown_table(run))
    for line in bt.target_report(run):
        print("target:", line)
    print(f"appended to {results}; GPU-hours in {costs_out}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="folder for gpu_check.json (the check itself)")
    p.add_argument("--dry", action="store_true", help="CPU, toy sizes: test the script itself")
    p.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for the whole check")
    p.add_argument("--record", type=Path, metavar="GPU_CHECK_JSON",
                   help="instead of checking: add this check's run to bench/results.json and write bench/costs.json")
    p.add_argument("--note", action="append", default=[], help="with --record: a finding to keep with the run (repeatable)")
    p.add_argument("--compiled-run", type=Path, metavar="RUN_JSON",
                   help="with --record: one bench_train.py --compile both run whose compiled rows fill the check's gaps")
    args = p.parse_args(argv)
    if args.record:
        record_results(args.record, ROOT / "bench" / "results.json", ROOT / "bench" / "costs.json", args.compiled_run,
                       tuple(args.note))
        return 0
    if args.out is None:
        p.error("--out is required (or --record)")
    if not args.dry and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device (use --dry, or GPU_CHECK_DRY=1, to test the script on the CPU)")
    if args.dry:
        torch.set_num_threads(1)  # a toy run on a shared CPU: one thread avoids OpenMP contention
    args.out.mkdir(parents=True, exist_ok=True)
    check = Check(args.out, args.dry, args.budget)
    cfg = bench_config(args.dry)
    check.part("tests", lambda: run_tests(check))
    check.part("throughput", lambda: run_table(check, cfg))
    check.part("cifar", lambda: run_cifar(check))
    check.part("compiled", lambda: run_compiled(check, cfg))
    check.part("costs", lambda: run_costs(check))
    summary(check)
    return 0


if __name__ == "__main__":
    sys.exit(main())
