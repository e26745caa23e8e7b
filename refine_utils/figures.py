"""One call per figure of the paper: the numbers it plots, computed (or read from the cache).

Every function takes a validated ``profiles.Setting`` (profile, device, seeds) and returns a
``FigureData``: panels (one per architecture, or per metric) of named curves, each a ``Series``
holding one run per seed, with the facts a caption must state (profile, dataset, widths,
epochs, seeds, device, commit). ``plots`` draws them; the scorecard reads them.

The four networks of Fig. 2-4 (and the Taylor check) are the same trained networks: each figure
asks ``experiments.trained`` for the same specs, and each probe result is cached per spec.
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from . import data, experiments, models, profiles, specs, store
from .profiles import Setting

SPLITS = {"train": "train", "test": "validation"}
#: Fig. 7's output scales judged by the scorecard: the paper says only "appropriate scaling".
UNROLL_SWEEP = (0.25, 0.5, 0.75)


@dataclass
class Series:
    """One curve over ``x``: ``runs`` holds one list per seed (None where undefined)."""

    x: list
    runs: list[list]

    def _array(self) -> np.ndarray:
        return np.array([[np.nan if v is None else v for v in run] for run in self.runs], dtype=float)

    @property
    def mean(self) -> np.ndarray:
        """Mean across seeds (NaN where every run is undefined, e.g. a projection block in Fig. 3)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns are expected
            return np.nanmean(self._array(), axis=0)

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation across seeds (0 with one seed)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanstd(self._array(), axis=0)

    @property
    def values(self) -> np.ndarray:
        """(seeds, len(x)): every seed's curve, NaN where undefined (what the scorecard judges)."""
        return self._array()


@dataclass
class FigureData:
    """Panels of named curves, and the facts that produced them.

    ``panels[panel][curve]`` is a ``Series``; ``meta`` says profile, dataset, architectures with
    widths and epochs, seeds, device and commit; ``extra`` holds figure-specific numbers
    (e.g. the unmodified network's accuracy in Fig. 3)."""

    title: str
    xlabel: str
    ylabel: str
    panels: dict[str, dict[str, Series]]
    meta: dict
    extra: dict = field(default_factory=dict)

    def caption(self) -> str:
        m = self.meta
        nets = ", ".join(f"{a} (width {w:g}, {e} epochs)" for a, (w, e) in m["archs"].items())
        stand_in = f" standing in for {m['role']}" if data.source(m["dataset"]) != m["role"] else ""
        schedule = profiles.get_profile(m["profile"]).schedules(m["archs"])
        return (f"profile {m['profile']}: {data.LABELS[m['dataset']]}{stand_in}; {nets}; schedule: {schedule}; "
                f"seeds {m['seeds']}; device {m['device']}; commit {', '.join(m['commits'])}")


class _Collector:
    """Reads results for one figure and remembers the specs and commits behind them."""

    def __init__(self, setting: Setting, role: str):
        self.setting, self.role = setting, role
        self.archs: dict[str, tuple[float, int]] = {}
        self.commits: set[str] = set()

    def spec(self, arch: str, seed: int) -> specs.RunSpec:
        spec = self.setting.spec(arch, seed, self.role)
        self.archs[arch] = (spec.width, spec.epochs)
        return spec

    def result(self, name: str, arch: str, seed: int, probe, **params):
        """``probe(model, dataset, **params)`` of the trained network (as ``to_dict()`` when it is a
    probe result), cached."""
        spec = self.spec(arch, seed)

        def compute():
            model, _ = experiments.trained(spec)
            out = probe(model, experiments.dataset(spec.dataset), **params)
            return out.to_dict() if hasattr(out, "to_dict") else out

        record = store.result(self.setting.profile.name, name, spec, compute, params)
        self.commits.add(record["commit"])
        return record["value"]

    def run(self, arch: str, seed: int) -> dict:
        """A run's per-epoch ``records`` and the epoch it ``diverged`` at (None if it did not),
        cached: shared models may diverge, and a diverged run is a result to show."""
        record = experiments.stored_run(self.setting.profile.name, self.spec(arch, seed))
        self.commits.add(record["commit"])
        return record["value"]

    def history(self, arch: str, seed: int) -> list[dict]:
        """The per-epoch records of a run that must not have diverged (the figures that probe it)."""
        run = self.run(arch, seed)
        if run["diverged"] is not None:
            raise experiments.Diverged(f"{arch} seed {seed} diverged at epoch {run['diverged']}")
        return run["records"]

    def meta(self) -> dict:
        prof = self.setting.profile
        return dict(profile=prof.name, role=self.role, dataset=prof.dataset(self.role), archs=dict(self.archs),
                    seeds=len(self.setting.seeds), device=self.setting.device, commits=sorted(self.commits))


