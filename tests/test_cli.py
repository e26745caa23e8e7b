import subprocess
import sys

import pytest

from refine_utils import cli, train


def run(*args):
    return subprocess.run([sys.executable, "-m", "refine_utils.cli", *args], capture_output=True, text=True)


def test_help_explains_every_flag():
    out = run("train", "--help").stdout
    for flag in ("--arch", "--dataset", "--epochs", "--width", "--batch-size", "--seed", "--device", "--data-dir",
                 "--download", "--out", "--weight-decay", "--compile"):
        assert flag in out


@pytest.mark.parametrize("args,expect", [
    (["--arch", "resnet111"], "resnet110"),
    (["--arch", "resnet32", "--epochs", "-2"], "positive"),
    (["--arch", "resnet32", "--dataset", "mnist"], "cifar10"),
    (["--arch", "resnet32", "--width", "0"], "positive"),
])
def test_bad_arguments_fail_fast_naming_choices(args, expect):
    r = run("train", *args)
    assert r.returncode == 2 and expect in r.stderr


def test_missing_cifar_is_a_clear_error(tmp_path):
    r = run("train", "--arch", "resnet32", "--dataset", "cifar100", "--data-dir", str(tmp_path), "--epochs", "1")
    assert r.returncode == 2 and "REFINE_DATA_DIR" in r.stderr and "Traceback" not in r.stderr


def test_train_writes_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "r.pt"
    assert cli.main(["train", "--arch", "resnet110", "--dataset", "digits", "--epochs", "1", "--width", "0.125",
                     "--out", str(out)]) == 0
    state = train.load_checkpoint(out)
    assert len(state["history"]["records"]) == 1 and state["meta"]["arch"] == "resnet110"
    assert "test acc" in capsys.readouterr().out
