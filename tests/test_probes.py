"""Probes checked against independent computations: separate autograd per example and block,
networks rebuilt without a block, the plain forward, closed forms and hand-made probabilities."""
import copy
import json

import pytest
import torch
from torch import nn
from torch.nn.functional import cross_entropy

from refine_utils import data, models, probes, train


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py, as is the data fixture ``ds``


def calibrated(model, seed=0):
    """Give BatchNorm running statistics of real-looking activations, so eval mode is well scaled."""
    torch.manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.momentum = None  # cumulative average: one pass sets the statistics of that batch
    model.train()
    with torch.no_grad():
        model(torch.randn(32, 3, 32, 32))
    for m in bns:
        m.momentum = 0.1
    return model.eval()


def tiny(builder, seed=0):
    torch.manual_seed(seed)
    return calibrated(builder(), seed)


def fitted(model, ds, confidence=5.0):
    """Replace the classifier by a ridge regression of ``confidence`` x one-hot labels on the head's
    features of the training digits: an accurate, confident network with no training loop."""
    x, y = next(iter(data.Loader(ds.train, ds.mean, ds.std, len(ds.train), train=False)))
    with torch.no_grad():
        h = model.run(model.stem(x))
        feats = model.head.pool(torch.relu(model.head.bn(h))).flatten(1)
        feats = torch.cat([feats, torch.ones(len(feats), 1)], 1).double()  # (N, D + 1)
        target = confidence * torch.nn.functional.one_hot(y, 10).double()
        w = torch.linalg.solve(feats.T @ feats + 1e-2 * torch.eye(feats.shape[1], dtype=torch.float64), feats.T @ target)
        model.head.fc.weight.copy_(w[:-1].T.float())
        model.head.fc.bias.copy_(w[-1].float())
    return model


TINY = {
    "resnet20": lambda: models.resnet(3, width=0.25),
    "resnet44-shared": lambda: models.resnet(7, width=0.125, sharing=models.NAIVE),
    "avg-pooling": lambda: models.avg_pooling(width=0.04),
    "wide": lambda: models.wide(width=0.02),
}


def batch(n=3, seed=1, classes=10):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, classes, (n,), generator=g)


def eval_loader(ds, n, batch_size=1000):
    return data.Loader(data.Split(ds.test.images[:n], ds.test.labels[:n]), ds.mean, ds.std, batch_size, train=False)


# ----------------------------------------------------------------------------- 1. one traced pass


@pytest.mark.parametrize("arch", list(TINY))
def test_every_gradient_equals_a_separate_per_example_autograd(arch):
    model = tiny(TINY[arch])
    x, y = batch()
    trace = probes._trace(model, x, y)
    stats = probes.block_stats(model, x, y)
    assert all(p.grad is None for p in model.parameters())  # only hidden states were differentiated
    assert stats.cos.shape == stats.ratio.shape == (len(model.blocks), len(x))
    assert stats.identity == [b.identity for b in model.blocks]
    assert (not all(stats.identity)) == (arch != "avg-pooling")
    for b in range(len(x)):
        xb, yb = x[b:b + 1], y[b:b + 1]
        h = model.stem(xb)
        for i, block in enumerate(model.blocks):
            # The example's own loss, differentiated at this block's input: a fresh graph per block.
            v = h.detach().requires_grad_()
            g_in, = torch.autograd.grad(cross_entropy(model.head(model.run(v, i)), yb), v)
            assert torch.allclose(trace.grad_in[i][b:b + 1], g_in, rtol=1e-4, atol=1e-6), (i, b)
            f = block.branch(h).detach()
            if block.identity:
                g, base = g_in, h
            else:  # measured at the block's output, against the projected shortcut
                assert model._post[i] is None
                u = model.run(h, i, i + 1).detach().requires_grad_()
                g, = torch.autograd.grad(cross_entropy(model.head(model.run(u, i + 1)), yb), u)
                base = block.skip(h)
            expected_cos = torch.cosine_similarity(f.double().flatten(), g.double().flatten(), dim=0)
            expected_ratio = f.double().norm() / base.double().norm()
            assert stats.cos[i, b].item() == pytest.approx(expected_cos.item(), abs=1e-4), (i, b)
            assert stats.ratio[i, b].item() == pytest.approx(expected_ratio.item(), rel=1e-4), (i, b)
            h = model.run(h, i, i + 1).detach()


