"""Validation plots for tensorboard: PySlowFast's confusion matrices and per-class top-k
prediction histograms (``TENSORBOARD.CONFUSION_MATRIX`` / ``TENSORBOARD.HISTOGRAM``).

Nothing here reads ``cfg``: ``slowfast.utils.tensorboard.eval_plots_from_cfg`` does, and builds
an :class:`EvalPlots`. matplotlib is imported only when a figure is drawn (Agg canvas, no pyplot
state). The files have PySlowFast's formats:

- class names (``TENSORBOARD.CLASS_NAMES_PATH``): JSON ``{"class name": class id, ...}``;
- a subset (``*.SUBSET_PATH``): a text file, one class name per line (blank lines ignored);
- categories (``TENSORBOARD.CATEGORIES_PATH``): JSON ``{"category": ["class name", ...], ...}``.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

logger = logging.getLogger(__name__)

# Cells get their value written in them up to this many classes (PySlowFast writes them always;
# at 400 classes that is 160,000 unreadable labels and minutes of drawing per epoch).
ANNOTATE_MAX_CLASSES = 40


def _class_ids(values: Any) -> np.ndarray:
    """Class ids of ``values``: ids ``(N,)`` as they are, scores or one-hot ``(N, C)`` by argmax."""
    t = torch.as_tensor(values)
    if t.ndim == 2:
        t = t.argmax(dim=1)
    return t.reshape(-1).long().cpu().numpy()


def get_confusion_matrix(
    preds: Any, labels: Any, num_classes: int, normalize: Optional[str] = "true"
) -> np.ndarray:
    """The ``(num_classes, num_classes)`` confusion matrix, rows = true class, columns =
    predicted class (PySlowFast's ``get_confusion_matrix``).

    Args:
        preds: predicted class ids ``(N,)`` or scores ``(N, C)`` (top-1 taken).
        labels: true class ids ``(N,)`` or one-hot ``(N, C)``.
        num_classes: C; classes absent from both still get their row and column.
        normalize: ``"true"`` (each row divided by the number of videos of that class; a class
            without videos has a row of zeros), ``None`` for counts, or sklearn's ``"pred"`` /
            ``"all"``.
    """
    from sklearn.metrics import confusion_matrix

    y_pred, y_true = _class_ids(preds), _class_ids(labels)
    if y_pred.shape != y_true.shape:
        raise ValueError(f"{y_pred.shape[0]} predictions but {y_true.shape[0]} labels")
    return confusion_matrix(
        y_true, y_pred, labels=list(range(num_classes)), normalize=normalize
    ).astype(np.float64)


def topk_predictions(cmtx_row: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest entries of one confusion-matrix row (``min(k, len(row))``), largest
    first: ``(values, predicted class ids)``; ties in ascending class id."""
    row = np.asarray(cmtx_row, dtype=np.float64)
    order = np.argsort(-row, kind="stable")[: min(k, row.shape[0])]
    return row[order], order


def plot_confusion_matrix(
    cmtx: np.ndarray,
    class_names: Sequence[str],
    figsize: Sequence[float],
    annotate: Optional[bool] = None,
) -> Any:
    """A matplotlib ``Figure`` of ``cmtx`` (rows true, columns predicted), blue scale with a
    colour bar; cell values written in when ``annotate`` (default: up to
    ``ANNOTATE_MAX_CLASSES`` classes; ``.`` for zeros, as PySlowFast)."""
    from matplotlib.figure import Figure

    n = cmtx.shape[0]
    if len(class_names) != n:
        raise ValueError(f"{len(class_names)} class names for a {n}x{n} confusion matrix")
    fig = Figure(figsize=tuple(figsize), layout="tight")
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(cmtx, interpolation="nearest", cmap="Blues", vmin=0.0)
    fig.colorbar(image, ax=ax)
    ax.set_title("Confusion matrix")
    ticks = np.arange(n)
    ax.set_xticks(ticks)
    ax.set_xticklabels(class_names, rotation=45, ha="right")
    ax.set_yticks(ticks)
    ax.set_yticklabels(class_names)
    ax.set_ylabel("True label")
    ax.set_xlabel("Predicted label")
    if annotate is None:
        annotate = n <= ANNOTATE_MAX_CLASSES
    if annotate:
        threshold = cmtx.max() / 2.0
        for i, j in zip(*np.indices(cmtx.shape).reshape(2, -1)):
            value = cmtx[i, j]
            ax.text(
                j,
                i,
                f"{value:.2f}" if value != 0 else ".",
                ha="center",
                va="center",
                color="white" if value > threshold else "black",
            )
    return fig


def plot_topk_histogram(
    title: str,
    values: Sequence[float],
    class_ids: Sequence[int],
    class_names: Sequence[str],
    figsize: Sequence[float],
) -> Any:
    """A bar chart of the top-k predictions of one class (``topk_predictions``): bar i is
    ``values[i]``, the fraction of the class's videos predicted as ``class_names[class_ids[i]]``
    (PySlowFast's ``plot_topk_histogram``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=tuple(figsize), layout="tight", facecolor="w", edgecolor="k")
    ax = fig.add_subplot(1, 1, 1)
    ticks = np.arange(len(values))
    ax.bar(ticks, values, 0.75, color="orange", edgecolor="w", linewidth=1)
    ax.set_xlabel("Candidates")
    ax.set_xticks(ticks)
    ax.set_xticklabels([class_names[i] for i in class_ids], rotation=-45, ha="left")
    ax.set_ylabel("Frequency")
    ax.set_ylim(0.0, 1.1)
    ax.set_yticks(np.linspace(0.0, 1.0, num=11))
    for i, v in enumerate(values):
        ax.text(i, v + 0.02, f"{v:.2f}", color="darkorange", fontweight="bold", ha="center")
    ax.set_title(title)
    return fig


def figure_to_image(fig: Any) -> np.ndarray:
    """Render ``fig`` with the Agg canvas: an ``(H, W, 3)`` uint8 array (``figsize`` x dpi)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    with warnings.catch_warnings():
        # Long class names in a small figure: drawn as well as they fit, no warning per epoch.
        warnings.filterwarnings("ignore", message="Tight layout not applied")
        canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


# ---------------------------------------------------------------------------------------------
# Files


def _open_text(path: str, key: str) -> str:
    from iopath.common.file_io import g_pathmgr

    if not g_pathmgr.exists(path):
        raise FileNotFoundError(f"{key}: {path} does not exist")
    with g_pathmgr.open(path, "r") as f:
        return f.read()


def _load_json(path: str, key: str) -> Any:
    from slowfast.datasets.build import DataError

    text = _open_text(path, key)
    try:
        return json.loads(text)
    except ValueError as err:
        raise DataError(f"{key}: {path} is not valid JSON: {err}") from None


def load_class_names(path: str, num_classes: int, key: str) -> Tuple[List[str], Dict[str, int]]:
    """Read a ``{"class name": id}`` JSON file. Returns ``(names, name -> id)``: ``names[i]``
    is class i's name (its id as text where the file names no class i).

    Raises:
        FileNotFoundError: ``path`` is missing.
        DataError: not a JSON object of integer ids in ``[0, num_classes)``, or an id given twice.
    """
    from slowfast.datasets.build import DataError

    data = _load_json(path, key)
    if not isinstance(data, dict) or not data:
        raise DataError(f'{key}: {path} must be a JSON object {{"class name": class id, ...}}')
    names: List[Optional[str]] = [None] * num_classes
    for name, idx in data.items():
        if isinstance(idx, bool) or not isinstance(idx, int):
            raise DataError(f"{key}: {path}: the id of {name!r} is {idx!r}, not an integer")
        if not 0 <= idx < num_classes:
            raise DataError(
                f"{key}: {path}: the id of {name!r} is {idx}, outside [0, {num_classes}) "
                f"(MODEL.NUM_CLASSES {num_classes})"
            )
        if names[idx] is not None:
            raise DataError(f"{key}: {path}: {names[idx]!r} and {name!r} both have id {idx}")
        names[idx] = name
    missing = [i for i, n in enumerate(names) if n is None]
    if missing:
        logger.warning(
            "%s: %s names %d of %d classes; the others are shown by their id (%s%s)",
            key,
            path,
            num_classes - len(missing),
            num_classes,
            ", ".join(map(str, missing[:10])),
            ", ..." if len(missing) > 10 else "",
        )
    full = [str(i) if n is None else n for i, n in enumerate(names)]
    return full, {n: i for i, n in enumerate(full)}


def load_subset(path: str, class_to_id: Dict[str, int], key: str, names_key: str) -> List[int]:
    """Class ids of a subset file (one class name per line, blank lines ignored), in file
    order without repeats.

    Raises:
        FileNotFoundError: ``path`` is missing.
        DataError: a line names a class absent from the class names (file, line and name), or
            the file names no class.
    """
    from slowfast.datasets.build import DataError

    ids: List[int] = []
    for lineno, line in enumerate(_open_text(path, key).splitlines(), start=1):
        name = line.strip()
        if not name:
            continue
        if name not in class_to_id:
            raise DataError(f"{key}: {path}, line {lineno}: {name!r} is not a class of {names_key}")
        if class_to_id[name] not in ids:
            ids.append(class_to_id[name])
    if not ids:
        raise DataError(f"{key}: {path} names no class")
    return ids


def load_categories(
    path: str, class_to_id: Dict[str, int], key: str, names_key: str
) -> Dict[str, List[int]]:
    """A ``{"category": ["class name", ...]}`` JSON file as ``{category: [class ids]}``
    (categories that list no class are left out).

    Raises:
        FileNotFoundError: ``path`` is missing.
        DataError: not such an object, or a class name absent from the class names.
    """
    from slowfast.datasets.build import DataError

    data = _load_json(path, key)
    if not isinstance(data, dict):
        raise DataError(f'{key}: {path} must be a JSON object {{"category": [class names]}}')
    out: Dict[str, List[int]] = {}
    for category, children in data.items():
        if not isinstance(children, list) or not all(isinstance(c, str) for c in children):
            raise DataError(f"{key}: {path}: category {category!r} is not a list of class names")
        for name in children:
            if name not in class_to_id:
                raise DataError(
                    f"{key}: {path}: category {category!r} lists {name!r}, not a class of "
                    f"{names_key}"
                )
        ids = list(dict.fromkeys(class_to_id[c] for c in children))
        if ids:
            out[str(category)] = ids
    return out


# ---------------------------------------------------------------------------------------------
# What to plot


@dataclass
class EvalPlots:
    """The validation figures to draw, with PySlowFast's tensorboard tags.

    ``confusion_matrix``: "Confusion Matrix" (all classes), "Confusion Matrix Subset"
    (``cm_subset``), "Confusion Matrices Grouped by Parent Classes/<category>"
    (``categories``). ``histogram``: "Top <k> predictions by classes/<class name>" for every
    class, or the classes of ``hist_subset``.
    """

    num_classes: int
    class_names: List[str]
    confusion_matrix: bool = False
    cm_figsize: Sequence[float] = (8, 8)
    cm_subset: Optional[List[int]] = None
    categories: Dict[str, List[int]] = field(default_factory=dict)
    histogram: bool = False
    hist_topk: int = 10
    hist_figsize: Sequence[float] = (8, 8)
    hist_subset: Optional[List[int]] = None

    def figures(self, preds: Any, labels: Any) -> Iterator[Tuple[str, Any]]:
        """``(tag, matplotlib Figure)`` for each plot of one validation pass."""
        cmtx = get_confusion_matrix(preds, labels, self.num_classes)
        if self.confusion_matrix:
            groups: List[Tuple[str, Optional[List[int]]]] = [("Confusion Matrix", None)]
            if self.cm_subset is not None:
                groups.append(("Confusion Matrix Subset", self.cm_subset))
            for category, ids in self.categories.items():
                groups.append(("Confusion Matrices Grouped by Parent Classes/" + category, ids))
            for tag, ids in groups:
                sub = cmtx if ids is None else cmtx[np.ix_(ids, ids)]
                names = self.class_names if ids is None else [self.class_names[i] for i in ids]
                yield tag, plot_confusion_matrix(sub, names, self.cm_figsize)
        if self.histogram:
            k = min(self.hist_topk, self.num_classes)
            classes = range(self.num_classes) if self.hist_subset is None else self.hist_subset
            for c in classes:
                values, ids = topk_predictions(cmtx[c], k)
                name = self.class_names[c]
                yield (
                    f"Top {k} predictions by classes/{name}",
                    plot_topk_histogram(name, values, ids, self.class_names, self.hist_figsize),
                )
