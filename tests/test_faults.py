"""Fault injection: the real ``refine`` command (or the library) run as a subprocess and hurt.

Each case asserts the exact outcome: a non-zero exit with a one-line message naming the file or
flag (no traceback), nothing good overwritten, no temporary file left; or, after a kill or an
interruption, a re-run that ends with the very weights of an uninterrupted run. The runs are tiny
(ResNet-32 at quarter width on 96 random 32x32 images, 3 epochs). The cases that fail before any
training start together, one process per core. The suite ends with a line
``fault injection: <tried> cases tried, <survived> survived`` (README, "Reliability").
"""
import concurrent.futures
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from refine_utils import specs, store, train
from test_data import BAD_FILES  # the bad data files of the unit tests, here through the command

ROOT = Path(__file__).resolve().parents[1]
RUN = ["train", "--arch", "resnet32", "--width", "0.25", "--dataset", "cifar10", "--epochs", "3",
       "--batch-size", "32", "--device", "cpu"]
SPEC = specs.RunSpec("resnet32", "cifar10", 0.25, 3, batch_size=32)


class Summary:
    """Counts this module's cases as pytest reports them and prints the suite's summary line."""

    def __init__(self):
        self.tried, self.survived = set(), set()

    def pytest_runtest_logreport(self, report):
        if Path(report.fspath).name != Path(__file__).name or report.skipped:
            return
        self.tried.add(report.nodeid)
        if report.when == "call" and report.passed:
            self.survived.add(report.nodeid)
        elif report.failed:
            self.survived.discard(report.nodeid)

    def pytest_terminal_summary(self, terminalreporter):
        terminalreporter.write_line(f"fault injection: {len(self.tried)} cases tried, {len(self.survived)} survived")


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    plugins = request.config.pluginmanager
    if not plugins.has_plugin("fault-summary"):
        plugins.register(Summary(), "fault-summary")


def write_split(path: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, images=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), labels=rng.integers(0, 10, n))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """A data folder with a tiny valid CIFAR-10: 96 training and 32 test images."""
    root = tmp_path_factory.mktemp("data")
    write_split(root / "cifar10" / "train.npz", 96, 0)
    write_split(root / "cifar10" / "test.npz", 32, 1)
    return root


def env_for(cache: Path, data: Path, **extra) -> dict:
    return dict(os.environ, REFINE_CACHE_DIR=str(cache), REFINE_DATA_DIR=str(data),
                REFINE_RESULTS_DIR=str(cache.parent / "results"),
                PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **extra)


