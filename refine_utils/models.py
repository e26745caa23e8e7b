"""The paper's architectures as one residual-stream structure.

A network is ``stem -> stages of blocks -> head``. Every residual block maps

    h_{i+1} = S_i(h_i) + F_i(h_i)

where ``F_i`` is the pre-activation residual branch (BN -> ReLU -> conv3x3 -> BN -> ReLU ->
conv3x3) and ``S_i`` is the shortcut: the identity for an *identity block* (same shape in and
out) and a 1x1 convolution ``P`` for a *projection block* (channels change and/or stride 2).
Only identity blocks can be dropped or unrolled; ``Block.identity`` says which is which.

``h_i`` is the input of ``model.blocks[i]``. Transitions that are not residual blocks (the 2x2
average pool between the stages of ``avg-pooling``) run after the last block of their stage,
so ``model.run(h, start, stop)`` moves a hidden state through any range of blocks and
``model.head`` reads the final classifier off any hidden state of the last stage.

Which blocks project (all others are identity blocks):

- ``resnet{32,38,56,110,146,182}``: the first block of stages 2 and 3 (16->32 and 32->64
  channels, stride 2);
- ``single-representation`` and ``avg-pooling``: none (the stem sets the width; ``avg-pooling``
  downsamples with its pools, not with blocks);
- ``wide``: the first block of every stage (16->160 at stride 1, 160->320 and 320->640 at
  stride 2).

- ``vit``: none. Beyond the paper, a pre-LayerNorm vision transformer (``ViTConfig``) is the same
  structure: the stem embeds 4x4 patches (64 tokens), every attention sub-block and every MLP
  sub-block is one identity step ``h_{i+1} = h_i + F_i(h_i)`` on (B, 64, D) tokens, all in one
  stage, and the head (final LayerNorm, mean over tokens, linear) reads any ``h_i``.
  ``Block.kind`` says what a step's branch is ("conv", "attention" or "mlp").

Parameter conventions follow the paper (Keras-style): every convolution has a bias, He-normal
initialisation, zero biases. ``count_parameters`` reproduces PAPER.md's counts to the unit.

Block sharing (Section 4.5) is an option of the same structure: from the 6th block of every
stage on, blocks reuse the 6th block's convolutions (``Sharing``), and BatchNorm is shared or
per step as the ablation asks. A shared module appears several times in ``model.blocks`` but
its parameters once in ``model.parameters()``.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import nn


class Block(nn.Module):
    """Pre-activation residual block ``h -> S(h) + F(h)``.

    Args:
        c_in: channels of ``h_i``.
        c_out: channels of ``h_{i+1}``.
        stride: 2 to halve the resolution (then the shortcut is a strided 1x1 convolution).
    """

    kind = "conv"  # what the branch computes (the ViT's steps are "attention" or "mlp")

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=True)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=True)
        # The projection P is a strided 1x1 convolution, computed as subsample-then-1x1 (the same
        # numbers): torch 2.14.1's CPU backward of a strided 1x1 convolution on channels_last
        # inputs corrupts the heap for 4-15 input channels (reduced widths) at some batch sizes.
        self.stride = stride
        self.shortcut = None if (c_in == c_out and stride == 1) else nn.Conv2d(c_in, c_out, 1, bias=True)

    @property
    def identity(self) -> bool:
        """True when input and output share a shape (the block can be dropped or unrolled)."""
        return self.shortcut is None

    def branch(self, h: torch.Tensor) -> torch.Tensor:
        """The residual branch ``F(h)``: (B, c_in, H, W) -> (B, c_out, H/stride, W/stride)."""
        f = self.conv1(torch.relu(self.bn1(h)))
        return self.conv2(torch.relu(self.bn2(f)))

    def skip(self, h: torch.Tensor) -> torch.Tensor:
        """The shortcut ``S(h)``: ``h`` itself, or its strided 1x1 projection ``P(h)``."""
        if self.shortcut is None:
            return h
        return self.shortcut(h[:, :, ::self.stride, ::self.stride])  # (B, c_in, H/s, W/s) -> (B, c_out, H/s, W/s)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.skip(h) + self.branch(h)


class Stage(nn.Module):
    """A run of blocks at one resolution, followed by an optional transition (e.g. a pool)."""

    def __init__(self, blocks: list[Block], post: nn.Module | None = None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.post = post if post is not None else nn.Identity()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = block(h)
        return self.post(h)


class Head(nn.Module):
    """BN -> ReLU -> AvgPool(8, stride 8) -> Flatten -> Linear (logits; softmax is in the loss)."""

    def __init__(self, channels: int, size: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.pool = nn.AvgPool2d(8, stride=8)
        self.fc = nn.Linear(channels * (size // 8) ** 2, num_classes)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = self.pool(torch.relu(self.bn(h)))  # (B, C, size/8, size/8)
        return self.fc(z.flatten(1))  # (B, num_classes)


class ResidualNet(nn.Module):
    """``stem -> stages -> head``, with the flat list of residual blocks in forward order."""

    def __init__(self, stem: nn.Module, stages: list[Stage], head: Head):
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head = head
        # Flat views (plain lists, not registered again): block i, and what runs after it.
        self.blocks: list[Block] = [b for s in stages for b in s.blocks]
        self._post: list[nn.Module | None] = []
        for s in stages:
            self._post += [None] * (len(s.blocks) - 1) + [s.post]

    @property
    def stage_bounds(self) -> list[tuple[int, int]]:
        """``[(start, stop), ...]``: the block indices of each stage in ``model.blocks``."""
        bounds, start = [], 0
        for s in self.stages:
            bounds.append((start, start + len(s.blocks)))
            start += len(s.blocks)
        return bounds

    @property
    def last_stage(self) -> range:
        """Indices of the blocks of the last stage, whose hidden states the head can read."""
        return range(*self.stage_bounds[-1])

    def run(self, h: torch.Tensor, start: int = 0, stop: int | None = None, skip: int | None = None) -> torch.Tensor:
        """Move ``h_start`` through blocks ``start..stop-1`` (leaving out block ``skip``) to ``h_stop``."""
        stop = len(self.blocks) if stop is None else stop
        for i in range(start, stop):
            if i != skip:
                h = self.blocks[i](h)
            post = self._post[i]
            if post is not None:
                h = post(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.run(self.stem(x)))


#: Image side in pixels: CIFAR's (the digits of ``smoke`` are resized to it).
IMAGE_SIZE = 32


# ----------------------------------------------------------------------------- sharing


@dataclass(frozen=True)
class Sharing:
    """How blocks ``first..`` of every stage reuse the convolutions of block ``first`` (0-based).

    Args:
        first: index within the stage of the block whose weights are reused (5: the 6th block).
        stats: ``"shared"`` one set of BatchNorm running statistics for all steps, or
            ``"per_step"`` each step keeps its own.
        affine: ``"shared"`` or ``"per_step"`` BatchNorm gamma/beta.
        gamma: initial BatchNorm gamma of the shared steps (the paper's fix uses 0.1).
    """

    first: int = 5
    stats: str = "shared"
    affine: str = "shared"
    gamma: float = 1.0

    def __post_init__(self):
        for field in ("stats", "affine"):
            if getattr(self, field) not in ("shared", "per_step"):
                raise ValueError(f"Sharing.{field} must be 'shared' or 'per_step', got {getattr(self, field)!r}")
        if self.stats == "shared" and self.affine == "per_step":
            raise ValueError("per-step gamma/beta with shared running statistics is not a paper variant")


def _shared_step(source: Block, sharing: Sharing) -> Block:
    """A block that reuses ``source``'s convolutions, with BatchNorm as ``sharing`` says."""
    if sharing.stats == "shared":
        return source  # naive sharing: the very same module, BatchNorm included
    step = Block(source.conv1.in_channels, source.conv2.out_channels)
    step.conv1, step.conv2 = source.conv1, source.conv2  # one set of convolution weights
    if sharing.affine == "shared":  # same Parameter objects, separate running buffers
        step.bn1.weight, step.bn1.bias = source.bn1.weight, source.bn1.bias
        step.bn2.weight, step.bn2.bias = source.bn2.weight, source.bn2.bias
    return step


def _share(blocks: list[Block], sharing: Sharing) -> list[Block]:
    """Replace blocks ``first+1..`` of one stage by steps that reuse block ``first``."""
    if len(blocks) <= sharing.first:
        return blocks
    source = blocks[sharing.first]
    shared = [source] + [_shared_step(source, sharing) for _ in blocks[sharing.first + 1:]]
    if sharing.gamma != 1.0:
        for step in shared:
            nn.init.constant_(step.bn1.weight, sharing.gamma)
            nn.init.constant_(step.bn2.weight, sharing.gamma)
    return blocks[: sharing.first] + shared


# ----------------------------------------------------------------------------- builders


def _c(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def _init(model: nn.Module) -> None:
    """He-normal weights (fan-in, ReLU gain) and zero biases for every conv and linear layer."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(m.bias)


def _net(stem_out: int, stage_specs: list[tuple[list[Block], nn.Module | None]], size: int, num_classes: int,
         sharing: Sharing | None = None, in_channels: int = 3) -> ResidualNet:
    stem = nn.Conv2d(in_channels, stem_out, 3, padding=1, bias=True)
    stages = []
    for blocks, post in stage_specs:
        stages.append(Stage(_share(blocks, sharing) if sharing else blocks, post))
    last = stage_specs[-1][0][-1].conv2.out_channels
    model = ResidualNet(stem, stages, Head(last, size, num_classes))
    _init(model)  # convolutions and the classifier; BatchNorm keeps the gamma set by _share
    return model


def resnet(n: int, num_classes: int = 10, width: float = 1.0, sharing: Sharing | None = None) -> ResidualNet:
    """ResNet-(6n+2): 3 stages of ``n`` blocks, widths 16/32/64 at 32/16/8 pixels."""
    w = [_c(c, width) for c in (16, 32, 64)]
    stages, c_in = [], w[0]
    for k, c in enumerate(w):
        stride = 1 if k == 0 else 2
        blocks = [Block(c_in, c, stride)] + [Block(c, c) for _ in range(n - 1)]
        stages.append((blocks, None))
        c_in = c
    return _net(w[0], stages, size=8, num_classes=num_classes, sharing=sharing)


def single_representation(num_classes: int = 10, width: float = 1.0) -> ResidualNet:
    """10 blocks of width 100 at 32x32; the head's 8x8 pool leaves 4x4x100 features."""
    c = _c(100, width)
    return _net(c, [([Block(c, c) for _ in range(10)], None)], size=32, num_classes=num_classes)


def avg_pooling(num_classes: int = 10, width: float = 1.0) -> ResidualNet:
    """3 stages of 10 blocks of width 150; a 2x2 average pool after stages 1 and 2."""
    c = _c(150, width)
    stages = [([Block(c, c) for _ in range(10)], nn.AvgPool2d(2)) for _ in range(2)]
    stages.append(([Block(c, c) for _ in range(10)], None))
    return _net(c, stages, size=8, num_classes=num_classes)


def wide(num_classes: int = 10, width: float = 1.0) -> ResidualNet:
    """Widths 160/320/640: 4 blocks (the first projects 16->160), then 2 x (downsample + 4)."""
    stem = _c(16, width)
    w = [_c(c, width) for c in (160, 320, 640)]
    stages = [([Block(stem, w[0])] + [Block(w[0], w[0]) for _ in range(3)], None)]
    for c_in, c in zip(w, w[1:]):
        stages.append(([Block(c_in, c, 2)] + [Block(c, c) for _ in range(4)], None))
    return _net(stem, stages, size=8, num_classes=num_classes)


# ----------------------------------------------------------------------------- vision transformer


@dataclass(frozen=True)
class ViTConfig:
    """The ``vit`` architecture: a pre-LayerNorm vision transformer for 32x32 images.

    Args:
        dim: embedding dimension at width 1 (``width`` scales it, rounded to a multiple of ``heads``).
        depth: transformer blocks; each is two residual steps, attention then MLP.
        heads: attention heads.
        mlp_ratio: hidden units of the MLP per embedding dimension.
        patch: patch side in pixels (4: 8x8 = 64 tokens).
    """

    dim: int = 96
    depth: int = 9
    heads: int = 3
    mlp_ratio: int = 4
    patch: int = 4

    @property
    def tokens(self) -> int:
        """Tokens per image (one per patch of a 32x32 image)."""
        return (IMAGE_SIZE // self.patch) ** 2


class PatchEmbed(nn.Module):
    """The ViT's stem: non-overlapping patches, linearly embedded, plus a learned position embedding."""

    def __init__(self, dim: int, patch: int, size: int = IMAGE_SIZE, in_channels: int = 3):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch, stride=patch, bias=True)  # one linear map per patch
        self.pos = nn.Parameter(torch.zeros(1, (size // patch) ** 2, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.proj(x)  # (B, 3, 32, 32) -> (B, D, 8, 8)
        return z.permute(0, 2, 3, 1).flatten(1, 2) + self.pos  # (B, 64, D), tokens in raster order


class _TokenStep(nn.Module):
    """A residual step on tokens, ``h -> h + F(h)`` with ``F = f(LayerNorm(h))`` (pre-LN): the
    same interface as ``Block`` (``identity``, ``branch``, ``skip``), always an identity step."""

    identity = True

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def skip(self, h: torch.Tensor) -> torch.Tensor:
        return h

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.skip(h) + self.branch(h)


class Attention(_TokenStep):
    """Multi-head self-attention step: ``F(h) = proj(softmax(q k^T / sqrt(d)) v)`` over ``LN(h)``."""

    kind = "attention"

    def __init__(self, dim: int, heads: int):
        super().__init__(dim)
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def branch(self, h: torch.Tensor) -> torch.Tensor:
        b, t, d = h.shape
        qkv = self.qkv(self.norm(h)).reshape(b, t, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # 3 x (B, heads, T, d/heads)
        a = nn.functional.scaled_dot_product_attention(q, k, v)  # (B, heads, T, d/heads)
        return self.proj(a.transpose(1, 2).reshape(b, t, d))  # (B, T, D)


class MLP(_TokenStep):
    """Position-wise MLP step: ``F(h) = W2 GELU(W1 LN(h))``."""

    kind = "mlp"

    def __init__(self, dim: int, hidden: int):
        super().__init__(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def branch(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc2(nn.functional.gelu(self.fc1(self.norm(h))))  # (B, T, D) -> (B, T, D)


class TokenHead(nn.Module):
    """The ViT's classifier: final LayerNorm -> mean over tokens -> Linear. It reads any ``h_i``."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(h).mean(1))  # (B, T, D) -> (B, D) -> (B, num_classes)


def vit(num_classes: int = 10, width: float = 1.0, cfg: ViTConfig = ViTConfig()) -> ResidualNet:
    """The ViT as a residual stream: one stage of ``2 * depth`` steps, attention and MLP alternating.

    At width 1 (``ViTConfig()``: dim 96, 9 blocks, 3 heads of 32, MLP 384, 18 residual steps) it has
    1,018,570 trainable parameters for 10 classes (``tests/test_vit.py``). The size was chosen by
    measurement: one float32 AdamW step at batch 128 on one CPU thread takes 0.66-0.69 s of CPU time,
    0.78x ResNet-110's SGD step at width 0.5 (0.85-0.88 s; 0.58-0.80x in wall time over three runs
    with both cores busy); dim 128 with 8 blocks and MLP ratio 2 (1.08M) took 0.72-0.88x. Initialisation follows the usual ViT
    recipe: linear and patch weights truncated-normal with std 0.02, zero biases, LayerNorm 1 and 0,
    position embedding truncated-normal with std 0.02.
    """
    dim = cfg.heads * max(1, round(cfg.dim * width / cfg.heads))
    steps = []
    for _ in range(cfg.depth):
        steps += [Attention(dim, cfg.heads), MLP(dim, cfg.mlp_ratio * dim)]
    model = ResidualNet(PatchEmbed(dim, cfg.patch), [Stage(steps)], TokenHead(dim, num_classes))
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
    nn.init.trunc_normal_(model.stem.pos, std=0.02)
    return model


NAIVE = Sharing()
UBN = Sharing(stats="per_step", affine="per_step", gamma=0.1)

#: Every architecture name ``build`` accepts, mapped to its constructor.
ARCHS = {
    "resnet32": lambda **kw: resnet(5, **kw),
    "resnet38": lambda **kw: resnet(6, **kw),
    "resnet56": lambda **kw: resnet(9, **kw),
    "resnet110": lambda **kw: resnet(18, **kw),
    "resnet146": lambda **kw: resnet(24, **kw),
    "resnet182": lambda **kw: resnet(30, **kw),
    "single-representation": single_representation,
    "avg-pooling": avg_pooling,
    "wide": wide,
    # Section 4.5 / Fig. 8-9 / Table 1: shared blocks.
    "resnet110-shared": lambda **kw: resnet(18, sharing=NAIVE, **kw),
    "resnet110-shared-stats": lambda **kw: resnet(18, sharing=Sharing(stats="per_step"), **kw),
    "resnet110-shared-stats-gamma": lambda **kw: resnet(18, sharing=Sharing(stats="per_step", gamma=0.1), **kw),
    "resnet110-ubn": lambda **kw: resnet(18, sharing=UBN, **kw),
    "resnet146-ubn": lambda **kw: resnet(24, sharing=UBN, **kw),
    "resnet182-ubn": lambda **kw: resnet(30, sharing=UBN, **kw),
    # Beyond the paper: a vision transformer, its attention and MLP steps one residual stream.
    "vit": vit,
}

#: The four architectures of Figures 2-4, in the paper's order.
FIGURE_ARCHS = ("single-representation", "avg-pooling", "resnet110", "wide")
#: Fig. 9's ablation, from naive sharing to the full fix, each step adding one change.
ABLATION = {"resnet110-shared": "naive sharing", "resnet110-shared-stats": "+ per-step BN statistics",
            "resnet110-shared-stats-gamma": "+ γ initialised to 0.1", "resnet110-ubn": "+ per-step γ/β (UBN)"}


def build(arch: str, num_classes: int = 10, width: float = 1.0) -> ResidualNet:
    """Build ``arch`` (a key of ``ARCHS``) for ``num_classes`` classes, channels scaled by ``width``."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHS)}")
    if not (width > 0 and math.isfinite(width)):
        raise ValueError(f"width must be a positive number, got {width!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes!r}")
    return ARCHS[arch](num_classes=num_classes, width=width)


@functools.lru_cache(maxsize=None)
def train_flops(arch: str, width: float = 1.0) -> float:
    """FLOPs of one training step per image (convolutions and the linear layer, forward and
    backward), counted on a meta-device model: no memory, no arithmetic."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = build(arch, width=width)
        x, y = torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / 2


def count_parameters(model: nn.Module, with_bn_stats: bool = False) -> int:
    """Trainable parameters (each shared tensor once); with BatchNorm running mean and variance
    added when ``with_bn_stats`` (the convention of the paper's headline counts)."""
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if with_bn_stats:
        bns = {id(m): m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
        n += sum(m.running_mean.numel() + m.running_var.numel() for m in bns.values())
    return n