class LinearBlock(nn.Module):
    """``h -> h + M h`` on flat vectors."""

    identity = True

    def __init__(self, m):
        super().__init__()
        self.m = nn.Parameter(m)

    def branch(self, h):
        return h @ self.m.T

    def skip(self, h):
        return h

    def forward(self, h):
        return self.skip(h) + self.branch(h)


class LogitHead(nn.Module):
    """Two classes with logits ``(0, w . h)``."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, h):
        return torch.stack([torch.zeros(len(h)), h @ self.w], 1)


def linear_toy(m, w):
    return models.ResidualNet(nn.Flatten(), [models.Stage([LinearBlock(m)])], LogitHead(w))


@pytest.mark.parametrize("a", [0.5, -0.3, 2.0])
def test_linear_toy_cosine_in_closed_form(a):
    # F(h) = a h and dL/dh = (1 + a)(p_1 - [y = 1]) w, so with |w| = 1:
    # cos = sign(a) * (+1 if y = 0 else -1) * (w . h) / |h|, and the ratio is |a|.
    torch.manual_seed(0)
    d = 4
    w = torch.nn.functional.normalize(torch.randn(d), dim=0)
    model = linear_toy(a * torch.eye(d), w)
    x = torch.randn(6, 1, 2, 2)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    stats = probes.block_stats(model, x, y)
    h = x.flatten(1)
    sign = torch.where(y == 0, 1.0, -1.0) * (1.0 if a > 0 else -1.0)
    assert torch.allclose(stats.cos[0], sign * (h @ w) / h.norm(dim=1), atol=1e-6)
    assert torch.allclose(stats.ratio[0], torch.full((6,), abs(a)), atol=1e-6)


def test_linear_toy_general_matrix_in_closed_form():
    # F(h) = M h; dL/dh = (I + M)^T w (p_1 - [y = 1]); evaluated in float64 by hand.
    torch.manual_seed(1)
    d = 4
    m, w = 0.4 * torch.randn(d, d), torch.randn(d)
    stats = probes.block_stats(linear_toy(m, w), x := torch.randn(5, 1, 2, 2), y := torch.tensor([1, 0, 0, 1, 0]))
    h, m64, w64 = x.flatten(1).double(), m.double(), w.double()
    p1 = torch.sigmoid((h + h @ m64.T) @ w64)  # softmax of (0, z) for class 1
    grad = (p1 - (y == 1).double())[:, None] * ((torch.eye(d, dtype=torch.float64) + m64).T @ w64)[None]
    f = h @ m64.T
    expected = (f * grad).sum(1) / (f.norm(dim=1) * grad.norm(dim=1))
    assert torch.allclose(stats.cos[0].double(), expected, atol=1e-5)


def test_split_block_stats_reduces_every_batch_and_restores_the_mode(ds):
    model = tiny(TINY["resnet20"])
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    res = probes.split_block_stats(model, ds, "test", batch_size=24, max_examples=60)  # 3 uneven batches
    assert model.training and all(torch.equal(v, model.state_dict()[k]) for k, v in buffers.items())
    x, y = next(iter(eval_loader(ds, 60)))
    whole = probes.block_stats(model, x, y)
    assert res.n == 60 and res.identity == whole.identity
    assert res.cos_mean == pytest.approx(whole.cos.double().mean(1).tolist(), abs=1e-6)
    assert res.cos_std == pytest.approx(whole.cos.double().std(1, correction=0).tolist(), abs=1e-5)
    assert res.ratio_mean == pytest.approx(whole.ratio.double().mean(1).tolist(), rel=1e-6)
    assert res.ratio_std == pytest.approx(whole.ratio.double().std(1, correction=0).tolist(), rel=1e-4, abs=1e-6)


# ----------------------------------------------------------------------------- 2. drop-one


@pytest.mark.parametrize("arch", ["resnet20", "resnet44-shared"])
def test_drop_one_with_prefix_reuse_equals_a_network_built_without_the_block(arch, ds):
    model = tiny(TINY[arch])
    x, _ = batch(4)
    with torch.no_grad():
        full, dropped = probes._drop_one_batch(model, x)
        assert torch.allclose(full, model(x), atol=1e-5)
        assert sorted(dropped) == [i for i, b in enumerate(model.blocks) if b.identity]
        for i, logits in dropped.items():
            rebuilt = probes.without_block(model, i)
            assert len(rebuilt.blocks) == len(model.blocks) - 1
            assert torch.allclose(logits, rebuilt(x), atol=1e-5), i
    res = probes.drop_one(model, ds, "test", batch_size=40, max_examples=80)
    loader = eval_loader(ds, 80)
    assert (res.baseline_loss, res.baseline) == pytest.approx(train.evaluate(model, loader), rel=1e-5)
    for i, block in enumerate(model.blocks):
        if not block.identity:
            assert res.acc[i] is None and res.loss[i] is None
            continue
        loss, acc = train.evaluate(probes.without_block(model, i), loader)
        assert res.loss[i] == pytest.approx(loss, rel=1e-5) and res.acc[i] == pytest.approx(acc)
    assert len(set(res.loss) - {None}) > 3  # the drops differ from one another


def test_without_block_indexes_shared_blocks_by_position():
    model = tiny(TINY["resnet44-shared"])
    assert model.blocks[5] is model.blocks[6]
    rebuilt = probes.without_block(model, 6)
    assert [id(b) for b in rebuilt.blocks] == [id(b) for j, b in enumerate(model.blocks) if j != 6]


def test_projection_blocks_cannot_be_dropped():
    model = tiny(TINY["resnet20"])
    with pytest.raises(ValueError, match="block 3 cannot be dropped"):
        probes.without_block(model, 3)


# ----------------------------------------------------------------------------- 3. intermediate accuracy


def test_intermediate_accuracy_reads_the_output_of_each_last_stage_block(ds):
    model = tiny(TINY["resnet20"])
    res = probes.intermediate_accuracy(model, ds, "test", batch_size=30, max_examples=50)
    assert res.blocks == [6, 7, 8]
    x, y = next(iter(eval_loader(ds, 50)))
    with torch.no_grad():
        for k, i in enumerate(res.blocks):
            logits = model.head(model.run(model.stem(x), 0, i + 1))
            assert res.acc[k] == pytest.approx((logits.argmax(1) == y).float().mean().item())
            assert res.loss[k] == pytest.approx(cross_entropy(logits, y).item(), rel=1e-5)
    assert (res.loss[-1], res.acc[-1]) == pytest.approx(train.evaluate(model, eval_loader(ds, 50)), rel=1e-5)

    model.train()
    record = {}
    probes.intermediate_accuracy_callback(ds, max_examples=50)(0, model, record)
    assert record["intermediate_acc"] == res.acc and model.training


def test_intermediate_accuracy_on_a_single_stage_net_includes_every_block(ds):
    model = tiny(lambda: models.single_representation(width=0.05))
    res = probes.intermediate_accuracy(model, ds, max_examples=20)
    assert res.blocks == list(range(10)) and len(res.acc) == 10


# ----------------------------------------------------------------------------- 4. borderline


def test_borderline_rule_on_hand_made_probabilities():
    probs = torch.tensor([
        [0.50, 0.45, 0.05],  # label 0: gap +0.05 -> borderline (correct, barely)
        [0.50, 0.45, 0.05],  # label 1: gap -0.05 -> borderline (wrong, barely)
        [0.70, 0.20, 0.10],  # label 0: gap +0.50 -> correct
        [0.70, 0.20, 0.10],  # label 2: gap -0.60 -> neither
        [0.40, 0.40, 0.20],  # label 0: a tie, gap 0 -> borderline
        [0.625, 0.375, 0.0],  # label 0: gap exactly 0.25 -> correct at margin 0.25, not borderline
        [0.375, 0.625, 0.0],  # label 0: gap exactly -0.25 -> neither
    ], dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 2, 0, 0, 0])
    border, correct = probes.borderline_groups(probs[:5], labels[:5], margin=0.1)
    assert border.tolist() == [True, True, False, False, True]
    assert correct.tolist() == [False, False, True, False, False]
    border, correct = probes.borderline_groups(probs[5:], labels[5:], margin=0.25)
    assert border.tolist() == [False, False] and correct.tolist() == [True, False]
    border, _ = probes.borderline_groups(probs[:4], labels[:4], margin=0.6)
    assert border.tolist() == [True, True, True, False]  # |-0.6| is not < 0.6
    with pytest.raises(ValueError, match="margin"):
        probes.borderline_groups(probs, labels, margin=1.5)


def test_borderline_groups_fixed_at_the_first_state(ds):
    model = fitted(tiny(TINY["resnet20"], seed=1), ds)
    res = probes.borderline(model, ds, "test", last=2, margin=0.3, batch_size=40, max_examples=100)
    n = len(model.blocks)
    assert res.states == [n - 2, n - 1, n] and res.reference == n - 2
    x, y = next(iter(eval_loader(ds, 100)))
    with torch.no_grad():
        probs = torch.softmax(model.head(model.run(model.stem(x), 0, n - 2)), 1)
    border, correct = probes.borderline_groups(probs, y, 0.3)
    assert res.sizes == {"borderline": border.sum().item(), "correct": correct.sum().item(), "all": 100}
    assert res.sizes["borderline"] > 0 and res.sizes["correct"] > 0
    assert res.groups["correct"]["acc"][0] == 1.0
    loss, acc = train.evaluate(model, eval_loader(ds, 100))
    assert res.groups["all"]["loss"][-1] == pytest.approx(loss, rel=1e-5) and res.groups["all"]["acc"][-1] == acc
    share = res.sizes["borderline"] / 100
    mixed = share * res.groups["borderline"]["acc"][0] + res.sizes["correct"] / 100 * 1.0
    assert res.groups["all"]["acc"][0] >= mixed - 1e-9  # the rest (confidently wrong) adds nothing
    with pytest.raises(ValueError, match="cannot read"):
        probes.borderline(model, ds, last=3, max_examples=10)  # h_6 is the projection's input


# ----------------------------------------------------------------------------- 5. unrolling


def test_unroll_k0_is_the_plain_forward_and_k1_one_scaled_step(ds):
    model = fitted(tiny(TINY["resnet20"], seed=1), ds)
    x, y = batch(5)
    steps = list(probes._unroll_steps(model, x, y, steps=2, scale=0.5))
    with torch.no_grad():
        assert torch.equal(steps[0][0], model(x))
        h = model.run(model.stem(x), 0)
        h1 = h + 0.5 * model.blocks[-1].branch(h)
        assert torch.allclose(steps[1][0], model.head(h1), atol=1e-6)
        assert torch.allclose(steps[2][0], model.head(h1 + 0.5 * model.blocks[-1].branch(h1)), atol=1e-5)
        assert torch.allclose(steps[1][2], 0.5 * model.blocks[-1].branch(h).flatten(1).norm(dim=1) / h.flatten(1).norm(dim=1))
    stats = probes.block_stats(model, x, y)
    assert torch.allclose(steps[0][1], stats.cos[-1], atol=1e-6)
    assert torch.allclose(steps[0][2], stats.ratio[-1], atol=1e-6)

    res = probes.unroll(model, ds, "test", steps=3, scale=0.5, margin=0.3, batch_size=40, max_examples=100)
    loss, acc = train.evaluate(model, eval_loader(ds, 100))
    assert res.groups["all"]["loss"][0] == pytest.approx(loss, rel=1e-5) and res.groups["all"]["acc"][0] == acc
    assert res.groups["correct"]["acc"][0] == 1.0 and res.sizes["all"] == 100
    assert res.sizes["borderline"] > 0 and res.groups["all"]["acc"][0] > 0.5
    assert len(res.cos) == len(res.ratio) == 4 and len(set(res.groups["all"]["loss"])) == 4
    split = probes.split_block_stats(model, ds, "test", max_examples=100)
    assert res.cos[0] == pytest.approx(split.cos_mean[-1], abs=1e-6)
    assert res.ratio[0] == pytest.approx(split.ratio_mean[-1], rel=1e-5)


@pytest.mark.parametrize("magnitude", [1e-40, 1e-30, 1e-25, 1e-20, 1.0, 1e20, 1e25])
def test_cosine_is_exact_for_tiny_and_huge_vectors(magnitude):
    """A saturated softmax leaves gradients near 1e-25, whose squares are 0 in float32: the
    cosine must still be the float64 one, in [-1, 1], and equal the plain formula where that is exact."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 8, 5, 5, generator=g), torch.randn(4, 8, 5, 5, generator=g)
    b[0] = -a[0]  # exactly opposite: -1, not -1 - eps
    b[1] = 0.0  # a zero vector: 0
    b = b * magnitude
    cos = probes._cos(a, b)
    expected = torch.cosine_similarity(a.double().flatten(1), b.double().flatten(1), dim=1, eps=1e-300)
    assert torch.allclose(cos.double(), expected, atol=1e-6) and cos.abs().max() <= 1
    assert cos[0] == -1 and cos[1] == 0
    if magnitude == 1.0:  # ordinary vectors: bitwise the unscaled formula
        plain = probes._dots(a, b) / (probes._norms(a) * probes._norms(b)).clamp_min(torch.finfo(torch.float32).tiny)
        assert torch.equal(cos[2:], plain[2:])