def _probe(name: str):
    from . import probes

    return getattr(probes, name)


@functools.lru_cache(maxsize=None)
def _last_stage(arch: str) -> list[int]:
    """Indices of the last stage's blocks (the structure does not depend on the width)."""
    return list(models.build(arch, width=0.01).last_stage)


def _examples(setting: Setting) -> int | None:
    return setting.profile.probe_examples


# ----------------------------------------------------------------------------- training curves


def training_curves(setting: Setting, role: str = "cifar10", metric: str = "acc",
                    archs=models.FIGURE_ARCHS) -> FigureData:
    """Train and validation ``metric`` ("acc" or "loss") per epoch, one panel per architecture;
    where the profile records it (``Profile.train_eval``), also the un-augmented training images
    in eval mode ("train, un-augmented"): the running "train" values are on augmented batches."""
    if metric not in ("acc", "loss"):
        raise ValueError(f"metric must be 'acc' or 'loss', got {metric!r}")
    c = _Collector(setting, role)
    keys = {f"{split}_{metric}": label for split, label in SPLITS.items()}
    if setting.profile.train_eval:
        keys[f"train_eval_{metric}"] = "train, un-augmented"
    panels = {arch: {label: _curves(c, arch, key, diverged_ok=False) for key, label in keys.items()} for arch in archs}
    return FigureData(f"training {metric}", "epoch", "accuracy" if metric == "acc" else "cross-entropy",
                      panels, c.meta())


# ----------------------------------------------------------------------------- Fig. 2, 4


def _block_stats(setting: Setting, role: str, quantity: str, archs) -> FigureData:
    c = _Collector(setting, role)
    panels, identity, sampling = {}, {}, {}
    for arch in archs:
        for s in setting.seeds:
            c.history(arch, s)  # a diverged network has no per-block picture: raises experiments.Diverged
        curves, errors = {}, {}
        for split, label in SPLITS.items():
            runs = [c.result("block_stats", arch, s, _probe("split_block_stats"), split=split,
                             max_examples=_examples(setting)) for s in setting.seeds]
            x = list(range(1, len(runs[0]["identity"]) + 1))
            curves[label] = Series(x, [r[f"{quantity}_mean"] for r in runs])
            errors[label] = Series(x, [list(np.array(r[f"{quantity}_std"]) / np.sqrt(r["n"])) for r in runs])
            identity[arch] = runs[0]["identity"]
        panels[arch], sampling[arch] = curves, errors
    title, ylabel = {"ratio": ("Fig. 2: l2 ratio per block", "‖F(h)‖ / ‖h‖"),
                     "cos": ("Fig. 4: cosine loss per block", "cos(F(h), ∂L/∂h)")}[quantity]
    # sampling[arch][split]: per seed, the standard error of each block's mean over the examples
    return FigureData(title, "block", ylabel, panels, c.meta(), dict(identity=identity, sampling=sampling))


