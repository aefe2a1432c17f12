"""Shared test fixtures: paths to the repository and to ``../shared`` test data."""

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout; tests that need it skip where it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (a user's clone has no ../shared test data)")
    return SHARED


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tiny convolutions on one thread: far faster than on contended cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def kinetics_8_videos(tmp_path_factory) -> str:
    """A synthetic Kinetics-format folder: 2 classes x 4 train videos, 1 val and 1 test video
    per class, 24 frames of 40 x 40 (read-only for the tests that share it)."""
    from slowfast.datasets.synthetic import make_kinetics_dataset

    root = str(tmp_path_factory.mktemp("kinetics_8_videos"))
    make_kinetics_dataset(
        root,
        num_classes=2,
        videos_per_class=4,
        eval_videos_per_class=1,
        num_frames=24,
        width=40,
        height=40,
    )
    return root
