"""Datasets as uint8 tensors, and batches drawn and augmented on the training device.

Three sources, one format (``Dataset``: uint8 images (N, 3, 32, 32), int64 labels):

- ``digits``: the offline default. scikit-learn's 8x8 handwritten digits (they ship inside the
  package), upsampled to 32x32 and repeated over 3 channels so every architecture runs on them
  unchanged, with a fixed stratified split (``DIGITS_TEST`` test images).
- ``cifar10`` / ``cifar100``: from ``<data_dir>/<name>/{train,test}.npz`` if present, else
  torchvision's extracted batches in ``<data_dir>``, else torchvision's download (which checks
  the archive's MD5) when ``download=True``. Offline with neither, ``DatasetMissing`` says
  where to put the files.
- ``cifar10-10k``: a class-balanced 10k subset of CIFAR-10's training set (``SUBSET_RULE``) with
  the full test set: ``cifar10/train_10k.npz`` + ``test.npz`` (the project's shared development
  copy), else drawn from the full CIFAR-10 found as above, so any machine with CIFAR-10 gets the
  same 10,000 images.

The data directory is the ``data_dir`` argument, else ``$REFINE_DATA_DIR``, else ``./data``.

``Loader`` keeps a split on the device and yields normalised float batches; when training it
shuffles with a device permutation and applies the paper's augmentation (random horizontal
flip, random translation by up to 4 pixels with zero padding) as batched tensor ops. Each
epoch's draws come from ``seed`` and the epoch number alone, so a resumed run sees the same
batches as an uninterrupted one.
"""
from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DATASETS = ("digits", "cifar10", "cifar10-10k", "cifar100")
DIGITS_TEST = 500
#: Test examples of each dataset (CIFAR's test sets: 10,000 images; cifar10-10k keeps the full one).
TEST_EXAMPLES = {"digits": DIGITS_TEST, "cifar10": 10_000, "cifar10-10k": 10_000, "cifar100": 10_000}
PAD = 4

# Per-channel statistics of each training set on the 0-1 scale (CIFAR: the official figures).
STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


#: The dataset each name draws its images from (what results records call their "dataset").
SOURCE = {"cifar10-10k": "cifar10"}
#: How figure captions name each dataset.
LABELS = {"digits": "digits (scikit-learn)", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
          "cifar10-10k": "CIFAR-10 (10k training subset, full test set)"}


def source(name: str) -> str:
    """The dataset proper behind ``name``: "cifar10" for "cifar10-10k", else ``name``."""
    return SOURCE.get(name, name)


class DatasetMissing(FileNotFoundError):
    """The dataset is neither on disk nor downloadable here."""


class DataError(ValueError):
    """A data file that cannot be used as it is: the message names the file and what is wrong."""


@dataclass
class Split:
    images: torch.Tensor  # (N, 3, 32, 32) uint8
    labels: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Dataset:
    name: str
    train: Split
    test: Split
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def default_data_dir() -> Path:
    return Path(os.environ.get("REFINE_DATA_DIR", "data"))


def load(name: str, data_dir: str | os.PathLike | None = None, download: bool = False) -> Dataset:
    """Load dataset ``name`` (one of ``DATASETS``) as uint8 tensors on the CPU."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if name == "digits":
        return _digits()
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    base = source(name)
    num_classes = 100 if base == "cifar100" else 10
    folder = root / base
    if name == "cifar10-10k" and (folder / "train_10k.npz").exists() and (folder / "test.npz").exists():
        train, test = _npz(folder / "train_10k.npz", num_classes), _npz(folder / "test.npz", num_classes)
    else:
        if (folder / "train.npz").exists() and (folder / "test.npz").exists():
            train, test = _npz(folder / "train.npz", num_classes), _npz(folder / "test.npz", num_classes)
        else:
            try:
                train, test = _torchvision(base, root, download)
            except DatasetMissing as e:
                if name != "cifar10-10k":
                    raise
                raise DatasetMissing(f"{name}: expected {folder / 'train_10k.npz'} and {folder / 'test.npz'} (copy "
                                     f"them from shared/data/cifar10), or the full CIFAR-10 to draw them from. {e}") from None
        if name == "cifar10-10k":
            _check_subset(train.labels, num_classes, folder)
            keep = balanced_subset(train.labels.numpy(), SUBSET_PER_CLASS)
            train = Split(train.images[keep], train.labels[keep])
    mean, std = STATS[base]
    return Dataset(name, train, test, num_classes, mean, std)


SUBSET_PER_CLASS = 1000
SUBSET_RULE = ("rng = numpy.random.default_rng(0); for each class c in 0..9, rng.choice(<training indices of "
               "class c>, 1000, replace=False); concatenate and sort")


def balanced_subset(labels: np.ndarray, per_class: int, seed: int = 0) -> torch.Tensor:
    """Positions of ``per_class`` examples of every class, ascending: ``SUBSET_RULE``, the rule
    that drew ``train_10k.npz`` from CIFAR-10's 50,000 training images."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(int(labels.max()) + 1)]
    return torch.from_numpy(np.sort(np.concatenate(picks)))