def figure2(setting: Setting, role: str = "cifar10", archs=models.FIGURE_ARCHS) -> FigureData:
    """Fig. 2: the l2 ratio ``|F_i(h_i)| / |h_i|`` per block, train and validation."""
    return _block_stats(setting, role, "ratio", archs)


def figure4(setting: Setting, role: str = "cifar10", archs=models.FIGURE_ARCHS) -> FigureData:
    """Fig. 4: the cosine loss ``cos(F_i(h_i), dL/dh_i)`` per block, train and validation."""
    return _block_stats(setting, role, "cos", archs)


# ----------------------------------------------------------------------------- Fig. 3


def figure3(setting: Setting, role: str = "cifar10", archs=models.FIGURE_ARCHS) -> FigureData:
    """Fig. 3: validation accuracy with each (identity) block dropped; ``extra["baseline"]`` (the
    whole network's) and ``extra["chance"]`` (one over the number of classes)."""
    c = _Collector(setting, role)
    panels, baseline = {}, {}
    for arch in archs:
        runs = [c.result("drop_one", arch, s, _probe("drop_one"), split="test", max_examples=_examples(setting))
                for s in setting.seeds]
        panels[arch] = {"validation": Series(list(range(1, len(runs[0]["acc"]) + 1)), [r["acc"] for r in runs])}
        baseline[arch] = Series([0], [[r["baseline"]] for r in runs])
    classes = 100 if data.source(setting.profile.dataset(role)) == "cifar100" else 10
    return FigureData("Fig. 3: accuracy with one block dropped", "block dropped", "validation accuracy",
                      panels, c.meta(), dict(baseline=baseline, chance=1 / classes))


# ----------------------------------------------------------------------------- Fig. 5, appendix


def figure5(setting: Setting, role: str = "cifar10", archs=models.FIGURE_ARCHS) -> FigureData:
    """Fig. 5: accuracy of the final head on each hidden state of the last stage, per epoch."""
    c = _Collector(setting, role)
    panels = {}
    for arch in archs:
        blocks = _last_stage(arch)  # intermediate_acc[k]: the head after block blocks[k]
        panels[arch] = {f"block {i + 1}": _curves(c, arch, lambda r, k=k: r["intermediate_acc"][k], diverged_ok=False)
                        for k, i in enumerate(blocks)}
    return FigureData("Fig. 5: intermediate accuracy in the last stage", "epoch", "validation accuracy",
                      panels, c.meta())


def per_epoch(setting: Setting, quantity: str, role: str = "cifar10", archs=models.FIGURE_ARCHS) -> FigureData:
    """Appendix: the cosine loss or l2 ratio of every block as a function of the epoch."""
    if quantity not in ("cos", "ratio"):
        raise ValueError(f"quantity must be 'cos' or 'ratio', got {quantity!r}")
    c = _Collector(setting, role)
    panels = {}
    for arch in archs:
        n = len(c.history(arch, setting.seeds[0])[0][quantity])
        panels[arch] = {f"block {i + 1}": _curves(c, arch, lambda r, i=i: r[quantity][i], diverged_ok=False)
                        for i in range(n)}
    label = {"cos": "cosine loss", "ratio": "l2 ratio"}[quantity]
    return FigureData(f"{label} per block during training", "epoch", label, panels, c.meta())


# ----------------------------------------------------------------------------- Fig. 6, 7


