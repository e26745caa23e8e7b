"""Beyond the paper: does a vision transformer refine iteratively? The paper's probes on a ViT,
side by side with ResNet-110.

``figure(setting)`` puts both networks through the same probes of their residual streams, on the
same data, with depth normalised to 0..1 (step ``i`` of ``n`` at ``i / (n - 1)``): the l2 ratio and
cosine per step (Fig. 2, 4), drop-one (Fig. 3), adjacent swap (``probes.swap_adjacent``, after Lad
et al. 2024) and the accuracy of the final head read on every hidden state it can read (Fig. 5 on
the trained network: the "logit lens"; for ResNet-110, its last stage). The ViT's attention and
MLP steps are separate curves; ResNet-110's projection blocks are gaps.

``extra["fit"]`` holds each network's final test accuracy and, where the profile records it, its
accuracy on un-augmented training images (``train_eval_acc``; None elsewhere), per seed.

``questions(data)`` answers the chapter's questions with rules written like the scorecard's: each
``Finding`` is a measured value against a stated threshold, computed for the mean over seeds and
for every seed; where the seeds fall on both sides of the threshold the finding is *within
noise*. A question is answered for each network from its own findings: "yes" when every one
holds, "no" when none does, "within noise" when one is, and "partly" otherwise.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import models, profiles
from .figures import FigureData, Series, _Collector, _probe

#: The two networks, and how the chapter names them.
ARCHS = {"resnet110": "ResNet-110", "vit": "ViT"}
#: Depth boundaries of the rules: the lower quarter ("early") and the upper half ("late").
EARLY, LATE = 0.25, 0.5
#: Accuracy a step may cost and still count as droppable (or its pair as swappable).
SMALL = 0.01


@functools.lru_cache(maxsize=None)
def kinds(arch: str) -> tuple[str, ...]:
    """What every residual step's branch computes: "conv", "attention" or "mlp" (width-independent)."""
    return tuple(b.kind for b in models.build(arch, width=0.01).blocks)


def depth(n: int) -> list[float]:
    """Step ``i`` of ``n`` at ``i / (n - 1)``: 0 the first residual step, 1 the last."""
    return [i / max(1, n - 1) for i in range(n)]


def _curves(arch: str, runs: list[list], at: list[float], kind_of: list[str]) -> dict[str, Series]:
    """One curve per kind of step (the ViT: attention, MLP; a ResNet: one): ``runs`` (seeds x points)
    split by ``kind_of`` (one kind per point), each point at depth ``at``."""
    out = {}
    for kind in dict.fromkeys(kind_of):
        pick = [k for k, kd in enumerate(kind_of) if kd == kind]
        label = ARCHS[arch] if kind == "conv" else f"{ARCHS[arch]} {'MLP' if kind == 'mlp' else kind}"
        out[label] = Series([at[k] for k in pick], [[run[k] for k in pick] for run in runs])
    return out


def _lost(base: list[float], runs: list[list]) -> list[list]:
    """Accuracy lost against the whole network, per seed (None stays None)."""
    return [[None if v is None else b - v for v in run] for b, run in zip(base, runs)]


def figure(setting: profiles.Setting) -> FigureData:
    """ResNet-110 and the ViT through the same probes, per residual step, depth normalised to 0..1."""
    c = _Collector(setting, "cifar10")
    n_ex = setting.profile.probe_examples
    panels = {k: {} for k in ("l2 ratio", "cosine", "drop one: accuracy lost", "adjacent swap: accuracy lost",
                              "intermediate accuracy")}
    fit = {}
    for arch in ARCHS:
        last = [c.history(arch, s)[-1] for s in setting.seeds]  # the trained networks' final epoch
        fit[ARCHS[arch]] = {k: Series([0], [[r.get(k)] for r in last]) for k in ("test_acc", "train_eval_acc")}
        kd = list(kinds(arch))
        at = depth(len(kd))
        stats = [c.result("block_stats", arch, s, _probe("split_block_stats"), split="test", max_examples=n_ex)
                 for s in setting.seeds]
        panels["l2 ratio"].update(_curves(arch, [r["ratio_mean"] for r in stats], at, kd))
        panels["cosine"].update(_curves(arch, [r["cos_mean"] for r in stats], at, kd))
        drop = [c.result("drop_one", arch, s, _probe("drop_one"), split="test", max_examples=n_ex)
                for s in setting.seeds]
        base = [r["baseline"] for r in drop]
        panels["drop one: accuracy lost"].update(_curves(arch, _lost(base, [r["acc"] for r in drop]), at, kd))
        swap = [c.result("swap_adjacent", arch, s, _probe("swap_adjacent"), split="test", max_examples=n_ex)
                for s in setting.seeds]
        mid = [(a + b) / 2 for a, b in zip(at, at[1:])]  # a pair sits between its two steps, drawn by the first's kind
        panels["adjacent swap: accuracy lost"].update(
            _curves(arch, _lost([r["baseline"] for r in swap], [r["acc"] for r in swap]), mid, kd[:-1]))
        inter = [c.result("intermediate", arch, s, _probe("intermediate_accuracy"), split="test", max_examples=n_ex)
                 for s in setting.seeds]
        after = [at[i] for i in inter[0]["blocks"]]  # the head reads h_{i+1}: plotted at step i
        panels["intermediate accuracy"].update(
            _curves(arch, [r["acc"] for r in inter], after, [kd[i] for i in inter[0]["blocks"]]))
    return FigureData("Beyond the paper: ResNet-110 and a ViT, per residual step", "depth (0 = first step, 1 = last)",
                      "", panels, c.meta(), dict(fit=fit))