def _check_subset(labels: torch.Tensor, num_classes: int, folder: Path) -> None:
    """The 10k subset needs ``SUBSET_PER_CLASS`` training images of every class."""
    counts = torch.bincount(labels, minlength=num_classes).tolist()
    short = [c for c, n in enumerate(counts) if n < SUBSET_PER_CLASS]
    if short:
        raise DataError(f"{folder}: cifar10-10k draws {SUBSET_PER_CLASS} training images per class from the full "
                        f"CIFAR-10 there, but class {short[0]} has {counts[short[0]]} (a full CIFAR-10 has 5000 per class)")


#: What numpy raises on a damaged or foreign file.
_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def _npz(path: Path, num_classes: int) -> Split:
    """One split from ``path``: 'images' uint8 (N, 32, 32, 3) and 'labels' integers in [0, num_classes),
    N > 0 of each; anything else is a ``DataError`` naming the file."""
    try:
        f = np.load(path)
    except _READ_ERRORS as e:
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}: {_first_line(e)})") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: a single array, not an .npz archive of 'images' and 'labels'")
    with f:
        missing = [k for k in ("images", "labels") if k not in f.files]
        if missing:
            raise DataError(f"{path}: no {' or '.join(repr(k) for k in missing)} array (it has: "
                            f"{', '.join(f.files) or 'nothing'}); expected 'images' uint8 (N, 32, 32, 3) and 'labels'")
        try:
            images, labels = f["images"], f["labels"]
        except _READ_ERRORS as e:
            raise DataError(f"{path}: an array cannot be read ({type(e).__name__}: {_first_line(e)})") from None
    _check_arrays(path, images, labels, num_classes)
    return Split(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels.astype(np.int64)))


