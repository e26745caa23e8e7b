"""Every per-block measurement of the paper (PAPER.md section 2), exact, from as few passes as possible.

Notation (``models.py``): ``h_i`` is the input of ``model.blocks[i]`` (``i = 0..n-1``) and ``h_n``
the final hidden state, read by ``model.head``. Block ``i`` computes ``u_i = S_i(h_i) + F_i(h_i)``
and ``h_{i+1} = post_i(u_i)``, where ``post_i`` is the transition after a stage (the 2x2 average
pool of ``avg-pooling``; the identity everywhere else). ``L`` is the *summed* cross-entropy of a
batch: in eval mode examples do not interact, so ``dL/dh_i`` restricted to one example is that
example's own gradient.

Conventions, the same in every probe:

- **Eval mode.** Every probe puts the model in eval mode (BatchNorm uses its running statistics)
  and restores the mode it found. Computation is float32 (no autocast), so numbers are exact up
  to float32 rounding on every device. ``gradient_norm_ratio`` and ``activation_norms`` can
  instead normalise with each batch's own statistics (``batch_stats=True``, for readings at
  initialisation, where the running statistics are still 0 and 1); running statistics are never
  updated by a probe.
- **Identity blocks** (``S_i = id``, ``Block.identity``): ``cos = cos(F_i(h_i), dL/dh_i)`` with
  the gradient at the block's input, through the block, as the paper defines it, and
  ``ratio = |F_i(h_i)| / |h_i|``.
- **Projection blocks** (``S_i = P_i``, a 1x1 convolution; ``F_i(h_i)`` lives in the output's
  space, not ``h_i``'s) are measured against the projected shortcut: the block is read as the
  step ``P_i(h_i) -> P_i(h_i) + F_i(h_i)``, so ``cos = cos(F_i(h_i), dL/du_i)`` (``dL/du_i`` is
  the gradient with respect to ``P_i(h_i)``) and ``ratio = |F_i(h_i)| / |P_i(h_i)|``. Every result
  carries ``identity`` (one bool per block) so plots can mark them; drop-one leaves them out.
- A cosine is 0 where one of its vectors is exactly zero, and lies in [-1, 1] however large or
  small the vectors are (``_cos`` rescales each by a power of two first). Norms are per example, over the
  flattened hidden state (a feature map, or the ViT's tokens); means and standard deviations
  are over the examples of a split (population standard deviation).
- Whole-split helpers read the first ``max_examples`` examples of ``data.train`` or
  ``data.test`` in their stored order, normalised, without augmentation
  (``data.Loader(train=False)``), on ``device`` (default: the model's; a given device moves the
  model there). They return a dataclass with ``to_dict()`` (plain JSON-able values) and
  ``from_dict()``.
- **The head reads** ``h_j`` when the blocks ``j..n-1`` are all identity blocks and ``j`` is in
  the last stage (the shape ``model.head`` expects); ``h_n`` always.

Multiple uses of one Block object (shared blocks) are indexed by position in ``model.blocks``.

Nothing here depends on what a block computes: the probes read the residual stream only through
``model.stem``, ``model.blocks`` (``branch``, ``skip``, ``identity``), ``model.run`` and
``model.head``, so the vision transformer (``models.vit``: attention and MLP steps on tokens, no
BatchNorm) runs through every one of them unchanged.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import Tensor, nn
from torch.nn.functional import cross_entropy, log_softmax

from . import paper
from .data import Dataset, Loader, Split

GROUPS = ("borderline", "correct", "all")
METRICS = ("loss", "acc", "entropy")


# ----------------------------------------------------------------------------- results


class _Result:
    """``to_dict`` / ``from_dict`` for results made of plain Python values."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        names = {f.name for f in dataclasses.fields(cls)}
        if set(d) != names:
            raise ValueError(f"{cls.__name__}.from_dict: expected keys {sorted(names)}, got {sorted(d)}")
        return cls(**d)


@dataclass
class BlockStats(_Result):
    """Per block and per example: ``cos``, ``ratio`` (n_blocks, B) float32; ``identity`` per block."""

    cos: Tensor
    ratio: Tensor
    identity: list[bool]

    def to_dict(self) -> dict:
        return dict(cos=self.cos.tolist(), ratio=self.ratio.tolist(), identity=list(self.identity))

    @classmethod
    def from_dict(cls, d: dict) -> "BlockStats":
        plain = super().from_dict(d)  # checks the keys
        as_tensor = lambda v: torch.tensor(v, dtype=torch.float32)
        return cls(as_tensor(plain.cos), as_tensor(plain.ratio), list(plain.identity))


