"""Registry of datasets and the builder that looks a dataset up by name."""

from __future__ import annotations

from fvcore.common.config import CfgNode
from fvcore.common.registry import Registry


class DataError(ValueError):
    """A dataset's files are wrong (a split file's line, a label, a missing frame): the message
    names the file and the line or the key; ``tools/run_net.py`` prints it without a
    traceback."""


DATASET_REGISTRY = Registry("DATASET")
DATASET_REGISTRY.__doc__ = """
Registry of video datasets.

A registered object is a ``torch.utils.data.Dataset`` class (registered under its class name,
looked up case-insensitively) called as ``cls(cfg, split)`` with ``split`` one of ``"train"``,
``"val"``, ``"test"``. Indexing it returns ``(frames, label, index, meta)``:

* ``frames``: a list with one float tensor ``(C, T, H, W)`` per pathway, normalised;
* ``label``: an ``int`` (a multi-hot tensor for multi-label datasets);
* ``index``: the clip index (test: ``video_idx * num_clips + clip_idx``);
* ``meta``: a dict (``meta["decode_failures"]`` lists the ``[path, reason]`` pairs of the
  videos that failed while producing this item; see ``slowfast.datasets.loader``).

The dataset exposes ``num_videos`` and ``__len__``.
"""


def _lookup(name: str):
    wanted = name.lower()
    for registered, obj in DATASET_REGISTRY:
        if registered.lower() == wanted:
            return obj
    names = sorted(registered for registered, _ in DATASET_REGISTRY)
    raise KeyError(f"dataset {name!r} is not registered; registered datasets: {names}")


def build_dataset(dataset_name: str, cfg: CfgNode, split: str):
    """Build the dataset registered as ``dataset_name`` (case-insensitive) for ``split``.

    Args:
        dataset_name: e.g. ``cfg.TRAIN.DATASET`` (``"kinetics"``).
        cfg: the full config.
        split: ``"train"``, ``"val"`` or ``"test"``.
    """
    return _lookup(dataset_name)(cfg, split)
