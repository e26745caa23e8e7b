"""The fast training path computes what a plain PyTorch loop computes.

On the CPU, ``train.train`` (device-resident uint8 data, batched augmentation, channels_last,
device-side loss accumulation) is compared step by step with a reference loop written here in
plain PyTorch: float32, each image padded, cropped and flipped on its own, the SGD update
written out. Both start from the same weights and see the same batches and the same
augmentation draws, taken from ``data.Loader``'s per-epoch generator. The reference runs in the
fast path's memory layout (channels_last) so that the two trajectories differ by rounding
alone; its first step is also checked in contiguous NCHW.

The tests marked ``cuda`` check the CUDA path (bf16 autocast, channels_last, float32 BatchNorm,
no host synchronisation in the step loop, compile, resume); they are skipped without a GPU and
run by ``bench/gpu_check.sh``.
"""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from refine_utils import data, models, train
from refine_utils.train import Schedule, TrainConfig


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: the same reduction order on every machine


def tiny(digits, n_train=200, n_test=100):
    return data.Dataset("digits", data.Split(digits.train.images[:n_train], digits.train.labels[:n_train]),
                        data.Split(digits.test.images[:n_test], digits.test.labels[:n_test]), 10, digits.mean, digits.std)


def reference_run(model, ds, cfg, layout=torch.channels_last):
    """Plain PyTorch training: returns per-step losses and per-epoch (test loss, test accuracy).

    ``layout`` is the memory format of the weights and batches. It changes rounding, not
    arithmetic, but the CPU's channels_last BatchNorm rounds differently enough (its sums are
    about 1e-5 off where contiguous NCHW's are 1e-7) that two trajectories in different layouts
    drift apart by ~1e-3 within a few steps, as much as a wrong momentum would move them.
    """
    n, bs = len(ds.train), cfg.batch_size
    model.to(memory_format=layout)
    mean = torch.tensor(ds.mean).view(3, 1, 1) * 255
    std = torch.tensor(ds.std).view(3, 1, 1) * 255
    draws = data.Loader(ds.train, ds.mean, ds.std, bs, True, "cpu", cfg.seed)  # only for its generator
    params = list(model.parameters())
    momentum = [None] * len(params)
    losses, evals = [], []
    for epoch in range(cfg.epochs):
        lr = cfg.schedule.lr_at(epoch)
        draws.set_epoch(epoch)
        g = draws.generator()
        perm = torch.randperm(n, generator=g)
        flips = torch.rand(n, generator=g) < 0.5
        shifts = torch.randint(0, 9, (n, 2), generator=g)
        model.train()
        for start in range(0, n, bs):
            idx = perm[start:start + bs]
            batch = []
            for j in idx.tolist():
                img = F.pad(ds.train.images[j], (4, 4, 4, 4))  # (3, 40, 40) uint8, zero padding
                top, left = shifts[j].tolist()
                img = img[:, top:top + 32, left:left + 32]  # RandomCrop(32, padding=4)
                if flips[j]:
                    img = img.flip(2)  # RandomHorizontalFlip
                batch.append((img.float() - mean) / std)
            x = torch.stack(batch).contiguous(memory_format=layout)  # (B, 3, 32, 32)
            loss = F.cross_entropy(model(x), ds.train.labels[idx])
            model.zero_grad()
            loss.backward()
            with torch.no_grad():  # SGD with momentum; weight decay on conv/linear weights only
                for k, p in enumerate(params):
                    d = p.grad + cfg.weight_decay * p if p.ndim > 1 else p.grad
                    momentum[k] = d.clone() if momentum[k] is None else momentum[k].mul_(cfg.momentum).add_(d)
                    p.sub_(lr * momentum[k])
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            logits = model(((ds.test.images.float() - mean) / std).contiguous(memory_format=layout))
            evals.append((F.cross_entropy(logits, ds.test.labels).item(),
                          (logits.argmax(1) == ds.test.labels).float().mean().item()))
    return losses, evals