@dataclass
class SplitBlockStats(_Result):
    """Per block, over ``n`` examples: mean and standard deviation of the cosine and the l2 ratio."""

    cos_mean: list[float]
    cos_std: list[float]
    ratio_mean: list[float]
    ratio_std: list[float]
    identity: list[bool]
    n: int


@dataclass
class DropOne(_Result):
    """Accuracy and mean loss of the whole network (``baseline``) and with each block dropped
    (``None`` for projection blocks, which cannot be)."""

    baseline: float
    baseline_loss: float
    acc: list[float | None]
    loss: list[float | None]
    n: int


@dataclass
class Swap(_Result):
    """Accuracy and mean loss of the whole network (``baseline``) and with blocks ``i`` and ``i+1``
    run in the opposite order, at index ``i`` (``n_blocks - 1`` pairs; ``None`` where the pair
    cannot be swapped, see ``swappable``)."""

    baseline: float
    baseline_loss: float
    acc: list[float | None]
    loss: list[float | None]
    n: int


@dataclass
class Intermediate(_Result):
    """``acc[k]`` / ``loss[k]``: the head applied to the hidden state after block ``blocks[k]``."""

    blocks: list[int]
    acc: list[float]
    loss: list[float]
    n: int


@dataclass
class Borderline(_Result):
    """``groups[group][metric][k]`` at hidden state ``h_{states[k]}``; groups fixed at ``h_{reference}``."""

    states: list[int]
    reference: int
    margin: float
    groups: dict[str, dict[str, list[float | None]]]
    sizes: dict[str, int]


@dataclass
class Unroll(_Result):
    """Per ``k = 0..steps`` extra applications of the last block: ``groups[group][metric][k]``,
    and the cosine and l2 ratio of the step that produced state ``k`` (means over examples)."""

    steps: int
    scale: float
    margin: float
    groups: dict[str, dict[str, list[float | None]]]
    sizes: dict[str, int]
    cos: list[float]
    ratio: list[float]


@dataclass
class FirstOrder(_Result):
    """Per block, means over examples of the loss change the block makes, measured and predicted.

    ``actual``: ``L(with the block) - L(without it)``; the block's branch removed, i.e. reading
    ``S_i(h_i)`` instead of ``S_i(h_i) + F_i(h_i)`` through the rest of the network.
    ``predicted``: ``F_i(h_i) . dL/dh_i`` (the paper's term: gradient at the block's input,
    through the block; projection blocks use ``dL/du_i``, see the module docstring).
    ``predicted_output``: ``F_i(h_i) . dL/du_i``, the gradient at the block's output (the
    first-order expansion around ``u_i``).
    ``predicted_taylor``: ``F_i(h_i) . grad R_i(S_i(h_i))``, with ``R_i`` the rest of the network
    after block ``i``: the exact first-order Taylor term of ``actual``, so ``actual -
    predicted_taylor`` is the second-order remainder.
    """

    identity: list[bool]
    actual: list[float]
    predicted: list[float]
    predicted_output: list[float]
    predicted_taylor: list[float]
    n: int


# ----------------------------------------------------------------------------- plumbing


@contextlib.contextmanager
def _probing(model: nn.Module, batch_stats: bool = False):
    """Eval mode for the duration; with ``batch_stats`` BatchNorm normalises with each batch's
    statistics and leaves its running statistics untouched. Restores everything on exit."""
    was_training = model.training
    model.eval()
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] if batch_stats else []
    tracked = [m.track_running_stats for m in bns]
    for m in bns:  # training-mode BatchNorm without tracking: batch statistics, no buffer update
        m.train()
        m.track_running_stats = False
    try:
        yield
    finally:
        for m, t in zip(bns, tracked):
            m.track_running_stats = t
        model.train(was_training)


def _post(model: nn.Module, i: int, u: Tensor) -> Tensor:
    """``h_{i+1} = post_i(u_i)``: the transition after block ``i`` (as ``model.run`` applies it)."""
    post = model._post[i]
    return u if post is None else post(u)


def _rest(model: nn.Module, i: int, u: Tensor) -> Tensor:
    """Logits from ``u_i``, the output of block ``i`` before its transition: (B, ...) -> (B, classes)."""
    return model.head(model.run(_post(model, i, u), i + 1))


