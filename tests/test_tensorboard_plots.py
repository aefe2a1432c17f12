"""Validation plots in tensorboard: PySlowFast's confusion matrices and per-class top-k
prediction histograms (``TENSORBOARD.CONFUSION_MATRIX`` / ``TENSORBOARD.HISTOGRAM``)."""

import json
import logging
import os
from collections import Counter

import engine_tiny as et
import numpy as np
import pytest
import torch

from slowfast.datasets.build import DataError
from slowfast.engine.trainer import train
from slowfast.utils import eval_plots as ep
from slowfast.utils.parser import load_config, parse_args
from slowfast.utils.tensorboard import TensorboardWriter, eval_plots_from_cfg

NAMES = {"zero": 0, "one": 1, "two": 2}  # the tiny dataset's 3 classes


def _cfg(tmp_path, name="run", **overrides):
    out = str(tmp_path / name)
    path = et.write_cfg(str(tmp_path / f"{name}.yaml"), out, **overrides)
    return load_config(parse_args(["--cfg", path]))


def _write(path, text):
    path.write_text(text)
    return str(path)


def _hand_counts(preds, labels, num_classes):
    counts = np.zeros((num_classes, num_classes))
    for p, t in zip(preds, labels):
        counts[t, p] += 1
    return counts


def test_confusion_matrix_equals_a_hand_count():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (60,), generator=gen)  # class 4 of 5 has no video
    scores = torch.rand(60, 5, generator=gen)
    preds = scores.argmax(dim=1)
    counts = _hand_counts(preds.tolist(), labels.tolist(), 5)
    assert counts.sum() == 60 and counts[4].sum() == 0

    np.testing.assert_array_equal(ep.get_confusion_matrix(preds, labels, 5, normalize=None), counts)
    normalised = ep.get_confusion_matrix(preds, labels, 5)
    for c in range(4):  # per true class: the fraction of its videos predicted as each class
        np.testing.assert_allclose(normalised[c], counts[c] / counts[c].sum())
        assert normalised[c].sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(normalised[4], np.zeros(5))  # no video: zeros, not NaN
    # scores (top-1 taken) and one-hot labels give the same matrix as class ids
    one_hot = torch.nn.functional.one_hot(labels, 5)
    np.testing.assert_array_equal(ep.get_confusion_matrix(scores, one_hot, 5), normalised)


def test_topk_predictions_are_the_most_frequent_predictions_of_a_class():
    labels = [0] * 7 + [1] * 4 + [2] * 2
    preds = [2, 2, 2, 1, 1, 0, 3] + [1, 1, 1, 0] + [0, 2]
    cmtx = ep.get_confusion_matrix(torch.tensor(preds), torch.tensor(labels), 4)
    for c in range(3):
        mine = [p for p, t in zip(preds, labels) if t == c]
        counted = Counter(mine).most_common()  # no ties among the top 2 of any class here
        values, ids = ep.topk_predictions(cmtx[c], 2)
        assert ids.tolist() == [cls for cls, _ in counted[:2]]
        np.testing.assert_allclose(values, [n / len(mine) for _, n in counted[:2]])
    # k past the class count is clipped; equal counts come in ascending class id
    values, ids = ep.topk_predictions(cmtx[0], 10)
    assert ids.tolist() == [2, 1, 0, 3]
    np.testing.assert_allclose(values, [3 / 7, 2 / 7, 1 / 7, 1 / 7])


def test_figures_tags_and_sizes():
    plots = ep.EvalPlots(
        num_classes=3,
        class_names=["zero", "one", "two"],
        confusion_matrix=True,
        cm_figsize=(2, 3),
        cm_subset=[2, 0],
        categories={"even": [0, 2]},
        histogram=True,
        hist_topk=5,
        hist_figsize=(3, 2),
        hist_subset=[1],
    )
    figs = dict(plots.figures(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2])))
    assert list(figs) == [
        "Confusion Matrix",
        "Confusion Matrix Subset",
        "Confusion Matrices Grouped by Parent Classes/even",
        "Top 3 predictions by classes/one",  # k clipped to the 3 classes
    ]
    # figsize in inches x 100 dpi; width first
    assert ep.figure_to_image(figs["Confusion Matrix"]).shape == (300, 200, 3)
    assert ep.figure_to_image(figs["Top 3 predictions by classes/one"]).shape == (200, 300, 3)
    # the subset matrix is the full one restricted to the subset's rows and columns, in order
    sub = figs["Confusion Matrix Subset"].axes[0].images[0].get_array()
    full = ep.get_confusion_matrix(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2]), 3)
    np.testing.assert_array_equal(np.asarray(sub), full[np.ix_([2, 0], [2, 0])])
    # the histogram's bars are class "one"'s top predictions: half "one", half "two"
    bars = figs["Top 3 predictions by classes/one"].axes[0].patches
    assert [b.get_height() for b in bars] == [0.5, 0.5, 0.0]


# --------------------------------------------------------------------------------------------
# Files