def _check_arrays(path: Path, images: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
    """Refuse, naming ``path``, what would train silently on nonsense or fail deep inside the loss."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise DataError(f"{path}: 'images' must be uint8 of shape (N, 32, 32, 3), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"{path}: 'labels' must be integers of shape (N,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{path}: {len(images)} images but {len(labels)} labels; they must be equally many")
    if len(labels) == 0:
        raise DataError(f"{path}: no examples (empty 'images' and 'labels')")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise DataError(f"{path}: labels must lie in 0..{num_classes - 1}, got {low}..{high}")


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [""])[0][:200]


def _torchvision(base: str, root: Path, download: bool) -> tuple[Split, Split]:
    from torchvision import datasets

    cls = datasets.CIFAR10 if base == "cifar10" else datasets.CIFAR100
    try:
        splits = [cls(str(root), train=t, download=download) for t in (True, False)]
    except (RuntimeError, OSError) as e:  # torchvision: "Dataset not found or corrupted"; urllib: no network
        if isinstance(e, OSError):
            how = "downloading it failed (no network here?)"
        else:
            how = "its download failed or did not match its checksum" if download else "download=False"
        raise DatasetMissing(
            f"{base} is not in {root} and {how}. Either run with --download on a machine "
            f"online, or put torchvision's extracted '{cls.base_folder}' folder in {root}, or arrays "
            f"{root / base / 'train.npz'} and {root / base / 'test.npz'} ('images' uint8 (N,32,32,3), "
            f"'labels'). Set the folder with --data-dir or $REFINE_DATA_DIR. ({type(e).__name__}: {_first_line(e)})") from None
    return tuple(Split(torch.from_numpy(s.data).permute(0, 3, 1, 2).contiguous(),
                       torch.tensor(s.targets, dtype=torch.int64)) for s in splits)


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images).float()[:, None] / 16.0  # (1797, 1, 8, 8) in [0, 1]
    x = torch.nn.functional.interpolate(x, size=32, mode="bilinear", align_corners=False)
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(d.target.astype(np.int64))
    # Fixed stratified split: every class contributes test images in proportion, seed 0.
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(labels), generator=g)
    order = perm[torch.argsort(labels[perm], stable=True)]  # grouped by class, shuffled within
    frac = DIGITS_TEST / len(labels)
    test_idx = torch.cat([order[labels[order] == c][: round(frac * int((labels == c).sum()))] for c in range(10)])
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[test_idx] = False
    train_idx = mask.nonzero().squeeze(1)
    train, test = Split(images[train_idx], labels[train_idx]), Split(images[test_idx], labels[test_idx])
    mean = tuple((train.images.float() / 255).mean(dim=(0, 2, 3)).tolist())
    std = tuple((train.images.float() / 255).std(dim=(0, 2, 3)).tolist())
    return Dataset("digits", train, test, 10, mean, std)


class Loader:
    """Batches of one split, resident on ``device``; augmented and shuffled there when ``train``.

    Iterating yields ``(x, y)``: x (B, 3, 32, 32) float32 normalised (channels_last when
    ``channels_last``), y (B,) int64. ``set_epoch(e)`` fixes the epoch whose draws to use.
    """

    def __init__(self, split: Split, mean, std, batch_size: int, train: bool, device: str | torch.device = "cpu",
                 seed: int = 0, channels_last: bool = False):
        self.device = torch.device(device)
        self.batch_size, self.train, self.seed, self.channels_last = batch_size, train, seed, channels_last
        self.images = split.images.to(self.device)  # uint8 (N, 3, 32, 32)
        self.labels = split.labels.to(self.device)
        self.mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=self.device).view(1, 3, 1, 1) * 255
        self.epoch = 0

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def generator(self) -> torch.Generator:
        return torch.Generator(self.device).manual_seed(self.seed * 1_000_003 + self.epoch)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() - self.mean) / self.std
        # Always an explicit layout: augmented batches come out of the gather channels-last in
        # memory, and torch 2.14.1's CPU convolution backward crashes (heap corruption) on
        # channels-last inputs at small widths.
        return x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    def __iter__(self):
        n = len(self.labels)
        if not self.train:
            for i in range(0, n, self.batch_size):
                yield self.normalise(self.images[i:i + self.batch_size]), self.labels[i:i + self.batch_size]
            return
        g = self.generator()
        perm = torch.randperm(n, device=self.device, generator=g)
        flips = torch.rand(n, device=self.device, generator=g) < 0.5
        shifts = torch.randint(0, 2 * PAD + 1, (n, 2), device=self.device, generator=g)
        for i in range(0, n, self.batch_size):
            idx = perm[i:i + self.batch_size]
            x = augment(self.images[idx], flips[idx], shifts[idx])
            yield self.normalise(x), self.labels[idx]


def augment(images: torch.Tensor, flips: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Flip and translate a batch on its device, as torchvision's ``RandomCrop(32, padding=4)``
    then ``RandomHorizontalFlip`` would: images (B, C, H, W) uint8; flips (B,) bool; shifts
    (B, 2) int in [0, 8], the crop's (top, left) corner in the zero-padded image."""
    b, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (PAD, PAD, PAD, PAD))  # (B, C, H+8, W+8)
    rows = shifts[:, 0, None] + torch.arange(h, device=images.device)  # (B, H)
    cols = shifts[:, 1, None] + torch.arange(w, device=images.device)  # (B, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=images.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)
