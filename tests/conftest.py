"""Shared fixtures: small models and the offline digits data, so unit tests run in seconds."""
import os
from pathlib import Path

import pytest
import torch

from refine_utils import data

def _find_shared_cifar() -> Path:
    """``shared/data/cifar10`` beside the checkout (CI) or beside any folder above it (worktrees)."""
    for parent in Path(__file__).resolve().parents[1:]:
        if (parent / "shared" / "data" / "cifar10" / "test.npz").exists():
            return parent / "shared" / "data" / "cifar10"
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"


SHARED_CIFAR = _find_shared_cifar()


def pytest_runtest_setup(item):
    if "cuda" in item.keywords and not torch.cuda.is_available():
        pytest.skip("needs CUDA")


@pytest.fixture(scope="session")
def digits():
    return data.load("digits")


@pytest.fixture(scope="session")
def shared_cifar_dir():
    """The parent folder of the shared real CIFAR-10 arrays (skip where they are absent)."""
    root = Path(os.environ.get("REFINE_SHARED_CIFAR", SHARED_CIFAR))
    if not (root / "test.npz").exists():
        pytest.skip(f"real CIFAR-10 not found at {root}")
    return root.parent


@pytest.fixture(scope="module")
def one_thread():
    """One thread for a module's tests (``pytestmark = pytest.mark.usefixtures("one_thread")``): tiny
    convolutions run fastest, and steadiest on a shared machine, on one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def ds(digits):
    """The probes' data: 512 training and 200 test digits, the test ones shuffled (the stored split
    is grouped by class)."""
    order = torch.randperm(len(digits.test), generator=torch.Generator().manual_seed(0))[:200]
    return data.Dataset("digits", data.Split(digits.train.images[:512], digits.train.labels[:512]),
                        data.Split(digits.test.images[order], digits.test.labels[order]), 10, digits.mean, digits.std)
