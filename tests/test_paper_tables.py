"""tools/paper_tables.py: every row's config + overrides validates, the README's table rows are
the script's commands, and ``run`` / ``collect`` end to end on a tiny synthetic Kinetics folder
(a failing row, resuming, skipping finished rows)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from small_run import SMALL_RUN, as_opts, make_small_kinetics

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tools" / "paper_tables.py"

_spec = importlib.util.spec_from_file_location("paper_tables", SCRIPT)
pt = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("paper_tables", pt)  # dataclasses look their module up
_spec.loader.exec_module(pt)

# Slow R50 and its PGT config shrunk to a 1-epoch R18 of width 4 on 32 px crops; PGT runs 2
# steps of 4 frames (T = (4 - 1) * (2 - 1) + 4 = 7 frames, so every row reads 7 frames).
TINY = {
    "NUM_GPUS": 0,
    "MODEL.NUM_CLASSES": 2,
    "RESNET.DEPTH": 18,
    "RESNET.TRANS_FUNC": "basic_transform",
    "RESNET.WIDTH_PER_GROUP": 4,
    "RESNET.NUM_BLOCK_TEMP_KERNEL": "[[2],[2],[2],[2]]",
    "PGT.STEP_LEN": "[4]",
    "PGT.STEPS": 2,
    "DATA.NUM_FRAMES": 7,
    "BN.USE_PRECISE_STATS": False,
    "DATA_LOADER.PIN_MEMORY": False,
    **SMALL_RUN,
}
ROWS = ["k400_slow_r50", "k400_slow_r50_pgt", "k400_slow_r50_pgt_pglong"]


@pytest.mark.parametrize("row", pt.ROWS, ids=lambda r: r.id)
def test_every_row_config_and_overrides_validate(row):
    cfg = pt.load_row_config(row, "/data", "/out")
    assert cfg.OUTPUT_DIR == f"/out/{row.id}"
    assert cfg.TRAIN.ENABLE == (row.retest is None)
    if row.retest:
        assert cfg.PGT.ENABLE and cfg.PGT.PG_EVAL
        assert cfg.TEST.CHECKPOINT_FILE_PATH == "<ckpt>"
    if row.dataset == "charades" and row.id.endswith("_pgt"):
        assert cfg.PGT.PG_EVAL and cfg.PGT.ENSEMBLE_METHOD == "max"
    for key, value in zip(row.overrides[::2], row.overrides[1::2]):
        node = cfg
        for part in key.split("."):
            node = node[part]
        assert str(node) == value or str(node).lower() == value.lower(), (key, node, value)


def test_list_check_and_the_row_table():
    assert len(pt.BY_ID) == len(pt.ROWS) == 38
    proc = _script("list", "--check")
    assert "38 rows: every config + overrides loads and validates" in proc.stderr
    assert proc.stdout.count("python tools/run_net.py") == 38
    for row in pt.ROWS:
        if row.retest:  # a PG-long row re-tests a PGT row of the same config, just above it
            source = pt.BY_ID[row.retest]
            assert source.config == row.config and "_pgt" in source.id
            assert pt.ROWS.index(source) < pt.ROWS.index(row)
    # Only the figures of the release's MODEL_ZOO.md, each on the row its config tests.
    references = {row.id: row.reference for row in pt.ROWS if row.reference}
    assert references == {
        "k400_slow_r50_pgt": "75.6 / 92.3",
        "k400_slow_r101_pgt": "76.9 / 92.8",
        "k400_slowfast_r50_pgt": "76.6 / 92.5",
        "charades_slow_r50_pgt": "mAP 40.2",
        "charades_slowfast_r50_pgt": "mAP 43.8",
        "charades_slow_r101_pgt": "mAP 42.7",
        "charades_slowfast_r101_pgt": "mAP 44.3",
    }
    assert [r.id for r in pt.select_rows(table="2")] == [r.id for r in pt.select_rows(table="1")]
    assert {r.dataset for r in pt.select_rows(table="Charades")} == {"charades"}


_README_ROW = re.compile(r"^\| `([a-z0-9_]+)` \| ([0-9A-Za-z-]+) \| (.+?) \| `(.+)` \|$")


def test_readme_rows_are_the_script_commands():
    text = (REPO / "projects" / "pgt" / "README.md").read_text()
    found = {}
    for line in text.splitlines():
        match = _README_ROW.match(line)
        if match:
            row_id, table, description, cmd = match.groups()
            assert row_id not in found, f"README lists {row_id} twice"
            found[row_id] = (table, description, cmd)
    expected = {
        row.id: (row.table, row.description, pt.shell_join(pt.command(row))) for row in pt.ROWS
    }
    assert found == expected


def _script(*argv, check=True):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, argv)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _break_row(row_dir: Path) -> Path:
    """A folder where run_net's log file goes: the row fails as soon as it starts."""
    path = row_dir / "stdout.log"
    path.mkdir(parents=True)
    return path


