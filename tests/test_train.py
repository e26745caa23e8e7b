import math

import pytest
import torch

from refine_utils import data, models, train
from refine_utils.train import Schedule, TrainConfig


def tiny_digits(digits, n_train=256, n_test=128):
    """A slice of digits so a training test takes about a second."""
    return data.Dataset("digits", data.Split(digits.train.images[:n_train], digits.train.labels[:n_train]),
                        data.Split(digits.test.images[:n_test], digits.test.labels[:n_test]), 10, digits.mean, digits.std)


def test_paper_schedules():
    s = train.paper_schedule("resnet110")
    assert s.epochs == 300 and s.lr_at(0) == 0.1 and s.lr_at(80) == 0.01 and s.lr_at(239) == 0.00001
    assert train.paper_schedule("resnet32") == s
    w = train.paper_schedule("wide")
    assert (w.epochs, w.lr_at(59), w.lr_at(60)) == (100, 0.1, 0.02)
    assert train.paper_schedule("single-representation").lr_at(85) == 0.0008
    with pytest.raises(ValueError):
        train.paper_schedule("vgg")


def test_scaled_schedule_keeps_fractions():
    s = train.paper_schedule("avg-pooling").scaled(10)
    assert s.epochs == 10 and s.milestones == ((4, 0.02), (6, 0.004), (8, 0.0008))
    assert [s.lr_at(e) for e in (3, 4, 9)] == [0.1, 0.02, 0.0008]


class Interrupt(Exception):
    pass


def test_resume_gives_the_uninterrupted_result(digits, tmp_path):
    ds = tiny_digits(digits)
    cfg = TrainConfig(schedule=Schedule(3, 0.05, ((2, 0.01),)), batch_size=64, seed=3)

    torch.manual_seed(0)
    straight = models.build("resnet32", width=0.25)
    h1 = train.train(straight, ds, cfg, progress=False)

    def stop_after_first(epoch, model, record):
        if epoch == 1:
            raise Interrupt

    torch.manual_seed(0)
    ckpt = tmp_path / "run.pt"
    with pytest.raises(Interrupt):  # killed during epoch 1's bookkeeping: only epoch 0 is saved
        train.train(models.build("resnet32", width=0.25), ds, cfg, checkpoint=ckpt, callbacks=(stop_after_first,),
                    progress=False)
    assert len(train.load_checkpoint(ckpt)["history"]["records"]) == 1
    torch.manual_seed(123)  # a different init, overwritten by the checkpoint
    resumed = models.build("resnet32", width=0.25)
    h2 = train.train(resumed, ds, cfg, checkpoint=ckpt, progress=False)

    assert h1.column("train_loss") == h2.column("train_loss")
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_training_learns_and_callbacks_record(digits):
    ds = tiny_digits(digits, 512, 200)
    seen = []

    def norm_cb(epoch, model, record):
        seen.append(epoch)
        record["fc_norm"] = model.head.fc.weight.norm().item()

    torch.manual_seed(0)
    h = train.train(models.build("resnet32", width=0.25), ds, TrainConfig(schedule=Schedule(4, 0.05), batch_size=32),
                    callbacks=(norm_cb,), progress=False)
    assert seen == [0, 1, 2, 3] and all("fc_norm" in r for r in h.records)
    assert h.records[-1]["train_loss"] < h.records[0]["train_loss"]
    # chance is 0.1; a 4/8/16-channel net on 512 images swings from epoch to epoch in eval mode
    assert max(r["test_acc"] for r in h.records) > 0.2


def test_cpu_runs_are_bit_reproducible(digits):
    ds = tiny_digits(digits, 128, 64)
    cfg = TrainConfig(schedule=Schedule(1, 0.05), batch_size=32, seed=5)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        m = models.build("resnet32", width=0.25)
        train.train(m, ds, cfg, progress=False)
        runs.append(torch.cat([p.flatten() for p in m.parameters()]))
    assert torch.equal(*runs)


def test_corrupt_checkpoint_is_rejected_clearly(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(train.CheckpointError, match="corrupt"):
        train.load_checkpoint(bad)
    truncated = tmp_path / "trunc.pt"
    train.save_checkpoint(truncated, {"model": {"w": torch.ones(1000)}})
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(train.CheckpointError):
        train.load_checkpoint(truncated)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.ones(3)}, other)
    with pytest.raises(train.CheckpointError, match="not a refine_utils checkpoint"):
        train.load_checkpoint(other)


