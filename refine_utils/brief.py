"""The book's "paper in brief" page, written from the library's own record of the paper.

Architectures are described from the models themselves (built on the meta device: no memory,
no arithmetic) beside the paper's parameter counts; schedules from ``train.PAPER_SCHEDULES``;
the reported numbers from ``paper``. Each function returns a markdown table.
"""
from __future__ import annotations

import torch

from . import models, paper, train

#: The paper's name for each architecture of Figures 2-4.
NAMES = {"single-representation": "single representation", "avg-pooling": "avg-pooling", "resnet110": "ResNet-110",
         "wide": "wide"}


def architectures() -> str:
    """The four networks of Fig. 2-4: stages, blocks, widths, and parameters (ours = paper's)."""
    lines = ["| network | stages × blocks (widths) | parameters, paper | ours |", "| --- | --- | --- | --- |"]
    for arch, name in NAMES.items():
        with torch.device("meta"):
            model = models.build(arch)
        stages = ", ".join(f"{len(s.blocks)} × {s.blocks[-1].conv2.out_channels}" for s in model.stages)
        ours = models.count_parameters(model, with_bn_stats=True)
        lines.append(f"| {name} | {stages} | {paper.TOTAL_PARAMS[arch]:,} | {ours:,} |")
    return "\n".join(lines)


def schedules() -> str:
    """The paper's SGD schedules: epochs, and the learning rate from each step on."""
    lines = ["| network | epochs | learning rate (from epoch: rate) |", "| --- | --- | --- |"]
    for family, (epochs, lr, steps) in train.PAPER_SCHEDULES.items():
        name = "every ResNet-(6n+2)" if family == "resnet" else NAMES[family]
        rates = ", ".join([f"0: {lr:g}"] + [f"{e}: {r:g}" for e, r in steps])
        lines.append(f"| {name} | {epochs} | {rates} |")
    return "\n".join(lines)


def table1() -> str:
    """The paper's Table 1: train / test error (%) on CIFAR-10 and CIFAR-100, and trainable parameters."""
    lines = ["| model | CIFAR-10 train / test | CIFAR-100 train / test | parameters (CIFAR-10) |",
             "| --- | --- | --- | --- |"]
    for arch, (train10, test10) in paper.TABLE1["cifar10"].items():
        train100, test100 = paper.TABLE1["cifar100"][arch]
        lines.append(f"| {arch} | {train10:.2f} / {test10:.2f} | {train100:.2f} / {test100:.2f} | "
                     f"{paper.TRAINABLE_PARAMS[arch]:,} |")
    return "\n".join(lines)


def numbers() -> str:
    """The other numbers the paper's text quotes, with where they come from."""
    rows = [("Fig. 6", "the last block's cosine loss (ResNet-110)", f"about {paper.LAST_BLOCK_COSINE:g}"),
            ("Fig. 6, 7", "borderline: a probability change that flips the prediction, below",
             f"{paper.BORDERLINE_MARGIN:.0%}"),
            ("Fig. 7", "extra applications of the last block", f"{paper.UNROLL_STEPS}"),
            ("Fig. 7", "train loss, before → after unrolling", "{} → {}".format(*paper.UNROLL_TRAIN_LOSS)),
            ("Fig. 7", "borderline test examples", f"about {paper.UNROLL_BORDERLINE_COUNT}"),
            ("Fig. 7", "their accuracy, before → after", "{:.0%} → {:.0%}".format(*paper.UNROLL_BORDERLINE_ACC)),
            ("He et al. 2016", "ResNet-110 test error on CIFAR-10, mean of runs", f"{paper.HE2016_RESNET110_MEAN} %"),
            ("He et al. 2016", "pre-activation ResNet-110 test error on CIFAR-10", f"{paper.HE2016_PREACT_RESNET110} %")]
    lines = ["| where | what | value |", "| --- | --- | --- |"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)