def figure6(setting: Setting, role: str = "cifar10", arch: str = "resnet110", last: int = 5) -> FigureData:
    """Fig. 6: loss, accuracy and entropy of the borderline / correct / all groups over the last blocks."""
    c = _Collector(setting, role)
    panels, sizes = {}, {}
    for split, label in SPLITS.items():
        runs = [c.result("borderline", arch, s, _probe("borderline"), split=split, last=last,
                         max_examples=_examples(setting)) for s in setting.seeds]
        x = [j - runs[0]["states"][-1] for j in runs[0]["states"]]  # 0: the output; -1: before the last block
        for metric in ("loss", "acc", "entropy"):
            panels[f"{label} {metric}"] = {g: Series(x, [r["groups"][g][metric] for r in runs])
                                           for g in ("borderline", "correct", "all")}
        sizes[label] = [r["sizes"] for r in runs]
    # The last block's validation cosine, from the same block_stats results as Fig. 4 (the text quotes it).
    stats = [c.result("block_stats", arch, s, _probe("split_block_stats"), split="test",
                      max_examples=_examples(setting)) for s in setting.seeds]
    last_cos = Series([0], [[r["cos_mean"][-1]] for r in stats])
    return FigureData(f"Fig. 6: the last {last} blocks of {arch}", "hidden state (0 = output)", "",
                      panels, c.meta(), dict(sizes=sizes, last_cos=last_cos))


def figure7(setting: Setting, role: str = "cifar10", arch: str = "resnet110", steps: int = 20,
            scales: tuple[float, ...] | None = None, missing_ok: bool = False) -> FigureData:
    """Fig. 7: the last block unrolled ``steps`` extra times, without scaling (1) and with each
    output scale of ``scales`` (default: the profile's ``unroll_scale``).

    ``extra["unroll"][scale][split]`` holds the typed ``probes.Unroll`` of every seed (what the
    scorecard reads); with ``missing_ok`` a scale whose results are not stored is left out and named
    in ``extra["missing"]`` instead of raising ``store.MissingResult``."""
    from . import probes

    c = _Collector(setting, role)
    panels, sizes, unroll, missing = {}, {}, {}, []
    for scale in (1.0,) + tuple(s for s in (scales or (setting.profile.unroll_scale,)) if s != 1.0):
        try:
            by_split = {label: [probes.Unroll.from_dict(c.result("unroll", arch, s, _probe("unroll"), split=split,
                                                                 steps=steps, scale=scale,
                                                                 max_examples=_examples(setting)))
                                for s in setting.seeds] for split, label in SPLITS.items()}
        except store.MissingResult:
            if not missing_ok or scale == 1.0:
                raise
            missing.append(scale)
            continue
        unroll[scale] = by_split
        x = list(range(steps + 1))
        for label, runs in by_split.items():
            for metric in ("loss", "acc", "entropy"):
                panel = panels.setdefault(f"{label} {metric}", {})
                for g in ("borderline", "all"):
                    panel[f"{g}, scale {scale:g}"] = Series(x, [r.groups[g][metric] for r in runs])
            for q in ("cos", "ratio"):
                panels.setdefault(f"{label} {q}", {})[f"scale {scale:g}"] = Series(x, [getattr(r, q) for r in runs])
            sizes[f"{label}, scale {scale:g}"] = [r.sizes for r in runs]
    return FigureData(f"Fig. 7: {arch}'s last block unrolled {steps} extra steps", "extra steps", "",
                      panels, c.meta(), dict(sizes=sizes, unroll=unroll, missing=missing))


# ----------------------------------------------------------------------------- Section 3


def taylor(setting: Setting, role: str = "cifar10", archs=models.FIGURE_ARCHS) -> FigureData:
    """Section 3: per block, the loss change the block makes against its first-order term (eq. 3);
    ``extra["other_gradients"]`` holds the same product with the gradient taken elsewhere."""
    c = _Collector(setting, role)
    panels, other = {}, {}
    for arch in archs:
        runs = [c.result("first_order", arch, s, _probe("first_order"), split="test",
                         max_examples=setting.profile.taylor_examples) for s in setting.seeds]
        x = list(range(1, len(runs[0]["actual"]) + 1))
        # eq. 3's term: F_i(h_i) . dL_rest/dh at h_i, the gradient of the rest of the network
        # (the blocks above i) at the block's input; see probes.FirstOrder for the other two.
        panels[arch] = {"measured": Series(x, [r["actual"] for r in runs]),
                        "first-order": Series(x, [r["predicted_taylor"] for r in runs])}
        other[arch] = {"through the block": Series(x, [r["predicted"] for r in runs]),
                       "at the block's output": Series(x, [r["predicted_output"] for r in runs])}
    return FigureData("Section 3: loss change per block, measured and first-order", "block",
                      "L(with block) - L(without)", panels, c.meta(), dict(other_gradients=other))