@pytest.mark.parametrize("confidence", [50.0, 80.0])
def test_unroll_cosine_stays_a_cosine_when_the_softmax_saturates(confidence, ds):
    """Logit margins of 50-80: the wrong classes' probabilities, and so the gradients at the
    unrolled states, fall near 1e-25, where a float32 norm of them underflows to 0."""
    model = fitted(tiny(TINY["resnet20"], seed=1), ds, confidence=confidence)
    res = probes.unroll(model, ds, "test", steps=6, scale=1.0, batch_size=50, max_examples=100)
    assert all(-1 <= c <= 1 for c in res.cos), res.cos


def test_unroll_rejects_bad_settings(ds):
    model = tiny(TINY["resnet20"])
    with pytest.raises(ValueError, match="scale"):
        probes.unroll(model, ds, scale=0.0)
    with pytest.raises(ValueError, match="steps"):
        probes.unroll(model, ds, steps=-1)


# ----------------------------------------------------------------------------- 6. diagnostics


def test_gradient_norm_ratio_and_activation_norms_match_autograd():
    model = tiny(TINY["resnet20"])
    x, y = batch(4)
    h0 = model.stem(x).detach().requires_grad_()
    hs = [h0]
    for i in range(len(model.blocks)):
        hs.append(model.run(hs[-1], i, i + 1))
    g0, g6 = torch.autograd.grad(cross_entropy(model.head(hs[-1]), y, reduction="sum"), [hs[0], hs[6]])
    assert model.last_stage.start == 6
    assert probes.gradient_norm_ratio(model, x, y) == pytest.approx((g0.norm() / g6.norm()).item(), rel=1e-4)
    expected = [h.detach().flatten(1).norm(dim=1).mean().item() for h in hs]
    assert probes.activation_norms(model, x) == pytest.approx(expected, rel=1e-5)