def test_divergence_stops_cleanly_and_keeps_finite_weights(digits, tmp_path):
    ds = tiny_digits(digits)
    ckpt = tmp_path / "div.pt"
    torch.manual_seed(0)
    # One sane epoch, then a learning rate that blows the network up.
    cfg = TrainConfig(schedule=Schedule(4, 0.01, ((1, 1e6),)), batch_size=64)
    m = models.build("resnet32", width=0.25)
    h = train.train(m, ds, cfg, checkpoint=ckpt, progress=False)
    assert h.diverged is not None and h.diverged >= 1 and len(h.records) == h.diverged
    state = train.load_checkpoint(ckpt)
    assert state["history"]["diverged"] == h.diverged
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    assert all(math.isfinite(p.sum().item()) for p in m.parameters())


def test_real_cifar10_short_epoch_beats_chance(shared_cifar_dir):
    ds = data.load("cifar10-10k", shared_cifar_dir)
    torch.manual_seed(0)
    m = models.build("resnet32", width=0.5)
    h = train.train(m, ds, TrainConfig(schedule=Schedule(1, 0.05), batch_size=128), device="cpu", progress=False)
    # chance is 0.1; a 4/8/16-channel net on 512 images swings from epoch to epoch in eval mode
    assert max(r["test_acc"] for r in h.records) > 0.2


def test_divergence_in_the_first_epoch_is_recorded_and_not_retrained(digits, tmp_path, capsys):
    ds = tiny_digits(digits)
    ckpt = tmp_path / "div0.pt"
    cfg = TrainConfig(schedule=Schedule(3, 1e6), batch_size=64)  # blows up in epoch 0
    torch.manual_seed(0)
    m = models.build("resnet32", width=0.25)
    start = {k: v.clone() for k, v in m.state_dict().items()}
    h = train.train(m, ds, cfg, checkpoint=ckpt, progress=False, meta={"what": "div0"})
    assert (h.diverged, h.records) == (0, [])
    assert f"{ckpt} keeps the initial weights" in capsys.readouterr().out
    state = train.load_checkpoint(ckpt)
    assert state["history"] == {"records": [], "diverged": 0} and state["meta"] == {"what": "div0"}
    for k, v in m.state_dict().items():  # the model and the checkpoint hold the initial, finite weights
        assert torch.equal(v, start[k]) and torch.equal(state["model"][k], start[k]), k
    before = ckpt.stat().st_mtime_ns
    again = train.train(models.build("resnet32", width=0.25), ds, cfg, checkpoint=ckpt, progress=False,
                        meta={"what": "div0"})
    assert again.diverged == 0 and ckpt.stat().st_mtime_ns == before  # read back, not retrained


def test_divergence_without_a_checkpoint_says_the_weights_are_not_finite(digits, capsys):
    cfg = TrainConfig(schedule=Schedule(2, 1e6), batch_size=64)
    h = train.train(models.build("resnet32", width=0.25), tiny_digits(digits), cfg, progress=False)
    assert h.diverged == 0 and "weights are not finite" in capsys.readouterr().out


def test_ctrl_c_stops_cleanly_naming_the_epoch_and_what_is_kept(digits, tmp_path):
    ds = tiny_digits(digits)
    cfg = TrainConfig(schedule=Schedule(3, 0.05), batch_size=64)

    def ctrl_c_in_epoch_1(epoch, model, record):
        if epoch == 1:
            raise KeyboardInterrupt

    ckpt = tmp_path / "int.pt"
    with pytest.raises(train.Interrupted) as e:
        train.train(models.build("resnet32", width=0.25), ds, cfg, checkpoint=ckpt, callbacks=(ctrl_c_in_epoch_1,),
                    progress=False)
    assert str(e.value) == (f"interrupted at epoch 1 ({ckpt} keeps 1 of 3 epochs); "
                            "re-run the same command to resume")
    assert isinstance(e.value, KeyboardInterrupt)
    assert len(train.load_checkpoint(ckpt)["history"]["records"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["int.pt"]  # no temporary file left
