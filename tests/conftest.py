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