def test_batch_stats_mode_uses_the_batch_and_keeps_running_statistics():
    torch.manual_seed(0)
    model = models.resnet(3, width=0.25)  # at initialisation: running statistics 0 and 1
    x, y = batch(8)
    before = copy.deepcopy(model.state_dict())
    norms = probes.activation_norms(model, x, batch_stats=True)
    ratio = probes.gradient_norm_ratio(model, x, y, batch_stats=True)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert model.training  # the mode it had (a fresh module trains) is restored
    reference = copy.deepcopy(model).train()  # training-mode BatchNorm normalises with the batch
    with torch.no_grad():
        h = reference.stem(x)
        expected = [h.flatten(1).norm(dim=1).mean().item()]
        for i in range(len(reference.blocks)):
            h = reference.run(h, i, i + 1)
            expected.append(h.flatten(1).norm(dim=1).mean().item())
    assert norms == pytest.approx(expected, rel=1e-5)
    assert norms != pytest.approx(probes.activation_norms(model, x), rel=1e-2)
    assert ratio != pytest.approx(probes.gradient_norm_ratio(model, x, y), rel=1e-2)

    record = {}
    probes.diagnostics_callback(x, y, batch_stats=True)(0, model, record)
    assert record["grad_ratio"] == pytest.approx(ratio) and record["act_norms"] == pytest.approx(norms)