def test_class_names_subset_and_categories_files(tmp_path):
    names_path = _write(tmp_path / "names.json", json.dumps({"zero": 0, "two": 2}))
    names, to_id = ep.load_class_names(names_path, 3, "K")
    assert names == ["zero", "1", "two"] and to_id == {"zero": 0, "1": 1, "two": 2}
    subset = _write(tmp_path / "subset.txt", "two\n\nzero\ntwo\n")
    assert ep.load_subset(subset, to_id, "S", "K") == [2, 0]
    cats = _write(tmp_path / "cats.json", json.dumps({"a": ["two", "zero"], "empty": []}))
    assert ep.load_categories(cats, to_id, "C", "K") == {"a": [2, 0]}


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"zero": 0, "one": "1"}', "the id of 'one' is '1', not an integer"),
        ('{"zero": 0, "big": 3}', r"the id of 'big' is 3, outside \[0, 3\)"),
        ('{"zero": 0, "nil": 0}', "'zero' and 'nil' both have id 0"),
    ],
)
def test_bad_class_names_file_names_the_key_and_the_file(tmp_path, content, message):
    path = _write(tmp_path / "names.json", content)
    with pytest.raises(DataError, match=message) as err:
        ep.load_class_names(path, 3, "TENSORBOARD.CLASS_NAMES_PATH")
    assert str(err.value).startswith(f"TENSORBOARD.CLASS_NAMES_PATH: {path}")


def test_subset_name_not_a_class_names_file_line_and_name(tmp_path):
    names = _write(tmp_path / "names.json", json.dumps(NAMES))
    subset = _write(tmp_path / "subset.txt", "zero\n\ntwoo\n")
    cfg = _cfg(
        tmp_path,
        **{
            "TENSORBOARD.ENABLE": True,
            "TENSORBOARD.CLASS_NAMES_PATH": names,
            "TENSORBOARD.HISTOGRAM.ENABLE": True,
            "TENSORBOARD.HISTOGRAM.SUBSET_PATH": subset,
        },
    )
    with pytest.raises(DataError) as err:
        eval_plots_from_cfg(cfg)
    assert str(err.value) == (
        f"TENSORBOARD.HISTOGRAM.SUBSET_PATH: {subset}, line 3: 'twoo' is not a class of "
        "TENSORBOARD.CLASS_NAMES_PATH"
    )


def test_category_with_unknown_class_and_missing_files(tmp_path):
    names = _write(tmp_path / "names.json", json.dumps(NAMES))
    cats = _write(tmp_path / "cats.json", json.dumps({"odd": ["one", "three"]}))
    base = {
        "TENSORBOARD.ENABLE": True,
        "TENSORBOARD.CONFUSION_MATRIX.ENABLE": True,
        "TENSORBOARD.CLASS_NAMES_PATH": names,
        "TENSORBOARD.CATEGORIES_PATH": cats,
    }
    with pytest.raises(
        DataError, match=r"CATEGORIES_PATH: .*cats.json: category 'odd' lists 'three'"
    ):
        eval_plots_from_cfg(_cfg(tmp_path, **base))
    missing = str(tmp_path / "nope.json")
    for key in ("TENSORBOARD.CLASS_NAMES_PATH", "TENSORBOARD.CONFUSION_MATRIX.SUBSET_PATH"):
        with pytest.raises(FileNotFoundError) as err:
            eval_plots_from_cfg(_cfg(tmp_path, **{**base, key: missing}))
        assert str(err.value) == f"{key}: {missing} does not exist"


def test_without_class_names_the_classes_are_their_ids(tmp_path):
    subset = _write(tmp_path / "subset.txt", "2\n0\n")
    overrides = {
        "TENSORBOARD.ENABLE": True,
        "TENSORBOARD.CONFUSION_MATRIX.ENABLE": True,
        "TENSORBOARD.CONFUSION_MATRIX.SUBSET_PATH": subset,
    }
    plots = eval_plots_from_cfg(_cfg(tmp_path, **overrides))
    assert plots.class_names == ["0", "1", "2"] and plots.cm_subset == [2, 0]
    _write(tmp_path / "subset.txt", "zero\n")
    with pytest.raises(DataError, match=r"'zero' is not a class of .*named by their ids, 0..2"):
        eval_plots_from_cfg(_cfg(tmp_path, **overrides))


def test_plots_off_where_they_do_not_apply_say_why(tmp_path, caplog):
    on = {"TENSORBOARD.ENABLE": True, "TENSORBOARD.CONFUSION_MATRIX.ENABLE": True}
    with caplog.at_level(logging.WARNING, logger="slowfast.utils.tensorboard"):
        multi = _cfg(tmp_path, **on, **{"DATA.MULTI_LABEL": True})
        assert eval_plots_from_cfg(multi) is None
        assert eval_plots_from_cfg(_cfg(tmp_path, **{**on, "TENSORBOARD.ENABLE": False})) is None
        assert eval_plots_from_cfg(_cfg(tmp_path, **{"TENSORBOARD.ENABLE": True})) is None
    said = [r.getMessage() for r in caplog.records if r.name == "slowfast.utils.tensorboard"]
    assert len(said) == 2
    assert "single-label classification only, not to DATA.MULTI_LABEL" in said[0]
    assert "no plot without TENSORBOARD.ENABLE True" in said[1]
    writer = TensorboardWriter(multi, enabled=False)
    assert not writer.wants_eval_predictions