def test_fast_path_matches_plain_reference_loop(digits):
    ds = tiny(digits, 224)  # batches of 64: three full ones and one of 32 per epoch
    # A large weight decay so that decaying the wrong parameters would show in the losses.
    cfg = TrainConfig(schedule=Schedule(2, 0.05, ((1, 0.02),)), batch_size=64, weight_decay=0.05, seed=7)
    torch.manual_seed(0)
    model = models.build("resnet32", width=0.25)
    plain, plain_nchw = copy.deepcopy(model), copy.deepcopy(model)

    steps = []
    hist = train.train(model, ds, cfg, device="cpu", progress=False, step_losses=steps)
    ref_losses, ref_evals = reference_run(plain, ds, cfg)

    # Measured on this set-up: rounding moves the trajectories apart by at most 5e-5; a missing
    # learning-rate milestone moves them 6e-3, momentum 0.85 for 0.9 by 2e-3, no weight decay 2e-3.
    assert len(steps) == len(ref_losses) == 8
    assert steps == pytest.approx(ref_losses, rel=3e-4)
    assert hist.column("train_loss")[0] == pytest.approx((sum(steps[:3]) * 64 + steps[3] * 32) / 224, rel=1e-6)
    for record, (test_loss, test_acc) in zip(hist.records, ref_evals):
        assert record["test_loss"] == pytest.approx(test_loss, rel=1e-3)
        assert record["test_acc"] == pytest.approx(test_acc, abs=0.011)  # at most one of 100 images flips
    for (name, a), b in zip(model.state_dict().items(), plain.state_dict().values()):
        a, b = a.float(), b.float()  # BatchNorm shifts (norms ~1e-3) are the noisiest: ~1e-4 apart
        assert (a - b).norm() <= 2e-3 * b.norm() + 5e-4, name
    # The first step, before any update, is the same in contiguous NCHW (the layout is rounding only).
    nchw_losses, _ = reference_run(plain_nchw, ds, TrainConfig(schedule=Schedule(1, 0.05), batch_size=64, seed=7),
                                   layout=torch.contiguous_format)
    assert nchw_losses[0] == pytest.approx(steps[0], rel=1e-5)


def test_reference_loop_tells_augmentations_apart(digits):
    """The comparison above has teeth: the same loop without flips gives other losses."""
    ds = tiny(digits, 64, 10)
    cfg = TrainConfig(schedule=Schedule(1, 0.05), batch_size=64, seed=7)
    torch.manual_seed(0)
    model = models.build("resnet32", width=0.25)
    steps = []
    train.train(copy.deepcopy(model), ds, cfg, device="cpu", progress=False, step_losses=steps)
    no_flip = copy.deepcopy(model)
    no_flip.train()
    loader = data.Loader(ds.train, ds.mean, ds.std, 64, True, "cpu", cfg.seed)
    g = loader.generator()
    perm, _, shifts = torch.randperm(64, generator=g), torch.rand(64, generator=g), torch.randint(0, 9, (64, 2), generator=g)
    x = loader.normalise(data.augment(ds.train.images[perm], torch.zeros(64, dtype=torch.bool), shifts[perm]))
    assert abs(F.cross_entropy(no_flip(x), ds.train.labels[perm]).item() - steps[0]) > 1e-4


def test_compile_is_ignored_on_the_cpu_with_a_warning(digits):
    ds = tiny(digits, 64, 10)
    runs = []
    for compile in (False, True):
        torch.manual_seed(0)
        model = models.build("resnet32", width=0.25)
        cfg = TrainConfig(schedule=Schedule(1, 0.05), batch_size=32, compile=compile)
        if compile:
            with pytest.warns(UserWarning, match="CUDA-only"):
                train.train(model, ds, cfg, device="cpu", progress=False)
        else:
            train.train(model, ds, cfg, device="cpu", progress=False)
        runs.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(*runs)