# ----------------------------------------------------------------------------- 7. first-order check


@pytest.mark.parametrize("arch", ["resnet20", "avg-pooling"])
def test_first_order_actual_change_is_the_drop_one_loss_difference(arch, ds):
    model = tiny(TINY[arch])
    fo = probes.first_order(model, ds, "test", batch_size=25, max_examples=50)
    drop = probes.drop_one(model, ds, "test", max_examples=50)
    for i, ident in enumerate(fo.identity):
        if ident:
            assert fo.actual[i] == pytest.approx(drop.baseline_loss - drop.loss[i], rel=1e-4, abs=1e-5)
    x, y = next(iter(eval_loader(ds, 50)))
    stats = probes._trace(model, x, y)
    paper_term = [(f * g).flatten(1).sum(1).mean().item()
                  for f, g, ok in zip(stats.fs, stats.grad_in, fo.identity) if ok]
    assert [p for p, ok in zip(fo.predicted, fo.identity) if ok] == pytest.approx(paper_term, rel=1e-4, abs=1e-6)
    for i, ident in enumerate(fo.identity):
        if not ident:  # projection blocks: measured at the output
            assert fo.predicted[i] == fo.predicted_output[i]


@pytest.mark.parametrize("eps", [1e-3, 1e-2])
def test_first_order_terms_agree_with_the_actual_change_for_a_small_block(eps, ds):
    model = tiny(TINY["resnet20"])
    block = model.blocks[7]
    with torch.no_grad():  # F_7 scaled by eps: the Taylor remainder is O(eps^2)
        block.conv2.weight.mul_(eps)
        block.conv2.bias.mul_(eps)
    fo = probes.first_order(model, ds, "test", max_examples=50)
    actual = fo.actual[7]
    assert abs(actual) > 0
    for term in (fo.predicted_taylor, fo.predicted_output, fo.predicted):
        assert term[7] == pytest.approx(actual, rel=20 * eps)
    # The exact Taylor term and the output-side expansion bracket the change to second order.
    midpoint = (fo.predicted_taylor[7] + fo.predicted_output[7]) / 2
    assert abs(midpoint - actual) < abs(fo.predicted_taylor[7] - actual)