def _flat(t: Tensor) -> Tensor:
    return t.reshape(len(t), -1).float()  # (B, D)


def _norms(t: Tensor) -> Tensor:
    return _flat(t).norm(dim=1)  # (B,)


def _dots(a: Tensor, b: Tensor) -> Tensor:
    return (_flat(a) * _flat(b)).sum(1)  # (B,)


def _binary_scaled(t: Tensor) -> Tensor:
    """Each example scaled by a power of two so its largest entry lies in [0.5, 1): (B, ...) -> (B, D).

    Exact in floating point, so a cosine of scaled vectors is bitwise the cosine of the originals
    wherever those stay in float32's range; it keeps squares and products out of underflow when
    a gradient is tiny (a saturated softmax: entries near 1e-25 square to 0 in float32, the norm
    reads 0 while the dot product does not, and the cosine read 1e16 on unrolled states)."""
    t = _flat(t)
    exponent = torch.frexp(t.abs().amax(1, keepdim=True)).exponent  # (B, 1); 0 for a zero vector
    return (t.double() * torch.exp2(-exponent.double())).float()  # float64: 2**-e overflows float32 for denormals


def _cos(a: Tensor, b: Tensor) -> Tensor:
    """Per-example cosine in float32, in [-1, 1], 0 where either vector is zero: (B, ...), (B, ...) -> (B,)."""
    a, b = _binary_scaled(a), _binary_scaled(b)
    cos = _dots(a, b) / (_norms(a) * _norms(b)).clamp_min(torch.finfo(torch.float32).tiny)
    return cos.clamp(-1.0, 1.0)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _check_batch(images: Tensor, labels: Tensor | None = None) -> None:
    if not isinstance(images, Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a float tensor (B, C, H, W), got {getattr(images, 'shape', type(images))}")
    if labels is not None and (labels.ndim != 1 or len(labels) != len(images) or labels.is_floating_point()):
        raise ValueError(f"labels must be integer class indices of shape ({len(images)},), got "
                         f"{labels.dtype} {tuple(labels.shape)}")


def _loader(model: nn.Module, data: Dataset, split: str, batch_size: int, device, max_examples: int | None) -> Loader:
    """The evaluation loader of ``split`` (first ``max_examples`` examples) on the probe's device."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    part = getattr(data, split)
    if max_examples is not None:
        if max_examples < 1:
            raise ValueError(f"max_examples must be positive or None, got {max_examples}")
        part = Split(part.images[:max_examples], part.labels[:max_examples])
    dev = torch.device(device) if device is not None else _device(model)
    model.to(dev)
    return Loader(part, data.mean, data.std, batch_size, train=False, device=dev)


def _readable(model: nn.Module, j: int) -> bool:
    """Whether ``model.head`` can read ``h_j`` (see the module docstring)."""
    n = len(model.blocks)
    return j == n or (model.last_stage.start <= j < n and all(b.identity for b in model.blocks[j:]))


@dataclass
class _Trace:
    """One forward and one backward pass: every hidden state, branch, shortcut and gradient."""

    hs: list[Tensor]  # h_0..h_n
    fs: list[Tensor]  # F_i(h_i)
    ss: list[Tensor]  # S_i(h_i)
    grad_in: list[Tensor]  # dL/dh_i, i < n
    grad_out: list[Tensor]  # dL/du_i
    losses: Tensor  # (B,) each example's cross-entropy


def _trace(model: nn.Module, images: Tensor, labels: Tensor) -> _Trace:
    """Walk the residual stream once forward, then backpropagate the summed loss once, to the
    hidden states only (no parameter gradients are computed or stored)."""
    n = len(model.blocks)
    with torch.no_grad():
        h = model.stem(images)
    with torch.enable_grad():
        h = h.detach().requires_grad_()
        hs, fs, ss, us = [h], [], [], []
        for i, block in enumerate(model.blocks):
            s, f = block.skip(h), block.branch(h)
            u = s + f  # u_i, as Block.forward computes it
            h = _post(model, i, u)
            ss.append(s)
            fs.append(f)
            us.append(u)
            hs.append(h)
        losses = cross_entropy(model.head(h).float(), labels, reduction="none")  # (B,)
        grads = torch.autograd.grad(losses.sum(), hs[:n] + us)
    hs, fs, ss = ([t.detach() for t in ts] for ts in (hs, fs, ss))
    return _Trace(hs, fs, ss, list(grads[:n]), list(grads[n:]), losses.detach())


def _identity(model: nn.Module) -> list[bool]:
    return [bool(b.identity) for b in model.blocks]


# ----------------------------------------------------------------------------- 1. cosine and l2 ratio


def block_stats(model: nn.Module, images: Tensor, labels: Tensor) -> BlockStats:
    """Cosine loss and l2 ratio of every block for every example, from one forward and one backward.

    Args:
        images: (B, C, H, W) normalised float batch on the model's device; labels: (B,) int64.

    Returns:
        ``BlockStats`` with ``cos``, ``ratio`` of shape (len(model.blocks), B), in the order of
        ``model.blocks``; projection blocks as the module docstring says.
    """
    _check_batch(images, labels)
    with _probing(model):
        t = _trace(model, images, labels)
    ident = _identity(model)
    cos = [_cos(f, gi if idn else go) for f, gi, go, idn in zip(t.fs, t.grad_in, t.grad_out, ident)]
    ratio = [_norms(f) / _norms(h if idn else s).clamp_min(torch.finfo(torch.float32).tiny)
             for f, h, s, idn in zip(t.fs, t.hs, t.ss, ident)]
    return BlockStats(torch.stack(cos), torch.stack(ratio), ident)  # (n_blocks, B) each


def split_block_stats(model: nn.Module, data: Dataset, split: str = "test", batch_size: int = 250,
                      device=None, max_examples: int | None = None) -> SplitBlockStats:
    """``block_stats`` over a split, reduced to per-block means and standard deviations (Fig. 2, 4)."""
    loader = _loader(model, data, split, batch_size, device, max_examples)
    n_blocks = len(model.blocks)
    sums = torch.zeros(4, n_blocks, dtype=torch.float64, device=loader.device)  # cos, cos^2, ratio, ratio^2
    for x, y in loader:
        s = block_stats(model, x, y)
        c, r = s.cos.double(), s.ratio.double()
        sums += torch.stack([c.sum(1), (c * c).sum(1), r.sum(1), (r * r).sum(1)])
    n = len(loader.labels)
    sums = sums.cpu()  # the one read-back
    mean_c, mean_r = sums[0] / n, sums[2] / n
    std = lambda sq, m: (sq / n - m * m).clamp_min(0).sqrt().tolist()
    return SplitBlockStats(mean_c.tolist(), std(sums[1], mean_c), mean_r.tolist(), std(sums[3], mean_r),
                           _identity(model), n)


# ----------------------------------------------------------------------------- 2. drop-one


def without_block(model: nn.Module, i: int) -> nn.Module:
    """A network sharing ``model``'s modules with block ``i`` removed (``h_{i+1} = h_i``): the
    naive reference that ``drop_one`` is checked and benchmarked against."""
    from .models import ResidualNet, Stage

    if not 0 <= i < len(model.blocks) or not model.blocks[i].identity:
        raise ValueError(f"block {i} cannot be dropped: only identity blocks can (model has {len(model.blocks)} blocks)")
    stages = []
    for (start, stop), stage in zip(model.stage_bounds, model.stages):
        kept = [model.blocks[j] for j in range(start, stop) if j != i]
        if not kept:
            raise ValueError(f"block {i} is the only block of its stage; dropping it would remove the stage")
        stages.append(Stage(kept, stage.post))
    return ResidualNet(model.stem, stages, model.head)


def _drop_one_batch(model: nn.Module, images: Tensor) -> tuple[Tensor, dict[int, Tensor]]:
    """Logits of the whole network and of the network without each identity block, moving one
    prefix state up the network so ``h_i`` is computed once and reused by the drop of block ``i``:
    about ``n^2/2 + n`` block evaluations instead of ``n(n-1)``."""
    h = model.stem(images)
    dropped = {}
    for i, block in enumerate(model.blocks):
        if block.identity:
            dropped[i] = model.head(model.run(h, i, skip=i))  # (B, classes)
        h = model.run(h, i, i + 1)  # h_{i+1}
    return model.head(h), dropped


def _edited_scores(model: nn.Module, loader: Loader, batch: Callable[[nn.Module, Tensor], tuple[Tensor, dict]],
                   valid: list[bool]) -> tuple[float, float, list[float | None], list[float | None], int]:
    """Accuracy and mean loss over ``loader`` of the whole network and of each edited network that
    ``batch(model, x)`` returns logits for, by index (``None`` where ``valid`` is False): the tally
    drop-one and the adjacent swap share. Returns (acc, loss, per-edit accs, per-edit losses, n)."""
    k = len(valid)
    correct = torch.zeros(k + 1, dtype=torch.float64, device=loader.device)  # [k]: whole network
    loss = torch.zeros(k + 1, dtype=torch.float64, device=loader.device)
    with _probing(model):
        for x, y in loader:
            full, edited = batch(model, x)
            for i, logits in [*edited.items(), (k, full)]:
                correct[i] += (logits.argmax(1) == y).sum()
                loss[i] += cross_entropy(logits.float(), y, reduction="sum")
    n = len(loader.labels)
    correct, loss = correct.cpu(), loss.cpu()
    pick = lambda v: [v[i].item() / n if valid[i] else None for i in range(k)]
    return correct[-1].item() / n, loss[-1].item() / n, pick(correct), pick(loss), n


@torch.no_grad()
def drop_one(model: nn.Module, data: Dataset, split: str = "test", batch_size: int = 250, device=None,
             max_examples: int | None = None) -> DropOne:
    """Accuracy with each identity block removed, all else unchanged (Fig. 3)."""
    loader = _loader(model, data, split, batch_size, device, max_examples)
    return DropOne(*_edited_scores(model, loader, _drop_one_batch, _identity(model)))


# ----------------------------------------------------------------------------- 2b. adjacent swap


def swappable(model: nn.Module, i: int) -> bool:
    """Whether blocks ``i`` and ``i+1`` can run in the opposite order: both identity blocks (one
    shape in and out) with no transition between them (the same stage)."""
    blocks = model.blocks
    return 0 <= i < len(blocks) - 1 and blocks[i].identity and blocks[i + 1].identity and model._post[i] is None


def with_swap(model: nn.Module, i: int) -> nn.Module:
    """A network sharing ``model``'s modules with blocks ``i`` and ``i+1`` reordered: the naive
    reference that ``swap_adjacent`` is checked against."""
    from .models import ResidualNet, Stage

    if not swappable(model, i):
        raise ValueError(f"blocks {i} and {i + 1} cannot be swapped: both must be identity blocks of one stage "
                         f"(model has {len(model.blocks)} blocks)")
    stages = []
    for (start, stop), stage in zip(model.stage_bounds, model.stages):
        order = list(range(start, stop))
        if start <= i < stop:
            order[i - start], order[i + 1 - start] = i + 1, i
        stages.append(Stage([model.blocks[j] for j in order], stage.post))
    return ResidualNet(model.stem, stages, model.head)


def _swap_batch(model: nn.Module, images: Tensor) -> tuple[Tensor, dict[int, Tensor]]:
    """Logits of the whole network and of the network with each swappable pair ``(i, i+1)`` reordered,
    reusing the prefix state ``h_i`` as ``_drop_one_batch`` does."""
    h = model.stem(images)
    swapped = {}
    for i in range(len(model.blocks)):
        if swappable(model, i):
            g = model.blocks[i](model.blocks[i + 1](h))  # block i+1 first, then block i: h_i -> h'_{i+2}
            swapped[i] = model.head(model.run(_post(model, i + 1, g), i + 2))  # (B, classes)
        h = model.run(h, i, i + 1)  # h_{i+1}
    return model.head(h), swapped


@torch.no_grad()
def swap_adjacent(model: nn.Module, data: Dataset, split: str = "test", batch_size: int = 250, device=None,
                  max_examples: int | None = None) -> Swap:
    """Accuracy and loss with every adjacent pair of blocks run in the opposite order, all else
    unchanged (beyond the paper: Lad et al. 2024 swap adjacent layers of language models). A
    network whose blocks each make a small refinement of one shared representation barely notices;
    one whose blocks build on each other's output does."""
    loader = _loader(model, data, split, batch_size, device, max_examples)
    pairs = [swappable(model, i) for i in range(len(model.blocks) - 1)]
    return Swap(*_edited_scores(model, loader, _swap_batch, pairs))


# ----------------------------------------------------------------------------- 3. intermediate accuracy


@torch.no_grad()
def intermediate_accuracy(model: nn.Module, data: Dataset, split: str = "test", batch_size: int = 250,
                          device=None, max_examples: int | None = None) -> Intermediate:
    """The final head applied to the hidden state *after* every block of the last stage (Fig. 5).

    ``blocks`` lists the indices ``i`` in ``model.blocks`` of the last stage; ``acc[k]`` is the
    accuracy of ``model.head(h_{blocks[k]+1})``, so the last entry is the network's own accuracy.
    """
    blocks = list(model.last_stage)
    bad = [i for i in blocks if not _readable(model, i + 1)]
    if bad:
        raise ValueError(f"the head cannot read the output of blocks {bad} (a projection block follows them)")
    loader = _loader(model, data, split, batch_size, device, max_examples)
    correct = torch.zeros(len(blocks), dtype=torch.float64, device=loader.device)
    loss = torch.zeros(len(blocks), dtype=torch.float64, device=loader.device)
    with _probing(model):
        for x, y in loader:
            h = model.run(model.stem(x), 0, blocks[0])
            for k, i in enumerate(blocks):
                h = model.run(h, i, i + 1)
                logits = model.head(h).float()
                correct[k] += (logits.argmax(1) == y).sum()
                loss[k] += cross_entropy(logits, y, reduction="sum")
    n = len(loader.labels)
    return Intermediate(blocks, (correct / n).tolist(), (loss / n).tolist(), n)


def intermediate_accuracy_callback(data: Dataset, split: str = "test", max_examples: int | None = 1000,
                                   batch_size: int = 250) -> Callable[[int, nn.Module, dict], None]:
    """A ``train`` callback storing ``record["intermediate_acc"]`` (a list over the last stage's blocks)."""

    def callback(epoch: int, model: nn.Module, record: dict) -> None:
        record["intermediate_acc"] = intermediate_accuracy(model, data, split, batch_size,
                                                           max_examples=max_examples).acc

    return callback


# ----------------------------------------------------------------------------- 4. borderline examples


def borderline_groups(probs: Tensor, labels: Tensor, margin: float = paper.BORDERLINE_MARGIN) -> tuple[Tensor, Tensor]:
    """The paper's borderline rule on probability vectors: (B, classes), (B,) -> two (B,) bool masks.

    With ``gap = p[label] - max over the other classes of p``, the prediction is correct when
    ``gap > 0``. An example is *borderline* when ``|gap| < margin``: moving less than ``margin``
    of probability between the correct class and its strongest rival flips the prediction to or
    from the correct class. It is *correct* (confidently, and disjoint from borderline) when
    ``gap >= margin``. Examples with ``gap <= -margin`` are in neither group (only in "all").
    """
    if not 0 < margin < 1:
        raise ValueError(f"margin must be in (0, 1), got {margin}")
    p_true = probs.gather(1, labels[:, None]).squeeze(1)  # (B,)
    rival = probs.scatter(1, labels[:, None], float("-inf")).amax(1)  # (B,)
    gap = p_true - rival
    return gap.abs() < margin, gap >= margin


class _GroupMeter:
    """Sums of loss, accuracy and entropy per group and per state; groups fixed per example."""

    def __init__(self, n_states: int, device: torch.device):
        self.sums = torch.zeros(len(GROUPS), len(METRICS), n_states, dtype=torch.float64, device=device)
        self.sizes = torch.zeros(len(GROUPS), dtype=torch.float64, device=device)

    def groups(self, logits: Tensor, labels: Tensor, margin: float) -> Tensor:
        """Fix the groups of a batch at these logits: (B, classes) -> (3, B) bool, in ``GROUPS`` order."""
        border, correct = borderline_groups(torch.softmax(logits.float(), 1), labels, margin)
        masks = torch.stack([border, correct, torch.ones_like(border)])
        self.sizes += masks.sum(1).double()
        return masks

    def add(self, state: int, logits: Tensor, labels: Tensor, masks: Tensor) -> None:
        logp = log_softmax(logits.float(), 1)  # (B, classes)
        values = torch.stack([-logp.gather(1, labels[:, None]).squeeze(1),  # loss
                              (logits.argmax(1) == labels).float(),  # accuracy
                              -(logp.exp() * logp).sum(1)])  # entropy, nats: (3, B)
        self.sums[:, :, state] += masks.double() @ values.double().T  # (groups, metrics)

    def result(self) -> tuple[dict, dict]:
        """``groups[group][metric]`` per state (None for an empty group), and the group sizes."""
        sums, sizes = self.sums.cpu(), self.sizes.cpu().tolist()
        groups = {name: {m: [v / sizes[g] if sizes[g] else None for v in sums[g, k].tolist()]
                         for k, m in enumerate(METRICS)} for g, name in enumerate(GROUPS)}
        return groups, {name: int(sizes[g]) for g, name in enumerate(GROUPS)}


@torch.no_grad()
def borderline(model: nn.Module, data: Dataset, split: str = "test", last: int = 5,
               margin: float = paper.BORDERLINE_MARGIN, batch_size: int = 250, device=None,
               max_examples: int | None = None) -> Borderline:
    """Loss, accuracy and entropy of the borderline, correct and all groups over the last blocks (Fig. 6).

    Reads ``h_j`` for ``j = n-last .. n`` (the input of each of the last ``last`` blocks, then the
    network's output: ``last + 1`` states) with the final head. The groups are fixed once, per
    example, by ``borderline_groups`` at the first of them, ``h_{n-last}``, so the curves show
    what the last blocks do to the examples that were borderline (or correct) before them.
    """
    n = len(model.blocks)
    if not 1 <= last <= n or not _readable(model, n - last):
        raise ValueError(f"last={last}: the head cannot read h_{n - last}; the last stage after its projection "
                         f"has {n - next(j for j in range(n + 1) if _readable(model, j))} blocks")
    loader = _loader(model, data, split, batch_size, device, max_examples)
    states = list(range(n - last, n + 1))
    meter = _GroupMeter(len(states), loader.device)
    with _probing(model):
        for x, y in loader:
            h = model.run(model.stem(x), 0, states[0])
            logits = model.head(h)
            masks = meter.groups(logits, y, margin)
            meter.add(0, logits, y, masks)
            for k, j in enumerate(states[1:], start=1):
                h = model.run(h, j - 1, j)
                meter.add(k, model.head(h), y, masks)
    groups, sizes = meter.result()
    return Borderline(states, states[0], margin, groups, sizes)


# ----------------------------------------------------------------------------- 5. unrolling


def _unroll_steps(model: nn.Module, images: Tensor, labels: Tensor, steps: int, scale: float
                  ) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Yield ``(logits, cos, ratio)`` for ``k = 0..steps`` extra applications of the last block.

    With ``v_0 = h_{n-1}``: ``v_1 = v_0 + F(v_0)`` is the network's own last block (bitwise as
    ``Block.forward`` computes it), then ``v_{k+1} = v_k + scale * F(v_k)``; the logits of step
    ``k`` are ``head(post(v_{k+1}))``. The step's cosine is ``cos(F(v_k), dL_k/dv_k)`` with
    ``L_k`` the loss read right after the step (so ``k = 0`` is the last block's ``block_stats``
    cosine), and its ratio ``|c F(v_k)| / |v_k|`` with ``c`` the factor applied (1 for ``k = 0``).
    """
    n = len(model.blocks)
    last = model.blocks[-1]
    with torch.no_grad():
        v = model.run(model.stem(images), 0, n - 1)  # h_{n-1}
    for k in range(steps + 1):
        with torch.enable_grad():
            v = v.detach().requires_grad_()
            f = last.branch(v)
            nxt = v + f if k == 0 else v + scale * f
            logits = _rest(model, n - 1, nxt)  # (B, classes); run() from n adds only the head
            grad, = torch.autograd.grad(cross_entropy(logits.float(), labels, reduction="sum"), v)
        c = 1.0 if k == 0 else abs(scale)
        yield logits.detach(), _cos(f.detach(), grad), c * _norms(f.detach()) / _norms(v.detach())
        v = nxt.detach()


def unroll(model: nn.Module, data: Dataset, split: str = "test", steps: int = paper.UNROLL_STEPS, scale: float = 1.0,
           margin: float = paper.BORDERLINE_MARGIN, batch_size: int = 250, device=None,
           max_examples: int | None = None) -> Unroll:
    """Apply the last block ``k = 0..steps`` extra times, its branch scaled by ``scale`` (Fig. 7).

    The extra steps are ``h <- h + scale * F(h)`` (``scale = 1``: plain unrolling; a smaller one
    keeps the activations from growing); ``k = 0`` is the unmodified network, exactly. The
    borderline / correct / all groups are fixed per example by ``borderline_groups`` on the
    unmodified network's output (``k = 0``). See ``_unroll_steps`` for the per-step cosine and ratio.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale}")
    if not model.blocks[-1].identity:
        raise ValueError("the last block projects; only an identity block can be unrolled")
    loader = _loader(model, data, split, batch_size, device, max_examples)
    meter = _GroupMeter(steps + 1, loader.device)
    cos = torch.zeros(steps + 1, dtype=torch.float64, device=loader.device)
    ratio = torch.zeros(steps + 1, dtype=torch.float64, device=loader.device)
    with _probing(model):
        for x, y in loader:
            masks = None
            for k, (logits, c, r) in enumerate(_unroll_steps(model, x, y, steps, scale)):
                masks = meter.groups(logits, y, margin) if k == 0 else masks
                meter.add(k, logits, y, masks)
                cos[k] += c.double().sum()
                ratio[k] += r.double().sum()
    n = len(loader.labels)
    groups, sizes = meter.result()
    return Unroll(steps, scale, margin, groups, sizes, (cos / n).cpu().tolist(), (ratio / n).cpu().tolist())