def test_strided_projection_is_the_strided_1x1_convolution():
    """Block.skip computes P as subsample-then-1x1 (to dodge a CPU kernel bug): the same numbers."""
    torch.manual_seed(0)
    block = models.Block(8, 16, stride=2)
    h = torch.randn(5, 8, 32, 32)
    direct = F.conv2d(h, block.shortcut.weight, block.shortcut.bias, stride=2)
    assert torch.allclose(block.skip(h), direct, atol=1e-6)
    assert block(h).shape == (5, 16, 16, 16)


# ----------------------------------------------------------------------------- CUDA


@pytest.mark.cuda
def test_cuda_step_is_bf16_channels_last_with_float32_batchnorm(digits):
    ds = tiny(digits, 256, 100)
    torch.manual_seed(0)
    model = models.build("resnet32", width=0.25)
    seen = {}

    def stem_hook(module, inputs, output):
        seen["input_channels_last"] = inputs[0].is_contiguous(memory_format=torch.channels_last)
        seen["stem_dtype"] = output.dtype

    def bn_hook(module, inputs, output):
        seen["bn_in"], seen["bn_out"] = inputs[0].dtype, output.dtype

    model.stem.register_forward_hook(stem_hook)
    model.blocks[1].bn1.register_forward_hook(bn_hook)
    h = train.train(model, ds, TrainConfig(schedule=Schedule(2, 0.05), batch_size=64), device="cuda", progress=False)
    assert seen["input_channels_last"] and seen["stem_dtype"] == torch.bfloat16  # autocast on, NHWC batches
    assert seen["bn_in"] == torch.bfloat16
    assert model.stem.weight.is_contiguous(memory_format=torch.channels_last)
    bn = model.blocks[1].bn1
    assert {t.dtype for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var)} == {torch.float32}
    assert all(math.isfinite(r["train_loss"]) for r in h.records)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.cuda
def test_cuda_batchnorm_reduces_in_float32():
    """BatchNorm under autocast normalises a bf16 input as float32 arithmetic on that input would."""
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(32).cuda()
    x = (torch.randn(64, 32, 16, 16, device="cuda") * 3 + 100).to(torch.bfloat16)  # large mean: bf16 stats would be off
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = bn(x)
    exact = F.batch_norm(x.float(), None, None, bn.weight, bn.bias, training=True)
    assert (out.float() - exact).abs().max() < 0.05  # bf16 output rounding only
    assert torch.allclose(bn.running_mean, 0.1 * x.float().mean((0, 2, 3)), rtol=1e-3)


@pytest.mark.cuda
def test_cuda_step_loop_never_waits_for_the_host(digits):
    ds = tiny(digits, 300, 10)
    cfg = TrainConfig(schedule=Schedule(1, 0.05), batch_size=64)
    torch.manual_seed(0)
    model = models.build("resnet32", width=0.25)
    dev = torch.device("cuda")
    net = train.prepare(model, dev)
    opt = train.make_optimizer(model, cfg)
    loader = data.Loader(ds.train, ds.mean, ds.std, 64, True, dev, channels_last=True)
    loss_sum = torch.zeros((), device=dev)
    for x, y in loader:  # warm-up epoch: cuDNN autotuning, allocator growth
        train.sgd_step(net, opt, x, y)
    torch.cuda.synchronize()
    loader.set_epoch(1)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for x, y in loader:  # draws, augmentation, forward, backward, update, accumulation
            loss, hits = train.sgd_step(net, opt, x, y)
            loss_sum += loss * len(y) + hits
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert math.isfinite(loss_sum.item())


@pytest.mark.cuda
def test_cuda_augmentation_matches_cpu(digits):
    images = digits.train.images[:50]
    g = torch.Generator().manual_seed(0)
    flips, shifts = torch.rand(50, generator=g) < 0.5, torch.randint(0, 9, (50, 2), generator=g)
    on_gpu = data.augment(images.cuda(), flips.cuda(), shifts.cuda()).cpu()
    assert torch.equal(on_gpu, data.augment(images, flips, shifts))


