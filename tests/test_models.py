import pytest
import torch

from refine_utils import models, paper
from refine_utils.models import build, count_parameters


@pytest.mark.parametrize("arch", sorted(paper.TOTAL_PARAMS))
def test_total_parameter_counts_match_paper(arch):
    assert count_parameters(build(arch), with_bn_stats=True) == paper.TOTAL_PARAMS[arch]


@pytest.mark.parametrize("arch", sorted(paper.TRAINABLE_PARAMS))
def test_trainable_counts_match_paper_on_both_datasets(arch):
    assert count_parameters(build(arch)) == paper.TRAINABLE_PARAMS[arch]
    assert count_parameters(build(arch, num_classes=100)) == paper.TRAINABLE_PARAMS[arch] + paper.CIFAR100_EXTRA


def test_unknown_arch_names_the_choices():
    with pytest.raises(ValueError, match="resnet110.*wide"):
        build("resnet111")


@pytest.mark.parametrize("bad", [0, -1.0, float("nan")])
def test_bad_width_rejected(bad):
    with pytest.raises(ValueError, match="width"):
        build("resnet32", width=bad)


@pytest.mark.parametrize("arch,n_blocks,n_proj", [
    ("resnet32", 15, 2), ("resnet110", 54, 2), ("resnet182-ubn", 90, 2),
    ("single-representation", 10, 0), ("avg-pooling", 30, 0), ("wide", 14, 3),
])
def test_block_structure(arch, n_blocks, n_proj):
    m = build(arch, width=0.1)
    assert len(m.blocks) == n_blocks
    assert sum(not b.identity for b in m.blocks) == n_proj
    assert m.stage_bounds[-1][1] == n_blocks
    assert isinstance(m.stem, torch.nn.Conv2d) and isinstance(m.head, models.Head)


@pytest.mark.parametrize("arch", list(models.ARCHS))
def test_every_arch_runs_at_small_width(arch):
    torch.manual_seed(0)
    m = build(arch, num_classes=7, width=0.05).eval()
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_width_scales_channels_not_depth():
    small, full = build("resnet56", width=0.5), build("resnet56")
    assert len(small.blocks) == len(full.blocks)
    assert small.blocks[-1].conv2.out_channels == 32 and full.blocks[-1].conv2.out_channels == 64


def test_stream_pieces_compose_to_forward():
    torch.manual_seed(0)
    m = build("avg-pooling", width=0.05).eval()
    x = torch.randn(3, 3, 32, 32)
    h = m.stem(x)
    for i, block in enumerate(m.blocks):  # h_{i+1} = S(h_i) + F(h_i), transitions via run()
        h_next = m.run(h, i, i + 1)
        assert torch.allclose(block.skip(h) + block.branch(h), block(h))
        h = h_next
    assert torch.allclose(m.head(h), m(x), atol=1e-6)


def test_run_with_skip_equals_dropping_the_block():
    torch.manual_seed(0)
    m = build("resnet32", width=0.25).eval()
    h0 = m.stem(torch.randn(2, 3, 32, 32))
    i = 7
    manual = m.run(m.run(h0, 0, i), i + 1)
    assert torch.allclose(m.run(h0, skip=i), manual)


def test_init_is_he_normal_with_zero_biases():
    torch.manual_seed(0)
    m = build("single-representation")
    conv = m.blocks[3].conv1
    fan_in = conv.in_channels * 9
    assert conv.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.02)
    assert torch.count_nonzero(conv.bias) == 0 and torch.count_nonzero(m.head.fc.bias) == 0


def test_naive_sharing_is_one_module():
    m = build("resnet110-shared", width=0.25)
    for start, stop in m.stage_bounds:
        stage = m.blocks[start:stop]
        assert len({id(b) for b in stage}) == 6
        assert all(b is stage[5] for b in stage[5:])


@pytest.mark.parametrize("arch", ["resnet110-shared-stats", "resnet110-ubn"])
def test_shared_convs_one_tensor_bn_per_step(arch):
    m = build(arch, width=0.25)
    blocks = m.blocks[:18]
    assert all(b.conv1.weight is blocks[5].conv1.weight for b in blocks[5:])
    assert len({id(b.bn1.running_mean) for b in blocks[5:]}) == 13
    per_step_affine = arch.endswith("ubn")
    assert (len({id(b.bn1.weight) for b in blocks[5:]}) == 13) == per_step_affine
    if per_step_affine:
        assert torch.all(blocks[10].bn2.weight == 0.1) and torch.all(blocks[2].bn2.weight == 1.0)


def test_shared_weights_move_together_under_sgd():
    torch.manual_seed(0)
    m = build("resnet110-ubn", width=0.25)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    before = m.blocks[5].conv1.weight.detach().clone()
    torch.nn.functional.cross_entropy(m(torch.randn(4, 3, 32, 32)), torch.arange(4)).backward()
    opt.step()
    assert not torch.equal(m.blocks[5].conv1.weight, before)
    assert all(torch.equal(b.conv1.weight, m.blocks[5].conv1.weight) for b in m.blocks[5:18])


def test_sharing_rejects_unknown_modes():
    with pytest.raises(ValueError):
        models.Sharing(stats="sometimes")
