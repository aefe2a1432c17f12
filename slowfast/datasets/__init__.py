"""Datasets, decoding, transforms and loaders.

Importing the package registers the datasets in :data:`DATASET_REGISTRY`.
"""

from slowfast.datasets import (  # noqa: F401  (importing registers the datasets)
    ava_dataset,  # "ava"
    charades,  # "charades"
    kinetics,  # "kinetics"
)
from slowfast.datasets.build import DATASET_REGISTRY, build_dataset
from slowfast.datasets.loader import construct_loader, shuffle_dataset

__all__ = ["DATASET_REGISTRY", "build_dataset", "construct_loader", "shuffle_dataset"]
