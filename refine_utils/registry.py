"""Every page of the book that shows a figure, declared once: what each figure computes, how it is
drawn, which claim of the scorecard judges it, and which numbers it glues into the prose.

A notebook is its prose, its ``parameters`` cell and ``fig = page.show("<key>", profile, device,
seeds)``, ``<key>`` a key of ``PAGES`` below; its cells then show ``fig.verdict()``,
``fig.figure()`` and print ``fig.text()``. A new figure is one ``Figure`` here plus its notebook.
The claims themselves (the paper's statement, the data a rule reads, the rule) are
``scorecard.CLAIMS``; a figure drawn from a claim's data names it in ``claim``, so a page's verdict
is judged on exactly what it shows.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import beyond, figures, paper, paper_refs, profiles, scorecard
from .figures import FigureData
from .paper_refs import Mark


@dataclass(frozen=True)
class Figure:
    """One numbered figure (or table) of a page.

    Args:
        label: its number on the page ("2", "C.2", "A.1").
        caption: what is plotted (the page adds the profile and where the numbers came from).
        claim: the key of the ``scorecard.CLAIMS`` claim whose data is drawn and whose rule judges it.
        compute: ``setting -> data`` for a figure no claim judges (a ``figures`` function).
        marks: the paper's values, drawn on the same axes.
        hlines: ``data -> {panel: (y, label)}``, reference lines of ours.
        spectrum: one curve per block, coloured blue (first) to red (last).
        axes: per-panel axis options of ``plots.draw`` (``logy``: panels on a log scale,
            ``xlabels``: a panel's own x label).
        glue: ``data -> {name: value}``, the numbers the page's prose quotes.
        says: ``{name: test}``: sentences of the prose that end with how the checks of ``claim``
            whose condition starts with ``test`` came out (``said``), glued from the page's verdict.
        questions: ``data -> [beyond.Question]``, for a figure that answers questions of its own
            instead of a claim of the paper: each finding with its threshold (``Shown.answers``).
    """

    label: str
    caption: str
    claim: str | None = None
    compute: Callable | None = None
    marks: tuple[Mark, ...] = ()
    hlines: Callable[[FigureData], dict] | None = None
    spectrum: bool = False
    axes: dict = field(default_factory=dict)
    glue: Callable[[FigureData], dict] | None = None
    says: dict[str, str] = field(default_factory=dict)
    questions: Callable[[FigureData], list] | None = None

    def __post_init__(self):
        if (self.claim is None) == (self.compute is None):
            raise ValueError(f"figure {self.label}: give exactly one of claim= or compute=")
        if self.says and self.claim is None:
            raise ValueError(f"figure {self.label}: says= reads a claim's checks; give claim=")


@dataclass(frozen=True)
class Page:
    """A notebook of the book: its figures in page order and the book part whose results it reads
    (``profiles.PARTS``)."""

    notebook: str
    figures: tuple[Figure, ...]
    part: str = "main"

    @property
    def claims(self) -> tuple[str, ...]:
        """Every claim the page judges, in page order."""
        return tuple(f.claim for f in self.figures if f.claim)


# ----------------------------------------------------------------------------- glue and reference lines


def _validation(d: FigureData) -> dict[str, np.ndarray]:
    return {arch: curves["validation"].mean for arch, curves in d.panels.items()}


def _whole_network(d: FigureData) -> dict:
    return {arch: (float(s.mean[0]), "whole network") for arch, s in d.extra["baseline"].items()}


def _zero(d: FigureData) -> dict:
    return {arch: (0.0, "zero") for arch in d.panels}


def _glue_training(d: FigureData) -> dict:
    return {f"training_{arch}_val_acc": float(curves["validation"].mean[-1]) for arch, curves in d.panels.items()} | {
        "training_fit": _fit(d), "training_schedule": profiles.get_profile(d.meta["profile"]).schedules(d.meta["archs"])}


_NAMES = {"single-representation": "single representation", "resnet110": "ResNet-110"}
#: A check's outcome as the end of a prose sentence ("... that the ratio then falls with depth holds").
_SAYS = {"holds": "holds", "fails": "fails", "within noise": "is within noise",
         "not run": "was not run"}


def in_words(words: list[str]) -> str:
    """``["a", "b", "c"]`` as "a, b and c"."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def said(row: scorecard.Row, test: str) -> str:
    """How the checks of ``row`` whose condition (after the network's name) starts with ``test``
    came out, in words a sentence of the prose ends with, so that the prose reads true at every profile: "holds", "holds for every
    network", "holds for wide and fails for ResNet-110 and avg-pooling", "fails at scales 0.5 and
    0.75 and holds at scale 0.25"."""
    named = [(c, *re.match(r"(?:([\w-]+): )?(.*)", c.text).groups()) for c in row.checks if c.outcome in _SAYS]
    checks = [(c, c.group.removeprefix("scale ") if c.group else _NAMES.get(who, who))  # a scale or a network
              for c, who, condition in named if condition.startswith(test)]
    if not checks:
        raise KeyError(f"no check of claim {row.key!r} tests {test!r}")
    if len(checks) > 1 and any(who is None for _, who in checks):
        raise ValueError(f"claim {row.key!r}: {test!r} starts several checks that name no network or scale")
    by: dict[str, list[str]] = {}
    for c, who in checks:
        by.setdefault(c.outcome, []).append(who)
    scales = bool(checks[0][0].group)
    if len(by) == 1:
        outcome, = by
        return _SAYS[outcome] + ("" if len(checks) == 1 else " at every scale" if scales else " for every network")
    where = (lambda w: f"at scale{'s' * (len(w) > 1)} {in_words(w)}") if scales else (lambda w: f"for {in_words(w)}")
    return in_words([f"{_SAYS[o]} {where(w)}" for o, w in by.items()])


def _fit(d: FigureData) -> str:
    """How far the networks got, in one sentence the pages quote wherever a verdict may hinge on it:
    their scale, their final accuracies, and the paper's ResNet-110 beside them."""
    widths = sorted({w for w, _ in d.meta["archs"].values()})
    epochs = sorted({e for _, e in d.meta["archs"].values()})
    span = lambda v, f: f"{v[0]:{f}}" if len(v) == 1 else f"{v[0]:{f}}–{v[-1]:{f}}"
    last = lambda label: in_words([f"{c[label].mean[-1]:.2f} ({_NAMES.get(a, a)})" for a, c in d.panels.items()])
    seen = (f", and {last('train, un-augmented')} on their un-augmented training images"
            if all("train, un-augmented" in c for c in d.panels.values()) else
            f", with running training accuracies of {span(sorted(c['train'].mean[-1] for c in d.panels.values()), '.2f')} "
            "(on augmented batches)")
    return (f"the networks of profile {d.meta['profile']}, at {span(widths, 'g')} times the paper's widths and trained "
            f"{span(epochs, 'd')} epochs, reach validation accuracies of {last('validation')}{seen}; the paper's "
            f"full-scale ResNet-110 reaches {paper_refs.RESNET110_TEST_ACC:.3f} test accuracy")


def _glue_fig2(d: FigureData) -> dict:
    val = _validation(d)
    return {"fig2_sr_first": float(val["single-representation"][0]), "fig2_ap_first": float(val["avg-pooling"][0]),
            "fig2_r110_first": float(val["resnet110"][0]), "fig2_wide_first": float(val["wide"][0]),
            "fig2_sr_last": float(val["single-representation"][-1])}


def _glue_fig3(d: FigureData) -> dict:
    full = _whole_network(d)
    drop = {arch: full[arch][0] - v for arch, v in _validation(d).items()}
    sr = drop["single-representation"]
    return {"fig3_sr_first": float(sr[0]), "fig3_sr_upper": float(sr[len(sr) // 2:].mean()),
            "fig3_r110_worst": float(max(v for v in drop["resnet110"] if v == v)),  # v == v: not a projection block
            "fig3_wide_worst": float(max(v for v in drop["wide"] if v == v))}


def _glue_fig4(d: FigureData) -> dict:
    val = _validation(d)
    negative = sum((v < 0).sum() for v in val.values()) / sum(len(v) for v in val.values())
    return {"fig4_negative": float(negative), "fig4_r110_last": float(val["resnet110"][-1]),
            "fig4_wide_last": float(val["wide"][-1])}


def _glue_fig5(d: FigureData) -> dict:
    final = [s.mean[-1] for s in d.panels["resnet110"].values()]
    return {"fig5_r110_first": float(final[0]), "fig5_r110_last": float(final[-1])}


def _glue_fig6(d: FigureData) -> dict:
    acc = d.panels["validation acc"]
    return {"fig6_border_before": float(acc["borderline"].mean[0]), "fig6_border_after": float(acc["borderline"].mean[-1]),
            "fig6_all_before": float(acc["all"].mean[0]), "fig6_all_after": float(acc["all"].mean[-1])}


def _glue_fig7(d: FigureData) -> dict:
    return {"fig7_cos_first": float(d.panels["validation cos"]["scale 1"].mean[0]),
            "fig7_train_loss_before": float(d.panels["train loss"]["all, scale 1"].mean[0]),
            "fig7_paper_train_loss": paper.UNROLL_TRAIN_LOSS[0]}


def _glue_fig8(d: FigureData) -> dict:
    acc, r = d.panels["accuracy"], d.extra["init_ratio"]
    return {"fig8_shared_acc": float(acc["validation, resnet110-shared"].mean[-1]),
            "fig8_r32_acc": float(acc["validation, resnet32"].mean[-1]),
            "fig8_shared_r": float(r["resnet110-shared"].mean[0]), "fig8_r32_r": float(r["resnet32"].mean[0]),
            "fig8_seeds": _seeds(d)}


def _glue_fig9(d: FigureData) -> dict:
    final = [float(s.mean[-1]) for s in d.panels["validation accuracy"].values()]
    return {"fig9_naive_acc": final[0], "fig9_fixed_acc": final[-1], "fig9_seeds": _seeds(d)}


def _seeds(d: FigureData) -> str:
    n = d.meta["seeds"]
    return f"{n} seed{'s' * (n > 1)}"


def _glue_epochs(d: FigureData) -> dict:
    """Per architecture, how many blocks end training with a negative cosine."""
    return {f"epochs_{arch}_negative_last": int(sum(s.mean[-1] < 0 for s in c.values())) for arch, c in d.panels.items()}


# ----------------------------------------------------------------------------- the paper's marks

_ARCH4 = ("single-representation", "avg-pooling", "resnet110", "wide")
_SPLITS = ("train", "validation")
_LAST_COS = f"paper: last block ≈ {paper.LAST_BLOCK_COSINE:g}"
_FIRST_RATIO = tuple(Mark(a, paper_refs.FIRST_BLOCK_RATIO, f"paper: first block ≈ {paper_refs.FIRST_BLOCK_RATIO:g}",
                          ("first",)) for a in _ARCH4[:2])
_NEGATIVE_COS = paper_refs.negative(_ARCH4, "at every block")
#: The shared model the Appendix D page draws (its per-block results are stored for every profile).
_NAIVE = scorecard.APPENDIX_D  # the naively shared ResNet-110
#: The sharing figures run over epochs or over depth, and their norms over orders of magnitude.
_SHARING_AXES = dict(xlabels={"activation norm at initialisation": "hidden state (0 = stem output)"},
                     logy=("activation norm at initialisation", "gradient-norm ratio r"))


# ----------------------------------------------------------------------------- the pages, in reading order

PAGES: dict[str, Page] = {
    "training": Page("notebooks/training", (
        Figure("T.1", "Train and validation accuracy per epoch, one panel per architecture; \"train\" is the running "
               "accuracy on augmented batches, \"train, un-augmented\" (where the profile records it) the training "
               "images themselves in eval mode; dashed black: the paper's ResNet-110 test accuracy at full scale.",
               compute=functools.partial(figures.training_curves, metric="acc"), glue=_glue_training,
               marks=(Mark("resnet110", paper_refs.RESNET110_TEST_ACC, "paper: ResNet-110 test accuracy (full scale)"),)),
        Figure("T.2", "Train and validation cross-entropy per epoch, one panel per architecture, the same curves "
               "as Figure T.1.",
               compute=functools.partial(figures.training_curves, metric="loss")))),
    "taylor": Page("notebooks/taylor", (
        Figure("3.1", "Per block, the measured loss change (with the block minus without it) and its first-order "
               "prediction F(h)·dL/dh, one panel per architecture.", claim="taylor",
               says=dict(taylor_sign="upper-half blocks where the first-order term",
                         taylor_error="upper half, Σ", taylor_lower="that relative error, lower half")),)),
    "fig2": Page("notebooks/fig2_l2_ratio", (
        Figure("2", "The l2 ratio of every residual block, train and validation, one panel per architecture; black "
               "stars: the paper's first-block ratio.", claim="fig2", marks=_FIRST_RATIO,
               glue=_glue_fig2, says=dict(fig2_first="first block's l2 ratio", fig2_drop="rank correlation",
                                          fig2_flat="peak above median", fig2_overlap="largest mean |train")),)),
    "fig3": Page("notebooks/fig3_drop_one", (
        Figure("3", "Validation accuracy with one block removed, per block, one panel per architecture; dotted: the "
               "unmodified network.", claim="fig3", hlines=_whole_network,
               glue=_glue_fig3, says=dict(fig3_first="share of above-chance accuracy lost dropping block 1",
                                          fig3_upper="median share lost", fig3_none="largest share")),)),
    "fig4": Page("notebooks/fig4_cosine", (
        Figure("4", "Cosine between each block's output F(h) and the loss gradient at its input, train and "
               "validation, one panel per architecture; grey band and star: the paper.", claim="fig4",
               marks=_NEGATIVE_COS + (Mark("resnet110", paper.LAST_BLOCK_COSINE, _LAST_COS, ("last",)),),
               hlines=_zero,
               glue=_glue_fig4, says=dict(fig4_every="share of blocks with validation cosine negative",
                                          fig4_upper="upper-half mean cosine", fig4_deep="most negative cosine")),)),
    "fig5": Page("notebooks/fig5_intermediate", (
        Figure("5", "Validation accuracy of the final classifier read after each block of the last stage, per "
               "epoch, one panel per architecture; blue: first block, red: last.", claim="fig5", spectrum=True,
               glue=_glue_fig5, says=dict(fig5_rise="accuracy after the last block",
                                          fig5_gradual="largest block-to-block gain")),)),
    "fig6": Page("notebooks/fig6_borderline", (
        Figure("6", "Loss, accuracy and entropy of the borderline, correct and all groups over the last hidden "
               "states of ResNet-110, train (left) and validation (right).", claim="fig6",
               glue=_glue_fig6, says=dict(fig6_gain="validation accuracy gained", fig6_entropy="largest change of validation entropy",
                                          fig6_more="borderline accuracy gain", fig6_loss="|change of borderline",
                                          fig6_train="largest block-to-block change of the train loss",
                                          fig6_rise="validation loss, output", fig6_cos="|last block's")),)),
    "fig7": Page("notebooks/fig7_unroll", (
        Figure("7", "Loss, accuracy, entropy, cosine and l2 ratio as the last block of ResNet-110 is applied extra "
               "times, plain and scaled, train (left) and validation (right); black: the paper.", claim="fig7",
               marks=(Mark("train loss", paper.UNROLL_TRAIN_LOSS, "paper: all, scaled", (0, paper.UNROLL_STEPS)),
                      Mark("validation acc", paper.UNROLL_BORDERLINE_ACC, "paper: borderline, scaled",
                           (0, paper.UNROLL_STEPS)))
               + tuple(m for s in _SPLITS for m in paper_refs.negative([f"{s} cos"], "at every scaled step")
                       + (Mark(f"{s} cos", paper.LAST_BLOCK_COSINE, _LAST_COS, (0,)),)),
               axes=dict(paired=True), glue=_glue_fig7, says=dict(fig7_plain="no scaling", fig7_train="train loss",
                                          fig7_border="borderline validation accuracy", fig7_acc="validation accuracy",
                                          fig7_loss="validation loss", fig7_cos="largest validation cosine of the scaled")),)),
    "appendix_epochs": Page("notebooks/appendix_epochs", (
        Figure("A.1", "Cosine loss of every block per epoch, one panel per architecture; blue: first block, red: last.",
               compute=functools.partial(figures.per_epoch, quantity="cos"), spectrum=True, glue=_glue_epochs),
        Figure("A.2", "The l2 ratio of every block per epoch, one panel per architecture; blue: first block, red: last.",
               compute=functools.partial(figures.per_epoch, quantity="ratio"), spectrum=True))),
    "cifar100": Page("notebooks/cifar100", (
        Figure("C.2", "The l2 ratio per block, train and validation, one panel per architecture; black stars: the "
               "paper's first-block ratio.", claim="fig2-c100", marks=_FIRST_RATIO),
        Figure("C.3", "Validation accuracy with one block removed; dotted: the unmodified network.", claim="fig3-c100",
               hlines=_whole_network),
        Figure("C.4", "Cosine loss per block, train and validation; grey band: the paper.", claim="fig4-c100",
               marks=_NEGATIVE_COS, hlines=_zero),
        Figure("C.5", "Validation accuracy of the final classifier after each block of the last stage, per epoch; "
               "blue: first block, red: last.", claim="fig5-c100", spectrum=True)), part="cifar100"),
    "fig8": Page("notebooks/fig8_sharing", (
        Figure("8", "Naively shared ResNet-110 against ordinary ResNets: accuracy during training, the gradient-norm "
               "ratio r during training, and the activation norm along depth at initialisation.", claim="fig8",
               axes=_SHARING_AXES | dict(paired=True),
               glue=_glue_fig8, says=dict(fig8_below="final validation accuracy",
                                          fig8_r_init="gradient-norm ratio r at init, naive shared / resnet32",
                                          fig8_r_train="r averaged over training, naive shared / resnet32",
                                          fig8_act="activation-norm growth over depth at init, naive shared / resnet32")),),
         part="sharing"),
    "fig9": Page("notebooks/fig9_ablation", (
        Figure("9", "The sharing ablation, one change at a time: validation and train accuracy during training and "
               "the activation norm along depth at initialisation.", claim="fig9", axes=_SHARING_AXES,
               glue=_glue_fig9, says=dict(fig9_stats="final validation accuracy, '+ per-step BN statistics'",
                                          fig9_gamma="final validation accuracy, '+ γ",
                                          fig9_ubn="final validation accuracy, '+ per-step γ/β",
                                          fig9_most="gain from per-step BN statistics",
                                          fig9_calm="smallest activation-norm growth")),), part="sharing"),
    "table1": Page("notebooks/table1", (
        Figure("1", "Train and test error (%) of ordinary and UBN-shared ResNets beside the paper's, and their "
               "parameter counts.", claim="table1",
               says=dict(table1_ubn="CIFAR-10 test error %, ResNet-110-UBN",
                         table1_deep="CIFAR-10 test error %, ResNet-110 -")),), part="sharing"),
    # Appendix D: the naively shared ResNet-110 of Fig. 8, block by block (the paper's Section 4.5).
    "appendix_shared": Page("notebooks/appendix_shared", (
        Figure("D.1", "Cosine loss per block of the naively shared ResNet-110, train and validation; grey band: "
               "the paper.", claim="shared_cos", marks=paper_refs.negative(_NAIVE, "at every block")),
        Figure("D.2", "The l2 ratio per block of the naively shared ResNet-110, train and validation.",
               compute=functools.partial(figures.figure2, archs=_NAIVE)),
        Figure("D.3", "Intermediate accuracy in the last stage of the naively shared ResNet-110, per epoch; blue: "
               "first block, red: last.", compute=functools.partial(figures.figure5, archs=_NAIVE),
               spectrum=True)), part="sharing"),
    "vit": Page("notebooks/vit", (
        Figure("B.1", "ResNet-110 and a ViT through the same probes, per residual step, depth normalised to 0..1: l2 "
               "ratio, cosine, accuracy lost dropping one step, accuracy lost swapping two adjacent steps, and the "
               "final head's accuracy on each hidden state.", compute=beyond.figure, glue=beyond.glue,
               questions=beyond.questions),),
        part="beyond"),
}


def page_of(claim: str) -> Page:
    """The page that judges ``claim`` (a key of ``scorecard.CLAIMS``)."""
    return next(p for p in PAGES.values() if claim in p.claims)
