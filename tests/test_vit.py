"""Beyond the paper: the ViT as a residual stream, its training recipe, the adjacent-swap probe
(against networks rebuilt with the blocks reordered), the beyond part's specs and its rules."""
import math

import pytest
import torch

from refine_utils import beyond, data, experiments, models, probes, profiles, train
from refine_utils.figures import FigureData, Series
from test_train import tiny_digits  # a slice of digits: a training test in about a second


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py, as is the probes' data fixture ``ds``


def tiny_vit(seed=0, width=0.25):
    torch.manual_seed(seed)
    return models.build("vit", width=width).eval()


def vit_params(dim: int, depth: int, hidden: int, classes: int = 10, tokens: int = 64, patch: int = 4) -> int:
    """Trainable parameters of the ViT counted by hand, layer by layer."""
    attention = 2 * dim + (3 * dim * dim + 3 * dim) + (dim * dim + dim)  # LayerNorm, qkv, projection
    mlp = 2 * dim + (dim * hidden + hidden) + (hidden * dim + dim)
    stem = 3 * patch * patch * dim + dim + tokens * dim  # patch embedding, position embedding
    head = 2 * dim + dim * classes + classes
    return stem + depth * (attention + mlp) + head


def test_vit_parameter_count_is_the_documented_one():
    assert models.count_parameters(models.build("vit")) == 1_018_570  # models.vit's docstring
    assert models.count_parameters(models.build("vit")) == vit_params(96, 9, 384)
    assert models.count_parameters(models.build("vit", num_classes=100, width=0.5)) == vit_params(48, 9, 192, 100)


def test_vit_is_a_residual_stream_of_attention_and_mlp_steps():
    m = tiny_vit()
    assert len(m.blocks) == 18 and m.stage_bounds == [(0, 18)] and list(m.last_stage) == list(range(18))
    assert [b.kind for b in m.blocks] == ["attention", "mlp"] * 9
    assert all(b.identity for b in m.blocks)
    x = torch.randn(3, 3, 32, 32)
    h = m.stem(x)
    assert h.shape == (3, 64, 24)  # 64 tokens of 24 dimensions at width 0.25
    for b in m.blocks:  # h_{i+1} = h_i + F_i(h_i), step by step
        assert torch.equal(b.skip(h), h)
        h = h + b.branch(h)
    torch.testing.assert_close(m.head(h), m(x))
    torch.testing.assert_close(m.head(m.run(m.stem(x), 0, 5)), m.head(m.blocks[4](m.run(m.stem(x), 0, 4))))


def test_vit_width_scales_the_embedding_not_the_depth():
    small, full = models.build("vit", width=0.5), models.build("vit")
    assert len(small.blocks) == len(full.blocks)
    assert small.head.fc.in_features == 48 and full.head.fc.in_features == 96
    assert models.build("vit", width=0.01).head.fc.in_features % models.ViTConfig().heads == 0


def test_vit_train_flops_grow_with_width():
    assert 0 < models.train_flops("vit", 0.5) < models.train_flops("vit", 1.0)


def test_probes_run_on_the_vit_unchanged(ds):
    m = tiny_vit()
    x, y = next(iter(data.Loader(ds.test, ds.mean, ds.std, 20, train=False)))
    stats = probes.block_stats(m, x, y)
    assert stats.cos.shape == (18, 20) and stats.identity == [True] * 18
    drop = probes.drop_one(m, ds, max_examples=20)
    full = m(x).argmax(1)
    for i in (0, 9, 17):  # drop-one against the network rebuilt without the block
        acc = (probes.without_block(m, i)(x).argmax(1) == y).float().mean().item()
        assert drop.acc[i] == pytest.approx(acc, abs=1e-6)
    inter = probes.intermediate_accuracy(m, ds, max_examples=20)
    assert inter.blocks == list(range(18)) and inter.acc[-1] == pytest.approx((full == y).float().mean().item())
    assert probes.borderline(m, ds, max_examples=20).states == list(range(13, 19))
    assert len(probes.unroll(m, ds, steps=2, max_examples=20).cos) == 3
    assert len(probes.first_order(m, ds, max_examples=10).actual) == 18
    assert probes.gradient_norm_ratio(m, x, y) == 1.0 and len(probes.activation_norms(m, x)) == 19


@pytest.mark.parametrize("arch", ["vit", "resnet32", "avg-pooling"])
def test_swap_matches_networks_rebuilt_with_the_blocks_reordered(arch, ds):
    torch.manual_seed(0)
    m = models.build(arch, width={"vit": 0.25, "resnet32": 0.1, "avg-pooling": 0.03}[arch]).eval()
    x, y = next(iter(data.Loader(ds.test, ds.mean, ds.std, 30, train=False)))
    full, swapped = probes._swap_batch(m, x)
    ok = [i for i in range(len(m.blocks) - 1) if probes.swappable(m, i)]
    assert sorted(swapped) == ok
    for i in ok:
        torch.testing.assert_close(swapped[i], probes.with_swap(m, i)(x), atol=1e-5, rtol=1e-5)
    assert any(not torch.allclose(swapped[i], full, atol=1e-4) for i in ok)  # swapping changes something
    result = probes.swap_adjacent(m, ds, batch_size=20, max_examples=30)
    for i in ok[:3]:
        rebuilt = probes.with_swap(m, i)(x)
        assert result.acc[i] == pytest.approx((rebuilt.argmax(1) == y).float().mean().item(), abs=1e-6)
        loss = torch.nn.functional.cross_entropy(rebuilt, y).item()
        assert result.loss[i] == pytest.approx(loss, rel=1e-4)
    assert [a is None for a in result.acc] == [i not in ok for i in range(len(m.blocks) - 1)]
    assert result.baseline == pytest.approx((full.argmax(1) == y).float().mean().item(), abs=1e-6)