@pytest.mark.cuda
def test_cuda_bf16_step_agrees_with_cpu_float32(digits):
    """One step on the same batch: bf16 autocast on CUDA is as close to float32 on the CPU as
    bf16 autocast on the CPU is. (bf16 alone moves the update's direction: on the H100 of
    2026-11-27 the cosine with float32 was 0.973, and 0.971 for the same step in bf16 on the CPU,
    mostly in the convolution biases that BatchNorm cancels, whose true gradient is about 0.)"""
    ds = tiny(digits, 128, 10)
    cfg = TrainConfig(schedule=Schedule(1, 0.05), batch_size=128)
    torch.manual_seed(0)
    start = models.build("resnet32", width=0.5)
    before = torch.cat([p.detach().flatten() for p in start.parameters()])
    loader = data.Loader(ds.train, ds.mean, ds.std, 128, False, "cpu")
    x, y = next(iter(loader))

    def step(dev: str, bf16_on_cpu: bool = False):
        model = copy.deepcopy(start)
        net = train.prepare(model, torch.device(dev))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_on_cpu):
            loss, _ = train.sgd_step(net, train.make_optimizer(model, cfg), x.to(dev), y.to(dev))
        return loss.item(), torch.cat([p.detach().cpu().flatten() for p in model.parameters()]) - before

    (cpu_loss, cpu_update), (_, cpu_bf16_update), (gpu_loss, gpu_update) = step("cpu"), step("cpu", True), step("cuda")
    assert gpu_loss == pytest.approx(cpu_loss, rel=2e-2)
    bf16_cos = F.cosine_similarity(cpu_update, cpu_bf16_update, dim=0)
    assert bf16_cos > 0.9  # the yardstick itself is a near-copy of the float32 step
    assert F.cosine_similarity(cpu_update, gpu_update, dim=0) > bf16_cos - 0.02


@pytest.mark.cuda
def test_cuda_resume_continues_the_run(digits, tmp_path):
    ds = tiny(digits, 256, 100)
    cfg = TrainConfig(schedule=Schedule(3, 0.05, ((2, 0.01),)), batch_size=64, seed=3)
    torch.manual_seed(0)
    init = models.build("resnet32", width=0.25)
    straight = train.train(copy.deepcopy(init), ds, cfg, device="cuda", progress=False)

    class Stop(Exception):
        pass

    def stop(epoch, model, record):
        if epoch == 1:
            raise Stop

    ckpt = tmp_path / "run.pt"
    with pytest.raises(Stop):
        train.train(copy.deepcopy(init), ds, cfg, device="cuda", checkpoint=ckpt, callbacks=(stop,), progress=False)
    resumed_model = models.build("resnet32", width=0.25)
    resumed = train.train(resumed_model, ds, cfg, device="cuda", checkpoint=ckpt, progress=False)
    assert [r["epoch"] for r in resumed.records] == [0, 1, 2]
    # cuDNN's kernels are not bitwise deterministic (the CPU test checks exactness): the same run
    # to within bf16 noise, which moves a 3-epoch trajectory of this size by ~1e-2 at most.
    assert resumed.column("train_loss") == pytest.approx(straight.column("train_loss"), rel=5e-2)
    assert next(resumed_model.parameters()).is_cuda


@pytest.mark.cuda
def test_cuda_compiled_step_matches_eager(digits):
    ds = tiny(digits, 200, 50)  # a partial last batch: runs eagerly beside the compiled graph
    histories = []
    for compile in (False, True):
        torch.manual_seed(0)
        model = models.build("resnet32", width=0.25)
        steps = []
        cfg = TrainConfig(schedule=Schedule(2, 0.05), batch_size=64, compile=compile)
        histories.append((train.train(model, ds, cfg, device="cuda", progress=False, step_losses=steps), steps))
    (eager, eager_steps), (compiled, compiled_steps) = histories
    assert len(compiled_steps) == len(eager_steps) == 8
    assert all(math.isfinite(v) for v in compiled_steps)
    assert compiled_steps[0] == pytest.approx(eager_steps[0], rel=2e-2)
    assert compiled.column("train_loss") == pytest.approx(eager.column("train_loss"), rel=5e-2)