# ----------------------------------------------------------------------------- Section 4.5: shared blocks


def _at_init(c: _Collector, arch: str, seed: int) -> dict:
    """Activation norm of every hidden state and the gradient-norm ratio at initialisation
    (BatchNorm on batch statistics, as in the first training step), on the diagnostic batch."""
    from . import probes

    spec = c.spec(arch, seed)

    def compute():
        model = experiments.initial(spec)
        images, labels = experiments.diagnostic_batch(experiments.dataset(spec.dataset), 256, spec.device)
        model.to(spec.device)
        return dict(act_norms=probes.activation_norms(model, images, batch_stats=True),
                    grad_ratio=probes.gradient_norm_ratio(model, images, labels, batch_stats=True))

    record = store.result(c.setting.profile.name, "at_init", spec, compute)
    c.commits.add(record["commit"])
    return record["value"]


def _curves(c: _Collector, arch: str, pick: str | Callable[[dict], float], diverged_ok: bool = True) -> Series:
    """``pick`` (a record key, or a function of the record) of every epoch, one run per seed.

    A diverged run stops early (its curve is padded with None) where ``diverged_ok``; otherwise
    it raises ``experiments.Diverged`` (the figures that also probe the trained network)."""
    get = pick if callable(pick) else (lambda r: r[pick])
    runs = [c.run(arch, s)["records"] if diverged_ok else c.history(arch, s) for s in c.setting.seeds]
    longest = max(runs, key=len)
    return Series([r["epoch"] + 1 for r in longest], [[get(r) for r in run] + [None] * (len(longest) - len(run))
                                                     for run in runs])


def _diverged(c: _Collector, archs) -> dict[str, list]:
    return {a: [c.run(a, s)["diverged"] for s in c.setting.seeds] for a in archs}


def figure8(setting: Setting, role: str = "cifar10", shared: str = "resnet110-shared",
            reference: str = "resnet32", unshared: str = "resnet110") -> FigureData:
    """Fig. 8: naively shared ResNet-110 against ResNet-32 (the paper's figure) and against the
    unshared ResNet-110 of the same depth: accuracy during training, the gradient-norm ratio ``r``
    during training, and activation norms along depth at initialisation."""
    c = _Collector(setting, role)
    panels = {"accuracy": {}, "gradient-norm ratio r": {}, "activation norm at initialisation": {}}
    init = {}
    archs = (reference, unshared, shared)
    for arch in archs:
        for split, label in SPLITS.items():
            # "group, variant" labels: plots.draw(paired=True) colours by network, styles by split
            panels["accuracy"][f"{label}, {arch}"] = _curves(c, arch, f"{split}_acc")
        panels["gradient-norm ratio r"][arch] = _curves(c, arch, "grad_ratio")
        init[arch] = [_at_init(c, arch, s) for s in setting.seeds]
        panels["activation norm at initialisation"][arch] = Series(
            list(range(len(init[arch][0]["act_norms"]))), [r["act_norms"] for r in init[arch]])
    extra = dict(init_ratio={a: Series([0], [[r["grad_ratio"]] for r in runs]) for a, runs in init.items()},
                 diverged=_diverged(c, archs), shared=shared, reference=reference, unshared=unshared)
    return FigureData(f"Fig. 8: {shared} (naive sharing) against {reference} and {unshared}", "epoch", "",
                      panels, c.meta(), extra)