# ----------------------------------------------------------------------------- rules


@dataclass
class Finding:
    """One measured value against its threshold: on the mean over seeds and on every seed."""

    network: str  # the network measured: a value of ARCHS
    text: str
    value: float
    seeds: list[float]
    holds: bool
    noise: bool  # the seeds fall on both sides of the threshold

    @property
    def verdict(self) -> str:
        return "within noise" if self.noise else "yes" if self.holds else "no"


@dataclass
class Question:
    key: str
    question: str
    how: str
    findings: list[Finding]

    @property
    def answers(self) -> dict[str, str]:
        """Each network's answer, from its own findings."""
        out = {}
        for name in ARCHS.values():
            v = [f.verdict for f in self.findings if f.network == name]
            out[name] = ("within noise" if "within noise" in v else "yes" if all(x == "yes" for x in v)
                         else "no" if all(x == "no" for x in v) else "partly")
        return out

    @property
    def verdict(self) -> str:
        """The answers in words: "yes for both networks", "yes for ResNet-110, no for the ViT"."""
        a = self.answers
        if len(set(a.values())) == 1:
            return f"{next(iter(a.values()))} for both networks"
        return ", ".join(f"{v} for {'the ' if name == 'ViT' else ''}{name}" for name, v in a.items())

    def text(self) -> str:
        """The findings, one per line, and the answers (deterministic: what nbval checks)."""
        lines = [f"{f.verdict:>12}  {f.text}: {f.value:.3g}" for f in self.findings]
        return "\n".join([self.question, f"  measured: {self.how}"] + lines + [f"answer: {self.verdict}"])

    @property
    def numbers(self) -> dict[str, float]:
        return {f"f{k}": f.value for k, f in enumerate(self.findings)}


def _finding(text: str, measure: Callable[[int | None], float], n_seeds: int, test: Callable[[float], bool]) -> Finding:
    """``measure(None)`` on the mean over seeds, ``measure(s)`` on seed ``s``; ``test`` the threshold.
    ``text`` starts with the curve's label, hence the network's name."""
    value = float(measure(None))
    seeds = [float(measure(s)) for s in range(n_seeds)]
    held = {bool(test(v)) for v in seeds if np.isfinite(v)}
    network = next(name for name in ARCHS.values() if text.startswith(name))
    return Finding(network, text, value, seeds, bool(test(value)), len(held) > 1)