def test_only_adjacent_identity_blocks_of_one_stage_swap():
    m = models.build("resnet32", width=0.1)  # stages of 5 blocks; blocks 5 and 10 project
    assert [probes.swappable(m, i) for i in (3, 4, 5, 6, 13, 14)] == [True, False, False, True, True, False]
    with pytest.raises(ValueError, match="cannot be swapped"):
        probes.with_swap(m, 4)


def test_vit_trains_with_adamw_on_warmup_and_cosine_the_resnets_with_sgd():
    vit, resnet = profiles.SMOKE.spec("vit"), profiles.SMOKE.spec("resnet110")
    cfg = vit.train_config()
    assert cfg.optimizer == "adamw" and vit.weight_decay == train.VIT_RECIPE.weight_decay
    assert isinstance(train.make_optimizer(models.build("vit", width=0.1), cfg), torch.optim.AdamW)
    rcfg = resnet.train_config()
    assert rcfg.optimizer == "sgd" and rcfg.schedule == train.paper_schedule("resnet110").scaled(resnet.epochs)
    assert type(train.make_optimizer(models.build("resnet32", width=0.1), rcfg)) is torch.optim.SGD
    s = cfg.schedule
    lrs = [s.lr_at(e) for e in range(s.epochs)]
    assert lrs[: s.warmup] == sorted(lrs[: s.warmup]) and max(lrs) == pytest.approx(s.lr)
    assert lrs[s.warmup:] == sorted(lrs[s.warmup:], reverse=True) and 0 < lrs[-1] < 0.01 * s.lr
    peak = train.WarmupCosine(100, 1e-3, 5)
    assert peak.lr_at(5) == 1e-3 and peak.lr_at(4) == 1e-3 and peak.lr_at(0) == pytest.approx(2e-4)
    assert peak.lr_at(52) == pytest.approx(0.5e-3 * (1 + math.cos(math.pi * 47 / 95)))


def test_vit_training_lowers_the_loss(digits):
    torch.manual_seed(0)
    cfg = train.TrainConfig(schedule=train.WarmupCosine(3, 2e-3, 1), batch_size=16, weight_decay=0.05,
                            optimizer="adamw")
    h = train.train(models.build("vit", width=0.25), tiny_digits(digits, 64, 60), cfg, progress=False)
    assert h.records[-1]["train_loss"] < h.records[0]["train_loss"]
    with pytest.raises(ValueError, match="optimizer"):
        train.TrainConfig(schedule=cfg.schedule, optimizer="adam")


def test_beyond_part_reuses_the_main_resnet110_and_cifar10_cpu_omits_it():
    smoke = profiles.setting("smoke", part="beyond")
    assert smoke.spec("resnet110") == profiles.setting("smoke").spec("resnet110")
    long = profiles.setting("cifar10-long", part="beyond", pending=True)
    assert long.seeds == (0, 1) and long.spec("vit").dataset == "cifar10-10k"
    shown = profiles.setting("cifar10-long", part="beyond")  # what its page reads
    assert (shown.standing_in is not None) == ("beyond" in profiles.CIFAR10_LONG.pending)
    published = profiles.setting("cifar10-cpu", part="beyond")
    assert published.profile.name == "smoke" and published.standing_in[0] == "cifar10-cpu"
    assert not any(s.arch == "vit" for s in experiments.book_specs("cifar10-cpu"))
    assert sum(s.arch == "vit" for s in experiments.book_specs("cifar10-long")) == 2


def _fake(cos_vit_upper: list[float], seeds: int = 2) -> FigureData:
    """Figure data of the shape ``beyond.figure`` returns, with chosen values."""
    def series(x, per_seed):
        return Series(list(x), [list(v) for v in per_seed])

    at = beyond.depth(18)
    att, mlp = at[0::2], at[1::2]
    res = beyond.depth(54)
    flat = lambda x, v: series(x, [[v] * len(x)] * seeds)
    vit_cos = [[-0.1 if d < 0.5 else c for d in mlp] for c in cos_vit_upper]
    panels = {
        "l2 ratio": {"ResNet-110": flat(res, 0.2), "ViT attention": flat(att, 0.5), "ViT MLP": flat(mlp, 0.5)},
        "cosine": {"ResNet-110": flat(res, -0.2), "ViT attention": flat(att, -0.2), "ViT MLP": series(mlp, vit_cos)},
        "drop one: accuracy lost": {"ResNet-110": flat(res, 0.0), "ViT attention": flat(att, 0.0),
                                    "ViT MLP": flat(mlp, 0.0)},
        "adjacent swap: accuracy lost": {"ResNet-110": flat(res[:-1], 0.0), "ViT attention": flat(att, 0.0),
                                         "ViT MLP": flat(mlp[:-1], 0.0)},
        "intermediate accuracy": {"ResNet-110": flat(res[36:], 0.5), "ViT attention": flat(att, 0.5),
                                  "ViT MLP": flat(mlp, 0.5)},
    }
    return FigureData("", "", "", panels, {})