# ----------------------------------------------------------------------------- 6. diagnostics


def gradient_norm_ratio(model: nn.Module, images: Tensor, labels: Tensor, batch_stats: bool = False) -> float:
    """``|dL/dh_1| / |dL/dh_{1+2n}|`` (PAPER.md's 1-based indices; Fig. 8 right): the gradient at
    the input of the first block against the input of the first block of the last stage, norms
    over the whole batch (``L`` summed). 1.0 for a single-stage network."""
    _check_batch(images, labels)
    with _probing(model, batch_stats):
        t = _trace(model, images, labels)
    return (t.grad_in[0].float().norm() / t.grad_in[model.last_stage.start].float().norm()).item()


@torch.no_grad()
def activation_norms(model: nn.Module, images: Tensor, batch_stats: bool = False) -> list[float]:
    """Mean per-example l2 norm of every hidden state ``h_0..h_n`` (``n + 1`` values; Fig. 8, 9)."""
    _check_batch(images)
    with _probing(model, batch_stats):
        h = model.stem(images)
        norms = [_norms(h).mean()]
        for i in range(len(model.blocks)):
            h = model.run(h, i, i + 1)
            norms.append(_norms(h).mean())
    return torch.stack(norms).tolist()


def diagnostics_callback(images: Tensor, labels: Tensor, batch_stats: bool = False
                         ) -> Callable[[int, nn.Module, dict], None]:
    """A ``train`` callback storing ``record["grad_ratio"]`` and ``record["act_norms"]`` on a fixed
    normalised batch (e.g. the first batch of ``data.Loader(..., train=False)``)."""
    _check_batch(images, labels)

    def callback(epoch: int, model: nn.Module, record: dict) -> None:
        dev = _device(model)
        x, y = images.to(dev), labels.to(dev)
        record["grad_ratio"] = gradient_norm_ratio(model, x, y, batch_stats)
        record["act_norms"] = activation_norms(model, x, batch_stats)

    return callback


