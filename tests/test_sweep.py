import sys

import cloudpickle
import pytest
import torch

from refine_utils import data, models, sweep, train


def train_tiny(seed: int) -> float:
    """A whole (tiny) training run, as a sweep worker sees it: build, train, report."""
    ds = data.load("digits")
    ds.train = data.Split(ds.train.images[:128], ds.train.labels[:128])
    ds.test = data.Split(ds.test.images[:64], ds.test.labels[:64])
    torch.manual_seed(seed)
    model = models.build("resnet32", width=0.125)
    h = train.train(model, ds, train.TrainConfig(schedule=train.Schedule(1, 0.05), batch_size=64, seed=seed),
                    device="cpu", progress=False)
    return h.records[-1]["train_loss"]


def fail_on_two(x: int) -> int:
    if x == 2:
        raise ValueError("two")
    return x


# Workers unpickle the function; send this test module's functions by value (they are not importable there).
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_sequential_is_a_plain_map():
    assert sweep.run(lambda x: x * x, [1, 2, 3]) == [1, 4, 9]


def test_process_pool_matches_in_process_and_names_failures():
    assert sweep.run(train_tiny, [0, 1], executor="processes", workers=2) == [train_tiny(0), train_tiny(1)]
    with pytest.raises(sweep.SweepError, match="1 of 3 runs failed:\n2: ValueError: two"):
        sweep.run(fail_on_two, [1, 2, 3], executor="processes", workers=2)


def test_local_submitit_sweep_matches_in_process(tmp_path):
    seeds = [0, 1]
    local = sweep.run(train_tiny, seeds, executor="local", folder=tmp_path, timeout_min=10)
    assert local == sweep.run(train_tiny, seeds)  # same numbers in worker processes: seeds everywhere
    assert local[0] != local[1]


def test_failed_runs_are_named_with_their_logs(tmp_path):
    with pytest.raises(sweep.SweepError, match=r"1 of 3 runs failed:\n2: job .* log: "):
        sweep.run(fail_on_two, [1, 2, 3], executor="local", folder=tmp_path, timeout_min=5)


def test_unknown_executor():
    with pytest.raises(ValueError, match="sequential, processes, local, slurm"):
        sweep.run(abs, [1], executor="kubernetes")


INTERRUPTED_SWEEP = """
import pathlib, sys, time
from refine_utils import sweep

OUT = pathlib.Path(sys.argv[1])

def job(i):
    (OUT / f"started-{i}").touch()
    try:
        time.sleep(60)
    except KeyboardInterrupt:
        time.sleep(1)  # a clean stop (a checkpoint written) that a second signal must not cut short
        (OUT / f"stopped-{i}").touch()
        raise
    return i

if __name__ == "__main__":
    try:
        sweep.run(job, range(5), executor="processes", workers=2, progress=False)
    except KeyboardInterrupt:
        (OUT / "raised").touch()
"""


@pytest.mark.parametrize("whole_group", [True, False], ids=["ctrl-c in a terminal", "sigterm to the parent"])
def test_an_interrupted_pool_stops_its_runs_once_and_starts_no_more(tmp_path, whole_group):
    import os
    import signal
    import subprocess
    import time

    script = tmp_path / "sweep_job.py"
    script.write_text(INTERRUPTED_SWEEP)
    p = subprocess.Popen([sys.executable, str(script), str(tmp_path)], start_new_session=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal
    deadline = time.time() + 60
    while len(list(tmp_path.glob("started-*"))) < 2 and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # the third run is queued in a worker by now
    # the whole group: a terminal's Ctrl-C; the parent alone: what cli makes of a SIGTERM sent to
    # `refine results` (a KeyboardInterrupt there)
    os.killpg(p.pid, signal.SIGINT) if whole_group else p.send_signal(signal.SIGINT)
    assert p.wait(timeout=30) == 0
    made = sorted(f.name for f in tmp_path.iterdir() if f != script)
    assert made == ["raised", "started-0", "started-1", "stopped-0", "stopped-1"]