# ----------------------------------------------------------------------------- results and errors


def test_results_round_trip_through_json(ds):
    model = tiny(TINY["resnet20"])
    x, y = batch(2)
    results = [
        probes.block_stats(model, x, y),
        probes.split_block_stats(model, ds, max_examples=10),
        probes.drop_one(model, ds, max_examples=10),
        probes.intermediate_accuracy(model, ds, max_examples=10),
        probes.borderline(model, ds, last=2, max_examples=10),
        probes.unroll(model, ds, steps=1, max_examples=10),
        probes.first_order(model, ds, max_examples=10),
    ]
    for res in results:
        d = json.loads(json.dumps(res.to_dict()))
        back = type(res).from_dict(d)
        assert back.to_dict() == d
    assert torch.equal(type(results[0]).from_dict(results[0].to_dict()).cos, results[0].cos)
    with pytest.raises(ValueError, match="expected keys"):
        probes.DropOne.from_dict({"baseline": 0.5})


def test_bad_inputs_are_named(ds):
    model = tiny(TINY["resnet20"])
    with pytest.raises(ValueError, match="split"):
        probes.drop_one(model, ds, "val")
    with pytest.raises(ValueError, match="max_examples"):
        probes.intermediate_accuracy(model, ds, max_examples=0)
    with pytest.raises(ValueError, match="images"):
        probes.block_stats(model, torch.zeros(2, 3, 32), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        probes.block_stats(model, torch.zeros(2, 3, 32, 32), torch.zeros(3, dtype=torch.long))


def test_callbacks_record_plain_values_during_training(ds, tmp_path):
    torch.manual_seed(0)
    model = models.resnet(3, width=0.25)
    x, y = batch(8)
    cfg = train.TrainConfig(schedule=train.Schedule(1, 0.05), batch_size=128)
    history = train.train(model, ds, cfg, checkpoint=tmp_path / "run.pt", progress=False, callbacks=(
        probes.intermediate_accuracy_callback(ds, max_examples=40), probes.diagnostics_callback(x, y)))
    record = history.records[0]
    assert len(record["intermediate_acc"]) == 3 and len(record["act_norms"]) == len(model.blocks) + 1
    assert record["grad_ratio"] > 0
    saved = train.load_checkpoint(tmp_path / "run.pt")["history"]["records"][0]
    assert json.loads(json.dumps(saved))["intermediate_acc"] == record["intermediate_acc"]