def test_rules_read_the_upper_half_and_call_disagreeing_seeds_noise():
    assert beyond.depth(3) == [0.0, 0.5, 1.0]
    negative = {f.text: f for f in beyond.questions(_fake([-0.3, -0.3]))[0].findings}
    upper = negative["ViT MLP: mean validation cosine of the upper-half steps (< 0)"]
    assert upper.value == pytest.approx(-0.3) and upper.verdict == "yes"
    positive = beyond.questions(_fake([0.3, 0.3]))[0]
    assert positive.findings[4].verdict == "no" and positive.verdict == "partly for both networks"
    split = beyond.questions(_fake([0.3, -0.5]))[0]  # mean -0.1 < 0, but one seed says otherwise
    assert split.findings[4].verdict == "within noise" and split.findings[4].network == "ViT"
    assert split.answers == {"ResNet-110": "partly", "ViT": "within noise"}  # each network from its own findings
    assert split.verdict == "partly for ResNet-110, within noise for the ViT"
    shares = [f for f in beyond.questions(_fake([-0.3, -0.3]))[2].findings if "share" in f.text]
    assert [f.value for f in shares] == [1.0] * 4  # no step or pair costs anything in the fake data


def test_answers_show_every_finding_with_its_threshold_each_seed_and_its_answer():
    import html

    from refine_utils import page, registry

    questions = beyond.questions(_fake([0.3, -0.5]))
    out = page.answers(questions).data
    for q in questions:
        assert f"{html.escape(q.question)}</strong> Answer: <strong>{q.verdict}</strong>" in out
        assert all(html.escape(f.text) in out for f in q.findings)
    assert out.count("(seeds ") == sum(len(q.findings) for q in questions)  # two seeds: each one shown
    assert "≈ within noise" in out and "✓ yes" in out
    assert page.answers(beyond.questions(_fake([0.3], seeds=1))).data.count("(seeds ") == 0
    shown = page.Shown(registry.PAGES["fig2"], profiles.setting("smoke"), {}, {}, {})
    with pytest.raises(ValueError, match="answers no questions of its own"):
        shown.answers()


TINY = profiles.Profile(name="tiny-beyond", description="test", device="cpu", datasets={"cifar10": "digits"},
                           widths={"resnet110": 0.125, "vit": 0.1}, epochs={"resnet110": 1, "vit": 1}, seeds=2,
                           batch_size=256, monitor=0, probe_examples=30)


def fake_run(spec, progress=False, wait=True):
    """An untrained network and a made-up one-epoch history (the probes only need weights)."""
    return experiments.initial(spec), train.History([dict(epoch=0, test_acc=0.1 + spec.seed, train_acc=0.1)])


def test_beyond_figure_puts_both_networks_on_one_depth_axis(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from refine_utils import plots

    monkeypatch.setenv("REFINE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("REFINE_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setitem(profiles.PROFILES, TINY.name, TINY)
    monkeypatch.setattr(experiments, "run", fake_run)
    fig = beyond.figure(profiles.setting(TINY.name, part="beyond"))
    assert list(fig.panels["cosine"]) == ["ResNet-110", "ViT attention", "ViT MLP"]
    x = {k: s.x for k, s in fig.panels["l2 ratio"].items()}
    assert x["ResNet-110"] == beyond.depth(54) and x["ViT attention"][0] == 0 and x["ViT MLP"][-1] == 1
    assert len(fig.panels["adjacent swap: accuracy lost"]["ViT MLP"].x) == 8  # 17 pairs: 9 + 8
    drop = fig.panels["drop one: accuracy lost"]["ResNet-110"].runs[0]
    assert drop[18] is None and drop[36] is None and drop[17] is not None  # projection blocks are gaps
    assert fig.panels["intermediate accuracy"]["ResNet-110"].x[0] == pytest.approx(36 / 53)
    assert fig.extra["fit"]["ViT"]["test_acc"].runs == [[0.1], [1.1]]
    assert beyond.fit_text(fig, "ViT") == "0.600 test accuracy, training accuracy on un-augmented images not " \
                                          "recorded at this profile"
    qs = beyond.questions(fig)
    assert [q.key for q in qs] == ["cosine", "stages", "droppable", "lens"]
    assert all(set(q.answers.values()) <= {"yes", "no", "partly", "within noise"} for q in qs)
    assert all(len(f.seeds) == 2 for q in qs for f in q.findings)
    assert "profile tiny-beyond" in fig.caption()
    plt.close(plots.draw(fig))
