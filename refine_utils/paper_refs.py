"""The paper's values placed on our figures' axes, so ours and the paper's read side by side.

The numbers come from ``paper`` (the one source of truth); a ``Mark`` says where one goes (which
panel, which x), and each figure of ``registry`` lists its marks. ``FIRST_BLOCK_RATIO`` is the one
value the paper states in words only ("ratio up to ~2", Fig. 2).
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


def negative(panels, what: str) -> tuple[Mark, ...]:
    """The paper's "negative ..." as a band below zero on each of ``panels``."""
    return tuple(Mark(p, (None, 0.0), f"paper: negative {what}") for p in panels)


#: The paper's ResNet-110 test accuracy on CIFAR-10 (Table 1), the yardstick of our training curves.
RESNET110_TEST_ACC = 1 - paper.TABLE1["cifar10"]["resnet110"][1] / 100
