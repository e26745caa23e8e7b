"""One call per figure of the paper: the numbers it plots, computed (or read from the cache).

Every function takes a validated ``experiments.Setting`` (profile, device, seeds) and returns a
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

import numpy as np

from . import experiments, models
from .experiments import Setting

SPLITS = {"train": "train", "test": "validation"}


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
        stand_in = f" standing in for {m['role']}" if m["dataset"] != m["role"] else ""
        return (f"profile {m['profile']}: {m['dataset']}{stand_in}; {nets}; seeds {m['seeds']}; "
                f"device {m['device']}; commit {', '.join(m['commits'])}")


class _Collector:
    """Reads results for one figure and remembers the specs and commits behind them."""

    def __init__(self, setting: Setting, role: str):
        self.setting, self.role = setting, role
        self.archs: dict[str, tuple[float, int]] = {}
        self.commits: set[str] = set()

    def spec(self, arch: str, seed: int) -> experiments.RunSpec:
        spec = self.setting.spec(arch, seed, self.role)
        self.archs[arch] = (spec.width, spec.epochs)
        return spec

    def result(self, name: str, arch: str, seed: int, probe, **params):
        """``probe(model, dataset, **params).to_dict()`` of the trained network, cached."""
        spec = self.spec(arch, seed)

        def compute():
            model, _ = experiments.trained(spec)
            return probe(model, experiments.dataset(spec.dataset), **params).to_dict()

        record = experiments.result(self.setting.profile.name, name, spec, compute, params)
        self.commits.add(record["commit"])
        return record["value"]

    def history(self, arch: str, seed: int) -> list[dict]:
        spec = self.spec(arch, seed)
        record = experiments.result(self.setting.profile.name, "history", spec,
                                    lambda: experiments.trained(spec)[1].records)
        self.commits.add(record["commit"])
        return record["value"]

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
    """Train and validation ``metric`` ("acc" or "loss") per epoch, one panel per architecture."""
    if metric not in ("acc", "loss"):
        raise ValueError(f"metric must be 'acc' or 'loss', got {metric!r}")
    c = _Collector(setting, role)
    panels = {}
    for arch in archs:
        hists = [c.history(arch, s) for s in setting.seeds]
        epochs = [r["epoch"] + 1 for r in hists[0]]
        panels[arch] = {label: Series(epochs, [[r[f"{split}_{metric}"] for r in h] for h in hists])
                        for split, label in SPLITS.items()}
    return FigureData(f"training {metric}", "epoch", "accuracy" if metric == "acc" else "cross-entropy",
                      panels, c.meta())


# ----------------------------------------------------------------------------- Fig. 2, 4


def _block_stats(setting: Setting, role: str, quantity: str, archs) -> FigureData:
    c = _Collector(setting, role)
    panels, identity = {}, {}
    for arch in archs:
        curves = {}
        for split, label in SPLITS.items():
            runs = [c.result("block_stats", arch, s, _probe("split_block_stats"), split=split,
                             max_examples=_examples(setting)) for s in setting.seeds]
            curves[label] = Series(list(range(1, len(runs[0]["identity"]) + 1)), [r[f"{quantity}_mean"] for r in runs])
            identity[arch] = runs[0]["identity"]
        panels[arch] = curves
    title, ylabel = {"ratio": ("Fig. 2: l2 ratio per block", "‖F(h)‖ / ‖h‖"),
                     "cos": ("Fig. 4: cosine loss per block", "cos(F(h), ∂L/∂h)")}[quantity]
    return FigureData(title, "block", ylabel, panels, c.meta(), dict(identity=identity))


def figure2(setting: Setting, role: str = "cifar10", archs=models.FIGURE_ARCHS) -> FigureData:
    """Fig. 2: the l2 ratio ``|F_i(h_i)| / |h_i|`` per block, train and validation."""
    return _block_stats(setting, role, "ratio", archs)


def figure4(setting: Setting, role: str = "cifar10", archs=models.FIGURE_ARCHS) -> FigureData:
    """Fig. 4: the cosine loss ``cos(F_i(h_i), dL/dh_i)`` per block, train and validation."""
    return _block_stats(setting, role, "cos", archs)


# ----------------------------------------------------------------------------- Fig. 3


def figure3(setting: Setting, role: str = "cifar10", archs=models.FIGURE_ARCHS) -> FigureData:
    """Fig. 3: validation accuracy with each (identity) block dropped; ``extra["baseline"]``."""
    c = _Collector(setting, role)
    panels, baseline = {}, {}
    for arch in archs:
        runs = [c.result("drop_one", arch, s, _probe("drop_one"), split="test", max_examples=_examples(setting))
                for s in setting.seeds]
        panels[arch] = {"validation": Series(list(range(1, len(runs[0]["acc"]) + 1)), [r["acc"] for r in runs])}
        baseline[arch] = Series([0], [[r["baseline"]] for r in runs])
    return FigureData("Fig. 3: accuracy with one block dropped", "block dropped", "validation accuracy",
                      panels, c.meta(), dict(baseline=baseline))


# ----------------------------------------------------------------------------- Fig. 5, appendix


def figure5(setting: Setting, role: str = "cifar10", archs=models.FIGURE_ARCHS) -> FigureData:
    """Fig. 5: accuracy of the final head on each hidden state of the last stage, per epoch."""
    c = _Collector(setting, role)
    panels = {}
    for arch in archs:
        hists = [c.history(arch, s) for s in setting.seeds]
        epochs = [r["epoch"] + 1 for r in hists[0]]
        blocks = _last_stage(arch)  # intermediate_acc[k]: the head after block blocks[k]
        panels[arch] = {f"block {i + 1}": Series(epochs, [[r["intermediate_acc"][k] for r in h] for h in hists])
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
        hists = [c.history(arch, s) for s in setting.seeds]
        epochs = [r["epoch"] + 1 for r in hists[0]]
        n = len(hists[0][0][quantity])
        panels[arch] = {f"block {i + 1}": Series(epochs, [[r[quantity][i] for r in h] for h in hists])
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
    return FigureData(f"Fig. 6: the last {last} blocks of {arch}", "hidden state (0 = output)", "",
                      panels, c.meta(), dict(sizes=sizes))


def figure7(setting: Setting, role: str = "cifar10", arch: str = "resnet110", steps: int = 20) -> FigureData:
    """Fig. 7: the last block unrolled ``steps`` extra times, with and without output scaling."""
    c = _Collector(setting, role)
    panels, sizes = {}, {}
    for scale in (1.0, setting.profile.unroll_scale):
        for split, label in SPLITS.items():
            runs = [c.result("unroll", arch, s, _probe("unroll"), split=split, steps=steps, scale=scale,
                             max_examples=_examples(setting)) for s in setting.seeds]
            x = list(range(steps + 1))
            for metric in ("loss", "acc", "entropy"):
                panel = panels.setdefault(f"{label} {metric}", {})
                for g in ("borderline", "all"):
                    panel[f"{g}, scale {scale:g}"] = Series(x, [r["groups"][g][metric] for r in runs])
            for q in ("cos", "ratio"):
                panels.setdefault(f"{label} {q}", {})[f"scale {scale:g}"] = Series(x, [r[q] for r in runs])
            sizes[f"{label}, scale {scale:g}"] = [r["sizes"] for r in runs]
    return FigureData(f"Fig. 7: {arch}'s last block unrolled {steps} extra steps", "extra steps", "",
                      panels, c.meta(), dict(sizes=sizes))


# ----------------------------------------------------------------------------- Section 3


def taylor(setting: Setting, role: str = "cifar10", archs=models.FIGURE_ARCHS) -> FigureData:
    """Section 3: per block, the loss change the block makes against its first-order prediction."""
    c = _Collector(setting, role)
    panels = {}
    for arch in archs:
        runs = [c.result("first_order", arch, s, _probe("first_order"), split="test",
                         max_examples=setting.profile.taylor_examples) for s in setting.seeds]
        x = list(range(1, len(runs[0]["actual"]) + 1))
        panels[arch] = {"measured": Series(x, [r["actual"] for r in runs]),
                        "first-order": Series(x, [r["predicted"] for r in runs])}
    return FigureData("Section 3: loss change per block, measured and first-order", "block",
                      "L(with block) - L(without)", panels, c.meta())