def _points(data: FigureData, panel: str, label: str, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(depths, values) of every curve of ``panel`` whose label starts with ``label`` (the ViT's
    attention and MLP together), sorted by depth; the mean over seeds, or seed ``seed``."""
    xs, ys = [], []
    for name, s in data.panels[panel].items():
        if name == label or name.startswith(label + " "):
            xs += list(s.x)
            ys += list(s.mean) if seed is None else [np.nan if v is None else v for v in s.runs[seed]]
    order = np.argsort(xs, kind="stable")
    return np.asarray(xs, float)[order], np.asarray(ys, float)[order]


def _seeds(data: FigureData) -> int:
    return len(next(iter(data.panels["cosine"].values())).runs)


def _cosine(data: FigureData) -> Question:
    n, found = _seeds(data), []
    for label in data.panels["cosine"]:
        def upper(s, label=label):
            x, y = _points(data, "cosine", label, s)
            return np.nanmean(y[x >= LATE])

        def slope(s, label=label):
            x, y = _points(data, "cosine", label, s)
            return np.nanmean(y[x >= LATE]) - np.nanmean(y[x < LATE])

        found.append(_finding(f"{label}: mean validation cosine of the upper-half steps (< 0)", upper, n,
                              lambda v: v < 0))
        found.append(_finding(f"{label}: upper-half mean - lower-half mean cosine (< 0: more negative higher up)",
                              slope, n, lambda v: v < 0))
    return Question("cosine", "Does the cosine turn negative in the upper half?",
                    "cos(F_i(h_i), dL/dh_i) per step on test images, mean over steps at depth >= 1/2 and below",
                    found)


def _stages(data: FigureData) -> Question:
    n, found = _seeds(data), []
    for label in ARCHS.values():
        def ratio(s, label=label):
            x, y = _points(data, "l2 ratio", label, s)
            return np.nanmean(y[x < EARLY]) / np.nanmean(y[x >= LATE])

        def drop(s, label=label):
            x, y = _points(data, "drop one: accuracy lost", label, s)
            return np.nanmax(y[x < EARLY]) - np.nanmedian(y[x >= LATE])

        found.append(_finding(f"{label}: mean l2 ratio of the lower-quarter steps / upper-half steps (> 1.5)",
                              ratio, n, lambda v: v > 1.5))
        found.append(_finding(f"{label}: largest accuracy lost dropping a lower-quarter step - median upper-half "
                              f"step (> 0.05)", drop, n, lambda v: v > 0.05))
    return Question("stages", "Are the early steps representation learning and the later ones refinement?",
                    "early steps change h more (l2 ratio) and cannot be dropped; late ones change it little",
                    found)


def _droppable(data: FigureData) -> Question:
    n, found = _seeds(data), []
    for label in ARCHS.values():
        def share(panel, s, label=label):
            x, y = _points(data, panel, label, s)
            y = y[np.isfinite(y)]
            return float(np.mean(y < SMALL))

        def ends(s, label=label):
            x, y = _points(data, "drop one: accuracy lost", label, s)
            worst = x[np.nanargmax(y)]
            return min(worst, 1 - worst)

        found.append(_finding(f"{label}: share of steps dropped at a cost under {SMALL:g} accuracy (>= 0.5)",
                              lambda s: share("drop one: accuracy lost", s), n, lambda v: v >= 0.5))
        found.append(_finding(f"{label}: share of adjacent pairs swapped at a cost under {SMALL:g} (>= 0.5)",
                              lambda s: share("adjacent swap: accuracy lost", s), n, lambda v: v >= 0.5))
        found.append(_finding(f"{label}: distance in depth of the costliest drop from the nearer end (< 0.1: "
                              "the first or last steps matter most)", ends, n, lambda v: v < 0.1))
    return Question("droppable", "Which steps can be dropped, or swapped with their neighbour?",
                    "test accuracy lost with one step removed, or two adjacent steps run in the opposite order",
                    found)


def _lens(data: FigureData) -> Question:
    n, found = _seeds(data), []
    for label in ARCHS.values():
        def rises(s, label=label):
            x, y = _points(data, "intermediate accuracy", label, s)
            y = y[x >= LATE]
            return float(np.mean(np.diff(y) >= 0))

        found.append(_finding(f"{label}: share of upper-half steps after which the head's accuracy does not fall "
                              "(>= 0.7)", rises, n, lambda v: v >= 0.7))
    return Question("lens", "Does the final head's accuracy rise step by step in the upper half?",
                    "the final head (ViT: final LayerNorm, mean over tokens, linear) on the hidden state after "
                    "each step it can read", found)


RULES = (_cosine, _stages, _droppable, _lens)


def questions(data: FigureData) -> list[Question]:
    """The chapter's questions, answered on ``figure``'s data."""
    return [rule(data) for rule in RULES]


def fit_text(data: FigureData, name: str) -> str:
    """How well network ``name`` ("ResNet-110", "ViT") fits: test and un-augmented training accuracy."""
    test, train_ = (data.extra["fit"][name][k].mean[0] for k in ("test_acc", "train_eval_acc"))
    seen = f"{train_:.3f} on un-augmented training images" if np.isfinite(train_) else \
        "training accuracy on un-augmented images not recorded at this profile"
    return f"{test:.3f} test accuracy, {seen}"


def glue(data: FigureData) -> dict:
    """The numbers the chapter's prose quotes: the ViT's shape, both networks' residual steps, the
    droppable threshold, how well each network fits, and every question's answer and findings."""
    vit = models.ViTConfig()
    out = {"beyond_patch": vit.patch,
           "beyond_tokens": vit.tokens,
           "beyond_vit_blocks": vit.depth, "beyond_vit_steps": len(kinds("vit")),
           "beyond_resnet_steps": len(kinds("resnet110")), "beyond_small": SMALL}
    out |= {f"beyond_fit_{name}": fit_text(data, name) for name in ARCHS.values()}
    for q in questions(data):
        out[f"beyond_{q.key}"] = q.verdict
        out |= {f"beyond_{q.key}_{name}": value for name, value in q.numbers.items()}
    return out