def refine(*args, env: dict, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "refine_utils.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, **kw)


def start(*args, env: dict) -> subprocess.Popen:
    # SIGINT at its default even where this runs in the background (which ignores it), as in a terminal
    return subprocess.Popen([sys.executable, "-m", "refine_utils.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def ckpt_in(cache: Path) -> Path:
    return cache / store.checkpoint_path(SPEC).name


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp")) if folder.exists() else []


def one_clear_line(r, *names: str, library: bool = False) -> str:
    """The error of a failed run: a non-zero exit, a last line naming ``names``; from ``refine``, that
    line is its own (before it at most argparse's usage line or a progress bar) and no traceback."""
    err = r.stderr.strip()
    assert r.returncode != 0, r.stdout + r.stderr
    line = err.splitlines()[-1] if err else ""
    if not library:
        assert "Traceback" not in err and line.startswith("refine"), err
    for name in names:
        assert name in line, err
    return line


def assert_same_run(a: dict, b: dict) -> None:
    """Two checkpoints hold the same network bit for bit: weights, optimizer state and history."""
    assert a["model"].keys() == b["model"].keys()
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    for i, s in a["optimizer"]["state"].items():
        assert torch.equal(s["momentum_buffer"], b["optimizer"]["state"][i]["momentum_buffer"]), i
    assert a["history"] == b["history"] and a["meta"] == b["meta"]


@pytest.fixture(scope="module")
def reference(tiny_data, tmp_path_factory):
    """The uninterrupted run: (its checkpoint's bytes, its state, how long the command took)."""
    cache = tmp_path_factory.mktemp("reference") / "cache"
    t = time.perf_counter()
    r = refine(*RUN, env=env_for(cache, tiny_data))
    took = time.perf_counter() - t
    assert r.returncode == 0, r.stderr
    path = ckpt_in(cache)
    return path.read_bytes(), train.load_checkpoint(path), took


# ----------------------------------------------------------------------------- kills, signals, two writers


def test_kill_9_at_a_random_point_then_resume_gives_the_uninterrupted_weights(tiny_data, reference, tmp_path):
    _, want, took = reference
    cache = tmp_path / "cache"
    env = env_for(cache, tiny_data)
    delay = random.Random().uniform(0.3, 1.0) * took  # the import, an epoch, a save: anywhere
    p = start(*RUN, env=env)
    time.sleep(delay)
    p.kill()
    p.wait()
    if ckpt_in(cache).exists():
        train.load_checkpoint(ckpt_in(cache))  # whole and verified, whenever the kill came
    r = refine(*RUN, env=env)
    assert r.returncode == 0, f"killed after {delay:.2f} s: {r.stderr}"
    assert_same_run(train.load_checkpoint(ckpt_in(cache)), want)
    assert temporaries(cache) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_and_sigterm_stop_cleanly_and_keep_the_checkpoint(tiny_data, tmp_path, sig):
    cache = tmp_path / "cache"
    long_run = [*RUN[:-5], "200", *RUN[-4:]]  # 200 epochs: still running when the signal comes
    p = start(*long_run, env=env_for(cache, tiny_data))
    path = cache / store.checkpoint_path(specs.RunSpec("resnet32", "cifar10", 0.25, 200,
                                                                   batch_size=32)).name
    deadline = time.time() + 240
    while not path.exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(sig)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 128 + sig, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("refine: interrupted at epoch ") and line.endswith("re-run the same command to resume")
    assert "Traceback" not in err and str(path) in line
    kept = len(train.load_checkpoint(path)["history"]["records"])
    assert f"keeps {kept} of 200 epochs" in line and kept >= 1
    assert temporaries(cache) == []


def test_two_trainings_of_one_spec_at_once_both_succeed_with_the_reference(tiny_data, reference, tmp_path):
    _, want, _ = reference
    cache = tmp_path / "cache"
    env = env_for(cache, tiny_data)
    runs = [start(*RUN, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in runs]
    for p, (out, err) in zip(runs, outs):
        assert p.returncode == 0 and "Traceback" not in err, err
        assert "done: train acc" in out
    assert_same_run(train.load_checkpoint(ckpt_in(cache)), want)
    assert temporaries(cache) == []


FULL_DISK = """
import os, sys
from refine_utils import cli
real, calls = os.fsync, []
def fsync(fd):  # the disk fills up while the second epoch's checkpoint is written
    calls.append(fd)
    if len(calls) >= 2:
        raise OSError(28, "No space left on device")
    real(fd)
os.fsync = fsync
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_full_disk_keeps_the_last_checkpoint_and_says_so(tiny_data, tmp_path):
    cache = tmp_path / "cache"
    r = subprocess.run([sys.executable, "-c", FULL_DISK, *RUN], env=env_for(cache, tiny_data), capture_output=True,
                       text=True, timeout=300)
    path = ckpt_in(cache)
    one_clear_line(r, f"disk full: cannot write checkpoint {path} (the previous one, if any, is intact)")
    assert r.returncode == 1
    assert len(train.load_checkpoint(path)["history"]["records"]) == 1 and temporaries(cache) == []


# ----------------------------------------------------------------------------- refused before any work


def _flip_a_bit(raw: bytes) -> bytes:
    i = len(raw) // 2
    return raw[:i] + bytes([raw[i] ^ 0x10]) + raw[i + 1:]


DAMAGE = {
    "corrupt": lambda raw: b"\x00garbage\xff" * 100,
    "truncated": lambda raw: raw[: len(raw) // 3],
    "0-byte": lambda raw: b"",
    "bit-flipped": _flip_a_bit,
}

READ_RESULT = """
import sys
from refine_utils import specs, store
store.result("smoke", "thing", specs.RunSpec("resnet32", "digits", 0.125, 1), lambda: sys.exit("recomputed"))
"""
RESULT_SPEC = specs.RunSpec("resnet32", "digits", 0.125, 1)


@dataclass
class Case:
    """A run refused before any training: what it runs, what its last line of errors names, the
    files it finds (path -> ``write(path, reference checkpoint bytes)``), its exit code."""

    argv: list
    names: list
    files: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    code: int = 2
    library: bool = False  # ``argv`` is a ``python`` command line calling the library


def _valid(path: Path, seed: int = 1) -> None:
    write_split(path, 12, seed)


def _damaged_result(damage):
    def write(path: Path, _) -> None:
        store.write_result(path, dict(name="thing", profile="smoke", dataset="digits", arch="resnet32",
                                            spec=asdict(RESULT_SPEC), params={}, device="cpu", torch=torch.__version__,
                                            commit="fault", value={"loss": [0.125, 0.25, 0.5] * 20}))
        path.write_bytes(DAMAGE[damage](path.read_bytes()))
    return write


def _cases(tmp: Path) -> dict:
    """Every case refused before training, each in its own folder under ``tmp``."""
    def run(*extra: str) -> list:
        return RUN + list(extra)

    cases = {
        "--device tpu": Case(RUN[:-2] + ["--device", "tpu"], ["--device", "'cpu', 'cuda'"]),
        "--width inf": Case(run("--width", "inf"), ["--width", "finite"]),
        "--width nan": Case(run("--width", "nan"), ["--width", "finite"]),
        "--seed -1": Case(run("--seed", "-1"), ["--seed", ">= 0"]),
        "--weight-decay -5": Case(run("--weight-decay", "-5"), ["--weight-decay", ">= 0"]),
        "--weight-decay nan": Case(run("--weight-decay", "nan"), ["--weight-decay", "finite"]),
        "--epochs 0": Case(run("--epochs", "0"), ["--epochs", "positive"]),
        "--batch-size 0": Case(run("--batch-size", "0"), ["--batch-size", "positive"]),
        "--arch resnet7": Case(["train", "--arch", "resnet7"], ["--arch", "resnet32"]),
    }
    if not torch.cuda.is_available():
        cases["--device cuda without a GPU"] = Case(RUN[:-2] + ["--device", "cuda"], ["--device cuda", "no CUDA device"])
    here = {name: tmp / name.replace(" ", "-").replace(":", "") for name in [
        "--out a folder", "--out under a file", "cache under a file", "--download offline",
        "data cifar10-10k from 50 images", *(f"data {w}" for w in BAD_FILES),
        *(f"checkpoint {d}" for d in DAMAGE), "checkpoint of another spec", *(f"result {d}" for d in DAMAGE)]}
    d = here["--out a folder"]
    cases["--out a folder"] = Case(run("--out", str(d / "out")), [f"--out {d / 'out'}", "is a folder"],
                                   {d / "out" / "keep.txt": lambda p, _: p.write_text("mine")})
    d = here["--out under a file"]
    cases["--out under a file"] = Case(run("--out", str(d / "a-file" / "r.pt")), ["--out", f"{d / 'a-file'} is a file"],
                                       {d / "a-file": lambda p, _: p.write_text("mine")})
    d = here["cache under a file"]
    cases["cache under a file"] = Case(RUN, ["$REFINE_CACHE_DIR", f"{d / 'a-file'} is a file"],
                                       {d / "a-file": lambda p, _: p.write_text("mine")},
                                       env={"REFINE_CACHE_DIR": str(d / "a-file" / "cache")})
    d = here["--download offline"]
    cases["--download offline"] = Case(["train", "--arch", "resnet32", "--dataset", "cifar100", "--download",
                                        "--data-dir", str(d / "data")], ["no network", str(d / "data")],
                                       env={"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"})
    for what, (write, message) in BAD_FILES.items():
        d = here[f"data {what}"]
        train_npz = d / "data" / "cifar10" / "train.npz"
        cases[f"data: {what}"] = Case(run("--data-dir", str(d / "data")), [str(train_npz), message],
                                      {d / "data" / "cifar10" / "test.npz": lambda p, _: _valid(p),
                                       train_npz: lambda p, _, write=write: write(p)})
    d = here["data cifar10-10k from 50 images"]
    cases["data: cifar10-10k from 50 images"] = Case(
        ["train", "--arch", "resnet32", "--dataset", "cifar10-10k", "--data-dir", str(d)],
        [str(d / "cifar10"), "1000 training images per class"],
        {d / "cifar10" / "train.npz": lambda p, _: write_split(p, 50, 0), d / "cifar10" / "test.npz": lambda p, _: _valid(p)})
    for damage, hurt in DAMAGE.items():
        path = here[f"checkpoint {damage}"] / "cache" / ckpt_in(Path()).name
        cases[f"checkpoint: {damage}"] = Case(RUN, [str(path), "delete it to retrain"],
                                              {path: lambda p, raw, hurt=hurt: p.write_bytes(hurt(raw))})
    other = specs.RunSpec("resnet32", "cifar10", 0.25, 3, seed=1, batch_size=32)
    path = here["checkpoint of another spec"] / "cache" / store.checkpoint_path(other).name
    cases["checkpoint of another spec"] = Case(RUN[:-2] + ["--seed", "1", "--device", "cpu"],  # seed 0's where seed 1's goes
                                               [str(path), "seed=0", "seed=1", "delete it"],
                                               {path: lambda p, raw: p.write_bytes(raw)})
    name = store.result_path("smoke", "thing", RESULT_SPEC).relative_to(store.results_dir())
    for damage in DAMAGE:
        path = here[f"result {damage}"] / "results" / name
        cases[f"result: {damage}"] = Case(["-c", READ_RESULT], [f"ResultError: result {path}", "delete it"],
                                          {path: _damaged_result(damage)}, code=1, library=True)
    return cases


def _files(folder: Path) -> dict:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} if folder.exists() else {}


@pytest.fixture(scope="module")
def refused(tiny_data, reference, tmp_path_factory):
    """Every case of ``_cases`` run at once, one process per core: name -> (case, result, files before, folder)."""
    tmp = tmp_path_factory.mktemp("refused")
    cases = _cases(tmp)

    def go(name):
        case = cases[name]
        folder = tmp / name.replace(" ", "-").replace(":", "")
        for path, write in case.files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            write(path, reference[0])
        before = _files(folder)
        env = dict(env_for(folder / "cache", tiny_data), **case.env)
        command = [sys.executable, *case.argv] if case.library else [sys.executable, "-m", "refine_utils.cli", *case.argv]
        return case, subprocess.run(command, env=env, capture_output=True, text=True, timeout=600), before, folder

    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        return dict(zip(cases, pool.map(go, cases)))


@pytest.mark.parametrize("name", list(_cases(Path("tmp"))))
def test_refused_before_any_work_naming_it_and_nothing_overwritten(refused, name):
    case, r, before, folder = refused[name]
    one_clear_line(r, *case.names, library=case.library)
    assert r.returncode == case.code
    after = _files(folder)
    assert {p: after.get(p) for p in before} == before  # every file it found is as it was
    assert all(p.suffix == ".lock" for p in set(after) - set(before)), sorted(after)  # nothing trained, no temporary