def test_config_checks_topk_and_figsize(tmp_path):
    with pytest.raises(ValueError, match="TENSORBOARD.HISTOGRAM.TOPK must be >= 1, got 0"):
        _cfg(tmp_path, **{"TENSORBOARD.HISTOGRAM.ENABLE": True, "TENSORBOARD.HISTOGRAM.TOPK": 0})
    with pytest.raises(ValueError, match=r"CONFUSION_MATRIX.FIGSIZE must be \[width, height\]"):
        _cfg(
            tmp_path,
            **{
                "TENSORBOARD.CONFUSION_MATRIX.ENABLE": True,
                "TENSORBOARD.CONFUSION_MATRIX.FIGSIZE": [8],
            },
        )


# --------------------------------------------------------------------------------------------
# End to end


def _images(runs_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(runs_dir, size_guidance={"images": 0})
    acc.Reload()
    return {tag: acc.Images(tag) for tag in acc.Tags()["images"]}


def _tiny_val_predictions(cfg):
    """The trained TinyNet's top-1 predictions and the labels of the whole val set."""
    dataset = et.TinySynth(cfg, "val")
    model = et.TinyNet.last.eval()
    with torch.no_grad():
        items = [dataset[i] for i in range(len(dataset))]
        scores = model([torch.stack([x[0] for x, *_ in items])])
    return scores.argmax(dim=1), torch.tensor([label for _, label, *_ in items])


def test_train_writes_the_plots_after_each_validation(tmp_path, monkeypatch):
    names = _write(tmp_path / "names.json", json.dumps(NAMES))
    cats = _write(tmp_path / "cats.json", json.dumps({"odd": ["one"], "even": ["zero", "two"]}))
    subset = _write(tmp_path / "subset.txt", "two\none\n")
    cfg = _cfg(
        tmp_path,
        **{
            "SOLVER.MAX_EPOCH": 3,
            "TRAIN.EVAL_PERIOD": 2,  # validation after epochs 2 and 3: steps 1 and 2
            "TENSORBOARD.ENABLE": True,
            "TENSORBOARD.CLASS_NAMES_PATH": names,
            "TENSORBOARD.CATEGORIES_PATH": cats,
            "TENSORBOARD.CONFUSION_MATRIX.ENABLE": True,
            "TENSORBOARD.CONFUSION_MATRIX.FIGSIZE": [2, 2],
            "TENSORBOARD.CONFUSION_MATRIX.SUBSET_PATH": subset,
            "TENSORBOARD.HISTOGRAM.ENABLE": True,
            "TENSORBOARD.HISTOGRAM.FIGSIZE": [3, 2],
            "TENSORBOARD.HISTOGRAM.TOPK": 2,
        },
    )
    plotted = []
    original = TensorboardWriter.plot_eval

    def spy(self, preds, labels, global_step):
        plotted.append((preds.clone(), labels.clone(), global_step))
        original(self, preds, labels, global_step)

    monkeypatch.setattr(TensorboardWriter, "plot_eval", spy)
    train(cfg)

    assert [step for *_, step in plotted] == [1, 2]
    preds, labels = _tiny_val_predictions(cfg)  # the last validation is the final model's
    assert torch.equal(plotted[-1][0], preds) and torch.equal(plotted[-1][1], labels)

    images = _images(os.path.join(cfg.OUTPUT_DIR, "runs-tinysynth"))
    cm_tags = [
        "Confusion Matrix",
        "Confusion Matrix Subset",
        "Confusion Matrices Grouped by Parent Classes/odd",
        "Confusion Matrices Grouped by Parent Classes/even",
    ]
    hist_tags = [f"Top 2 predictions by classes/{n}" for n in NAMES]
    assert sorted(images) == sorted(cm_tags + hist_tags)
    for tag, events in images.items():
        assert [e.step for e in events] == [1, 2], tag
        size = (200, 200) if tag in cm_tags else (300, 200)
        assert all((e.width, e.height) == size for e in events), tag


def test_bad_subset_stops_train_before_any_epoch(tmp_path):
    names = _write(tmp_path / "names.json", json.dumps(NAMES))
    subset = _write(tmp_path / "subset.txt", "one\nthree\n")
    cfg = _cfg(
        tmp_path,
        **{
            "TENSORBOARD.ENABLE": True,
            "TENSORBOARD.CLASS_NAMES_PATH": names,
            "TENSORBOARD.CONFUSION_MATRIX.ENABLE": True,
            "TENSORBOARD.CONFUSION_MATRIX.SUBSET_PATH": subset,
        },
    )
    with pytest.raises(DataError, match=r"subset.txt, line 2: 'three' is not a class"):
        train(cfg)
    assert not os.path.exists(os.path.join(cfg.OUTPUT_DIR, "checkpoints"))
    log = open(os.path.join(cfg.OUTPUT_DIR, "stdout.log")).read()
    assert "train_iter" not in log
