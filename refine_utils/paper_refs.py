"""The paper's values placed on our figures' axes, so ours and the paper's read side by side.

The numbers come from ``paper`` (the one source of truth); this module only says where each
goes: which figure page, which panel, which x. ``FIRST_BLOCK_RATIO`` is the one value the
paper states in words only ("ratio up to ~2", Fig. 2).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import paper

#: Fig. 2: the first block of single-representation and avg-pooling reaches an l2 ratio "up to ~2".
FIRST_BLOCK_RATIO = 2.0


@dataclass(frozen=True)
class Mark:
    """A value the paper reports, on one panel.

    With ``x`` None: ``y`` a number is a horizontal line, a ``(low, high)`` pair a shaded band
    (None: the panel's edge). With ``x`` a tuple: points at those x (``"first"`` / ``"last"``: the
    panel's first / last x), ``y`` one number for all or one per point."""

    panel: str
    y: float | tuple
    label: str
    x: tuple | None = None


def _negative(panels, what: str) -> list[Mark]:
    return [Mark(p, (None, 0.0), f"paper: negative {what}") for p in panels]


_ARCH4 = ("single-representation", "avg-pooling", "resnet110", "wide")
_SPLITS = ("train", "validation")
_LAST_COS = f"paper: last block ≈ {paper.LAST_BLOCK_COSINE:g}"
#: The paper's ResNet-110 test accuracy on CIFAR-10 (Table 1), the yardstick of our training curves.
RESNET110_TEST_ACC = 1 - paper.TABLE1["cifar10"]["resnet110"][1] / 100

#: Marks per figure page (the keys the notebooks pass to ``page.figure``).
MARKS: dict[str, list[Mark]] = {
    "training-acc": [Mark("resnet110", RESNET110_TEST_ACC, "paper: ResNet-110 test accuracy (full scale)")],
    "fig2": [Mark(a, FIRST_BLOCK_RATIO, f"paper: first block ≈ {FIRST_BLOCK_RATIO:g}", ("first",)) for a in _ARCH4[:2]],
    "fig4": _negative(_ARCH4, "at every block")
    + [Mark("resnet110", paper.LAST_BLOCK_COSINE, _LAST_COS, ("last",))],
    "fig7": [Mark("train loss", paper.UNROLL_TRAIN_LOSS, "paper: all, scaled", (0, paper.UNROLL_STEPS)),
             Mark("validation acc", paper.UNROLL_BORDERLINE_ACC, "paper: borderline, scaled", (0, paper.UNROLL_STEPS))]
    + [m for s in _SPLITS for m in _negative([f"{s} cos"], "at every scaled step")
       + [Mark(f"{s} cos", paper.LAST_BLOCK_COSINE, _LAST_COS, (0,))]],
    "shared-cos": _negative(("resnet110-ubn",), "at every block"),
}
MARKS["fig2-c100"] = MARKS["fig2"]
MARKS["fig4-c100"] = _negative(_ARCH4, "at every block")