# ----------------------------------------------------------------------------- 7. first-order check


def first_order(model: nn.Module, data: Dataset, split: str = "test", batch_size: int = 250, device=None,
                max_examples: int | None = None) -> FirstOrder:
    """The Taylor argument of Section 3 checked block by block (see ``FirstOrder``).

    One traced pass gives ``F_i``, ``dL/dh_i`` and ``dL/du_i`` for every block; then, per block,
    one forward and backward of the rest of the network from ``S_i(h_i)`` gives the loss without
    the block and its gradient there. Projection blocks are measured against their shortcut
    (removing the branch only), as everywhere in this module.
    """
    loader = _loader(model, data, split, batch_size, device, max_examples)
    n_blocks = len(model.blocks)
    ident = _identity(model)
    sums = torch.zeros(4, n_blocks, dtype=torch.float64, device=loader.device)  # the four FirstOrder rows
    with _probing(model):
        for x, y in loader:
            t = _trace(model, x, y)
            for i in range(n_blocks):
                f = t.fs[i]
                with torch.enable_grad():
                    s = t.ss[i].detach().requires_grad_()
                    skipped = cross_entropy(_rest(model, i, s).float(), y, reduction="none")  # (B,)
                    grad, = torch.autograd.grad(skipped.sum(), s)
                g_paper = t.grad_in[i] if ident[i] else t.grad_out[i]
                rows = [t.losses - skipped.detach(), _dots(f, g_paper), _dots(f, t.grad_out[i]), _dots(f, grad)]
                sums[:, i] += torch.stack(rows).double().sum(1)
    n = len(loader.labels)
    actual, pred, pred_out, taylor = (sums / n).cpu().tolist()
    return FirstOrder(ident, actual, pred, pred_out, taylor, n)