def copy_weights(source: models.ResidualNet, target: models.ResidualNet) -> None:
    """Copy ``source``'s stem, block convolutions (and shortcut projections) and classifier into
    ``target``, position by position in ``model.blocks``; BatchNorm stays ``target``'s own.

    For diagnostics that compare sharing variants on one draw of weights (Fig. 9): the variants
    have the same blocks and shapes but build their BatchNorm differently."""
    if len(source.blocks) != len(target.blocks):
        raise ValueError(f"copy_weights: {len(source.blocks)} blocks in the source, {len(target.blocks)} in the target")
    pairs = [(source.stem, target.stem), (source.head.fc, target.head.fc)]
    for a, b in zip(source.blocks, target.blocks):
        pairs += [(a.conv1, b.conv1), (a.conv2, b.conv2)]
        if a.shortcut is not None:
            pairs.append((a.shortcut, b.shortcut))
    with torch.no_grad():
        for a, b in pairs:
            b.weight.copy_(a.weight)
            b.bias.copy_(a.bias)


def _at_init_same_weights(c: _Collector, arch: str, seed: int, source: str) -> list[float]:
    """Activation norms at initialisation of ``arch`` carrying ``source``'s convolution and
    classifier weights (BatchNorm as ``arch`` builds it): variants that build per-step BatchNorm
    draw extra random numbers, so only this copy compares the fixes on one draw of weights.
    A diagnostic model only: ``experiments.initial`` and the trained runs are untouched."""
    from . import probes

    spec = c.spec(arch, seed)

    def compute():
        model = experiments.initial(spec)
        copy_weights(experiments.initial(c.spec(source, seed)), model)
        images, _ = experiments.diagnostic_batch(experiments.dataset(spec.dataset), 256, spec.device)
        model.to(spec.device)
        return probes.activation_norms(model, images, batch_stats=True)

    record = store.result(c.setting.profile.name, "at_init_same_weights", spec, compute,
                                dict(weights_from=source))
    c.commits.add(record["commit"])
    return record["value"]


def figure9(setting: Setting, role: str = "cifar10", variants: dict = models.ABLATION) -> FigureData:
    """Fig. 9: the ablation of fixes for sharing, each step adding one: accuracy during training
    and the activation norm along depth at initialisation.

    ``extra["init_same_weights"][label]``: the activation norms at initialisation with every
    variant carrying the first (naive) variant's convolution weights, the fair comparison."""
    c = _Collector(setting, role)
    panels = {"validation accuracy": {}, "train accuracy": {}, "activation norm at initialisation": {}}
    same = {}
    naive = next(iter(variants))
    for arch, label in variants.items():
        panels["validation accuracy"][label] = _curves(c, arch, "test_acc")
        panels["train accuracy"][label] = _curves(c, arch, "train_acc")
        runs = [_at_init(c, arch, s) for s in setting.seeds]
        x = list(range(len(runs[0]["act_norms"])))
        panels["activation norm at initialisation"][label] = Series(x, [r["act_norms"] for r in runs])
        same[label] = Series(x, [_at_init_same_weights(c, arch, s, naive) for s in setting.seeds])
    return FigureData("Fig. 9: fixing shared blocks, one change at a time", "epoch", "",
                      panels, c.meta(), dict(diverged=_diverged(c, variants), labels=dict(variants),
                                             init_same_weights=same))