def test_run_collect_resume_and_a_failing_row(tmp_path):
    data = tmp_path / "data"
    make_small_kinetics(str(data))
    out = tmp_path / "out"
    overrides = as_opts(TINY) + ["DATA.PATH_PREFIX", str(data)]
    run = ["run", "--data", data, "--out", out, "--rows", *ROWS, *overrides]

    # The baseline and the PGT row fail (run_net cannot open its log): both are reported with
    # their logs, the PG-long row that needs the PGT row's checkpoint is not run.
    bad = [_break_row(out / row) for row in ROWS[:2]]
    proc = _script(*run, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for row in ROWS[:2]:
        assert f"FAIL {row}: exit status" in proc.stdout
        assert str(out / row / pt.LOG_FILE) in proc.stdout
    assert "FAIL k400_slow_r50_pgt_pglong: not run, it re-tests k400_slow_r50_pgt" in proc.stdout
    assert "2 run, 0 skipped (done before), 3 failed" in proc.stdout

    # Fixed, the same command runs the three rows; the PG-long row tests the PGT checkpoint.
    for path in bad:
        path.rmdir()
    proc = _script(*run)
    assert "3 run, 0 skipped (done before), 0 failed" in proc.stdout
    ckpt = out / ROWS[1] / "checkpoints" / "checkpoint_epoch_00001.pyth"
    pg = json.loads((out / ROWS[2] / "run_summary.json").read_text())
    assert pg["test_checkpoint"] == str(ckpt)
    assert (pg["test_cost"]["steps"], pg["test_cost"]["views"]) == (2, 2)

    proc = _script("collect", "--out", out, "--table", "3")
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    for row in ROWS:
        summary = json.loads((out / row / "run_summary.json").read_text())
        assert f"{summary['test_top1_acc']:.2f} / -" in lines[row]  # 2 classes: no top-5
        steps = 2 if row.endswith("pglong") else 1
        assert f"{summary['test_cost']['gflops']:.2f} x {steps} x 2" in lines[row]
    assert "75.6 / 92.3" in lines["k400_slow_r50_pgt"]
    assert "not run" in lines["k400_slow_r101"] and "76.9 / 92.8" in lines["k400_slow_r101_pgt"]
    assert "3 of 12 rows have a test result" in proc.stderr
    md = _script("collect", "--out", out, "--rows", *ROWS, "--markdown").stdout.splitlines()
    assert md[0].startswith("| row | table |") and "release MODEL_ZOO" in md[0]
    assert len(md) == 2 + len(ROWS)

    # Again: every row is done, nothing runs.
    proc = _script(*run)
    for row in ROWS:
        assert f"skip {row}: done ({out / row / 'run_summary.json'})" in proc.stdout
    assert "0 run, 3 skipped (done before), 0 failed" in proc.stdout

    # list with --out shows the checkpoint the PG-long row tests.
    listed = _script("list", "--rows", ROWS[2], "--out", out, "--data", data).stdout
    assert f"TEST.CHECKPOINT_FILE_PATH {ckpt} OUTPUT_DIR {out}/{ROWS[2]}" in listed


def test_bad_input_fails_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "out"
    assert pt.main(["run", "--data", str(tmp_path), "--out", str(out), "--rows", "k400_nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown row(s) k400_nope; known rows: k400_slow_r50, " in err
    assert "ava_slowfast_r101_pgt" in err

    (tmp_path / "val.csv").write_text("")
    assert pt.main(["run", "--data", str(tmp_path), "--out", str(out), "--table", "3"]) == 2
    err = capsys.readouterr().err
    assert f"--data: {tmp_path}/train.csv does not exist (DATA.PATH_TO_DATA_DIR of row " in err
    assert not out.exists()

    # Charades and AVA rows fine-tune from a Kinetics checkpoint: --init or --from-scratch.
    argv = ["run", "--data", str(tmp_path), "--out", str(out), "--rows", "charades_slow_r50"]
    assert pt.main(argv) == 2
    assert "give --init ROW=CKPT for charades_slow_r50" in capsys.readouterr().err
    assert pt.main([*argv, "--init", "charades_slow_r50=/nope.pkl"]) == 2
    assert "--init charades_slow_r50=/nope.pkl: no such file" in capsys.readouterr().err
    assert pt.main([*argv, "--from-scratch"]) == 2
    assert f"{tmp_path}/train.csv does not exist" in capsys.readouterr().err
    assert pt.main(["list", "--table", "7"]) == 2
    assert "unknown table 7; tables: 1, 2, 3, AVA, Charades" in capsys.readouterr().err
    assert not out.exists()


def test_init_and_data_per_dataset(tmp_path, capsys):
    ckpt = tmp_path / "SLOW_8x8_R50.pkl"
    cmd = pt.command(pt.BY_ID["charades_slow_r50"], "/c", "/o", init=str(ckpt))
    assert cmd[-6:] == [
        "TRAIN.CHECKPOINT_FILE_PATH",
        str(ckpt),
        "TRAIN.CHECKPOINT_TYPE",
        "caffe2",
        "OUTPUT_DIR",
        "/o/charades_slow_r50",
    ]
    assert "DATA.PATH_PREFIX /c/Charades_v1_rgb" in pt.shell_join(cmd)
    data = pt.parse_data(["kinetics=/k", "/rest"])
    assert data == {"kinetics": "/k", "charades": "/rest", "ava": "/rest"}
    ava = pt.shell_join(pt.command(pt.BY_ID["ava_slow_r50_pgt"], data["ava"]))
    assert "AVA.FRAME_DIR /rest/frames AVA.FRAME_LIST_DIR /rest/frame_lists" in ava
    assert pt.main(["list", "--rows", "ava_slow_r50", "--data", "/a", "--out", "/o"]) == 0
    printed = capsys.readouterr().out
    assert "AVA.ANNOTATION_DIR /a/annotations TRAIN.CHECKPOINT_FILE_PATH <init> " in printed