@dataclass
class TableData:
    """Table 1: per model and dataset role, train and test error (%) over seeds, parameters
    counted on the model itself at full width (``params``, the paper's architectures) and at the
    width actually trained (``params_trained``), and the paper's numbers beside them."""

    rows: list[dict]
    meta: dict
    roles: tuple[str, ...]

    def caption(self) -> str:
        note = self.meta.get("note")
        return FigureData("", "", "", {}, self.meta).caption() + (f". {note}" if note else "")

    def markdown(self) -> str:
        head = ["model"] + [f"{r} {q}" for r in self.roles for q in ("train err. %", "test err. %", "paper train / test")]
        lines = ["| " + " | ".join(head + ["parameters (ours = paper)"]) + " |", "|" + " --- |" * (len(head) + 1)]
        for row in self.rows:
            cells = [row["arch"]]
            for role in self.roles:
                d = row[role]
                cells += [_pm(d["train_err"]), _pm(d["test_err"]), "{:.2f} / {:.2f}".format(*d["paper"])]
            ours = " – ".join(f"{row['params'][r]:,}" for r in self.roles)
            cells.append(f"{ours} ({'yes' if row['params_match'] else 'no'})")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _pm(values: list) -> str:
    vals = np.array([np.nan if v is None else v for v in values], dtype=float)
    if np.all(np.isnan(vals)):
        return "diverged"
    return f"{np.nanmean(vals):.2f} ± {np.nanstd(vals):.2f}" if len(vals) > 1 else f"{vals[0]:.2f}"


def _last_epoch_errors(record: dict) -> dict:
    """Train and test error (%) from a history's last record: ``train_eval_acc`` (un-augmented
    training images, eval mode) and ``test_acc``."""
    return dict(train_err=100 * (1 - record["train_eval_acc"]), test_err=100 * (1 - record["test_acc"]))


def _errors(model, ds) -> dict:
    """Train and test error (%) of a trained network, evaluated without augmentation."""
    from . import train

    out = {}
    for split in ("train", "test"):
        loader = data.Loader(getattr(ds, split), ds.mean, ds.std, 1000, train=False, device=model.head.fc.weight.device)
        out[f"{split}_err"] = 100 * (1 - train.evaluate(model, loader)[1])
    return out


def table1(setting: Setting, roles: tuple[str, ...] | None = None) -> TableData:
    """Table 1: train/test error of ResNet-(6n+2) and the UBN-shared models, and their parameters,
    for each dataset role (default: every role the profile has data for). Where the profile
    records the un-augmented training accuracy per epoch (``Profile.train_eval``) the errors are the
    last epoch's, as training measured them (so the trained weights need not be kept); elsewhere
    the trained network is evaluated on the whole training and test sets."""
    from . import paper

    roles = roles or tuple(r for r in profiles.ROLES if r in setting.profile.datasets)
    colls = {role: _Collector(setting, role) for role in roles}
    rows = []
    for arch in paper.TABLE1["cifar10"]:
        row = dict(arch=arch, params={}, params_match=True)
        for role, c in colls.items():
            errs = []
            for s in setting.seeds:
                run = c.run(arch, s)
                if run["diverged"] is not None:
                    errs.append(dict(train_err=None, test_err=None))
                elif setting.profile.train_eval:
                    errs.append(_last_epoch_errors(run["records"][-1]))
                else:
                    errs.append(c.result("errors", arch, s, _errors))
            classes = 100 if role == "cifar100" else 10
            row["params"][role] = models.count_parameters(models.build(arch, num_classes=classes))
            row.setdefault("params_trained", {})[role] = models.count_parameters(
                models.build(arch, num_classes=classes, width=c.spec(arch, setting.seeds[0]).width))
            want = paper.TRAINABLE_PARAMS.get(arch)
            if want is not None:
                row["params_match"] &= row["params"][role] == want + (paper.CIFAR100_EXTRA if classes == 100 else 0)
            row[role] = dict(train_err=[e["train_err"] for e in errs], test_err=[e["test_err"] for e in errs],
                             paper=paper.TABLE1[role][arch])
        rows.append(row)
    meta = colls[roles[0]].meta()
    meta["commits"] = sorted(set().union(*(c.commits for c in colls.values())))
    if setting.profile.train_eval:
        meta["note"] = (f"Errors of the last epoch, as training measured them: train on the first "
                        f"{setting.profile.train_eval:,} training images (un-augmented), test on the test set.")
    return TableData(rows, meta, tuple(roles))

