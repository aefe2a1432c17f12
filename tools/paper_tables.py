#!/usr/bin/env python3
"""The paper's tables as one scripted path: every row is a ``tools/run_net.py`` command.

    python tools/paper_tables.py list [--table N] [--rows ID ...] [--data DIR] [--out OUT]
                                      [--markdown] [--check]
    python tools/paper_tables.py run --data DIR --out OUT [--table N | --rows ID ...]
                                     [--init ROW=CKPT ...] [--from-scratch] [--dry-run]
                                     [KEY VALUE ...]
    python tools/paper_tables.py collect --out OUT [--table N | --rows ID ...] [--markdown]

Rows (``ROWS``): Kinetics-400 main results (paper Table 3: baseline, PGT orig long, PGT PG long
for Slow R50/R101, SlowFast R50, RegNet0.4G-3D), the RegNet0.4G-3D ablations (Tables 1 and 2),
Charades and AVA (their own tables; rows named by dataset), baseline and PGT with the shipped configs. A PG-long row
re-tests the last checkpoint of the row it names (``TRAIN.ENABLE False``,
``TEST.CHECKPOINT_FILE_PATH``, ``PGT.PG_EVAL True``). Charades and AVA rows fine-tune from a
Kinetics-400 checkpoint given with ``--init ROW=CKPT`` (``.pkl``: PySlowFast's Caffe2 model zoo).

``--data`` is one folder, or ``DATASET=DIR`` per dataset (kinetics, charades, ava):
kinetics ``DIR/{train,val,test}.csv``; charades ``DIR/{train,val}.csv`` and
``DIR/Charades_v1_rgb``; ava ``DIR/frames``, ``DIR/frame_lists``, ``DIR/annotations``.

``run`` writes row R to ``OUT/R`` and skips a row whose ``OUT/R/run_summary.json`` holds a test
result, so running it again resumes a reproduction (run_net resumes a half-trained row itself,
``TRAIN.AUTO_RESUME``). Trailing ``KEY VALUE`` pairs are appended to every row (e.g. to shrink
the models for a smoke run). A failing row is reported with its log; the rows that do not depend
on it still run, and the exit status is 1. ``collect`` prints the results beside the numbers of
the PGT release's MODEL_ZOO.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUMMARY_FILE = "run_summary.json"  # slowfast.engine.common.SUMMARY_FILE
LOG_FILE = "paper_tables.log"
DATASETS = ("kinetics", "charades", "ava")
# What the reference column holds and where it comes from.
REFERENCE_SOURCE = "release MODEL_ZOO"


@dataclass(frozen=True)
class Row:
    """One row of a paper table.

    Attributes:
        id: the row's name, also its output folder under ``OUT``.
        table: the paper's table ("3"; "1-2" for the ablations, which share two tables), or
            the dataset ("Charades", "AVA") for rows outside the Kinetics tables 1-3.
        description: what the row is.
        config: the config file, relative to the repository.
        overrides: ``KEY VALUE`` pairs after the data paths.
        retest: the row whose last checkpoint this row tests (no training).
        init: fine-tune from a Kinetics-400 checkpoint (what it should be), given at run time.
        reference: the published figure (top-1 / top-5, or mAP in %), "" where none is cited.
    """

    id: str
    table: str
    description: str
    config: str
    overrides: Tuple[str, ...] = ()
    retest: Optional[str] = None
    init: str = ""
    reference: str = ""

    @property
    def dataset(self) -> str:
        return os.path.basename(os.path.dirname(self.config)).lower()

    @property
    def label(self) -> str:
        """ "Table 3", "Tables 1-2", or the dataset's name."""
        if not self.table[0].isdigit():
            return self.table
        return f"{'Tables' if '-' in self.table else 'Table'} {self.table}"

    @property
    def tables(self) -> Tuple[str, ...]:
        """The tables the row belongs to ("1-2" -> ("1", "2"); "AVA" -> ("AVA",))."""
        first, _, last = self.table.partition("-")
        if not first.isdigit():
            return (self.table,)
        return tuple(str(n) for n in range(int(first), int(last or first) + 1))


def _kinetics_main() -> Iterable[Row]:
    # (id part, baseline name, PGT name, config stem, release MODEL_ZOO top-1 / top-5). The
    # release's Kinetics PGT configs test with PGT.PG_EVAL False, so its figures go to the
    # orig-long rows.
    models = [
        ("slow_r50", "Slow 8x8 R50", "Slow R50", "SLOW_8x8_R50", "75.6 / 92.3"),
        ("slow_r101", "Slow 8x8 R101", "Slow R101", "SLOW_8x8_R101", "76.9 / 92.8"),
        ("slowfast_r50", "SlowFast 8x8 R50", "SlowFast R50", "SLOWFAST_8x8_R50", "76.6 / 92.5"),
        ("regnet", "RegNet0.4G-3D 8x8", "RegNet0.4G-3D", "RegNet0.4G-3D_8x8", ""),
    ]
    for key, base, name, stem, reference in models:
        pgt = f"configs/Kinetics/{stem}_PGT.yaml"
        yield Row(f"k400_{key}", "3", f"{base} baseline", f"configs/Kinetics/{stem}.yaml")
        yield Row(
            f"k400_{key}_pgt",
            "3",
            f"{name} PGT, orig long",
            pgt,
            ("PGT.PG_EVAL", "False"),
            reference=reference,
        )
        yield Row(
            f"k400_{key}_pgt_pglong",
            "3",
            f"{name} PGT, PG long",
            pgt,
            ("PGT.PG_EVAL", "True"),
            retest=f"k400_{key}_pgt",
        )


def _kinetics_ablations() -> Iterable[Row]:
    pgt = "configs/Kinetics/RegNet0.4G-3D_8x8_PGT.yaml"
    cache = [
        ("mco", "basic MCO", "last", "0.0"),
        ("cmco_avg", "CMCO-avg", "avg", "0.0"),
        ("cmco_max", "CMCO-max", "max", "0.0"),
        ("pmco", "PMCO (the config as shipped)", "last", "0.25"),
    ]
    for key, name, mode, momentum in cache:
        overrides = ("PGT.CACHE", mode, "PGT.CACHE_MOMENTUM", momentum)
        yield Row(f"k400_regnet_{key}", "1-2", name, pgt, overrides)
    for variant in ("A", "B"):
        yield Row(
            f"k400_regnet_dpr_{variant.lower()}", "1-2", f"DPR-{variant}", pgt, ("PGT.DPR", variant)
        )
    for steps in (2, 3, 4, 5):
        frames = (8 - 1) * (steps - 1) + 8
        shipped = ", as shipped" if steps == 5 else ""
        yield Row(
            f"k400_regnet_p{steps}",
            "1-2",
            f"P = {steps} ({frames} frames{shipped})",
            pgt,
            ("PGT.STEPS", str(steps), "DATA.NUM_FRAMES", str(frames)),
        )


def _charades_ava() -> Iterable[Row]:
    # Charades mAP (%) of the PGT rows: the release's MODEL_ZOO.md (K400-pretrained).
    charades = [
        ("slow_r50", "Slow 16x8 R50", "SLOW_16x8_R50", "Slow 8x8 R50", "40.2"),
        ("slowfast_r50", "SlowFast 16x8 R50", "SLOWFAST_16x8_R50", "SlowFast 8x8 R50", "43.8"),
        ("slow_r101", "Slow 16x8 R101", "SLOW_16x8_R101", "Slow 8x8 R101", "42.7"),
        ("slowfast_r101", "SlowFast 16x8 R101", "SLOWFAST_16x8_R101", "SlowFast 8x8 R101", "44.3"),
    ]
    for key, name, stem, k400, reference in charades:
        init = f"Kinetics-400 {k400}"
        yield Row(
            f"charades_{key}",
            "Charades",
            f"{name} baseline",
            f"configs/Charades/{stem}.yaml",
            init=init,
        )
        yield Row(
            f"charades_{key}_pgt",
            "Charades",
            f"{name} PGT, PG long (steps combined by max)",
            f"configs/Charades/{stem}_PGT.yaml",
            init=init,
            reference=f"mAP {reference}",
        )
    ava = [
        ("slow_r50", "Slow 8x8 R50", "SLOW_8x8_R50"),
        ("slow_r101", "Slow 8x8 R101", "SLOW_8x8_R101"),
        ("slowfast_r50", "SlowFast 32x2 R50", "SLOWFAST_32x2_R50"),
        ("slowfast_r101", "SlowFast 32x2 R101", "SLOWFAST_32x2_R101"),
    ]
    for key, name, stem in ava:
        for suffix, what, init in (
            ("", "baseline", f"Kinetics-400 {name}"),
            ("_pgt", "PGT, PG long", f"Kinetics-400 {name} (PGT)"),
        ):
            yield Row(
                f"ava_{key}{suffix}",
                "AVA",
                f"{name} {what}",
                f"configs/AVA/{stem}{suffix.upper()}.yaml",
                init=init,
            )


ROWS: Tuple[Row, ...] = (*_kinetics_main(), *_kinetics_ablations(), *_charades_ava())
BY_ID: Dict[str, Row] = {row.id: row for row in ROWS}


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2."""


# ----------------------------------------------------------------------------- selection


def select_rows(ids: Sequence[str] = (), table: Optional[str] = None) -> List[Row]:
    """The rows named by ``ids`` (in table order), or of ``table``, or all."""
    unknown = [i for i in ids if i not in BY_ID]
    if unknown:
        raise UsageError(f"unknown row(s) {', '.join(unknown)}; known rows: {', '.join(BY_ID)}")
    rows = [row for row in ROWS if not ids or row.id in ids]
    if table is not None:
        tables = sorted(
            {t for row in ROWS for t in row.tables}, key=lambda t: (not t.isdigit(), t.zfill(3))
        )
        if table not in tables:
            raise UsageError(f"unknown table {table}; tables: {', '.join(tables)}")
        rows = [row for row in rows if table in row.tables]
    return rows


def with_dependencies(rows: Sequence[Row]) -> List[Row]:
    """``rows`` plus the rows their PG-long re-tests need, in table order."""
    wanted = {row.id for row in rows}
    for row in rows:
        if row.retest:
            wanted.add(row.retest)
    return [row for row in ROWS if row.id in wanted]


# ----------------------------------------------------------------------------- commands


def parse_data(values: Sequence[str]) -> Dict[str, str]:
    """``--data DIR`` (every dataset) or ``--data DATASET=DIR`` (repeatable)."""
    data: Dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if sep and name in DATASETS:
            data[name] = path
        elif sep and not os.path.exists(value):
            raise UsageError(f"--data {value}: unknown dataset {name!r}; use one of {DATASETS}")
        else:
            data.update({d: value for d in DATASETS if d not in data})
    return data


def data_opts(dataset: str, root: str) -> List[str]:
    """The config keys that point ``dataset``'s rows at the folder ``root``."""
    if dataset == "kinetics":
        return ["DATA.PATH_TO_DATA_DIR", root]
    if dataset == "charades":
        return ["DATA.PATH_TO_DATA_DIR", root, "DATA.PATH_PREFIX", f"{root}/Charades_v1_rgb"]
    if dataset == "ava":
        return [
            "AVA.FRAME_DIR",
            f"{root}/frames",
            "AVA.FRAME_LIST_DIR",
            f"{root}/frame_lists",
            "AVA.ANNOTATION_DIR",
            f"{root}/annotations",
        ]
    raise ValueError(f"no data layout for dataset {dataset!r}")


def init_opts(ckpt: str) -> List[str]:
    """Fine-tune from ``ckpt``: ``scratch`` means random weights (a smoke run)."""
    if ckpt == "scratch":
        return []
    opts = ["TRAIN.CHECKPOINT_FILE_PATH", ckpt]
    if ckpt.endswith(".pkl"):
        opts += ["TRAIN.CHECKPOINT_TYPE", "caffe2"]
    return opts


def command(
    row: Row,
    data: Optional[str] = None,
    out: Optional[str] = None,
    ckpt: Optional[str] = None,
    init: Optional[str] = None,
    extra: Sequence[str] = (),
    python: str = "python",
) -> List[str]:
    """The row's ``run_net`` command; ``None`` arguments print as ``<dir>``, ``<out>``,
    ``<ckpt>`` (the retested row's last checkpoint) and ``<init>`` (a Kinetics checkpoint)."""
    argv = [python, "tools/run_net.py", "--cfg", row.config]
    argv += data_opts(row.dataset, data if data is not None else "<dir>")
    argv += list(row.overrides)
    if row.retest:
        argv += ["TRAIN.ENABLE", "False", "TEST.CHECKPOINT_FILE_PATH", ckpt or "<ckpt>"]
    if row.init:
        argv += init_opts(init) if init is not None else ["TRAIN.CHECKPOINT_FILE_PATH", "<init>"]
    argv += ["OUTPUT_DIR", f"{out if out is not None else '<out>'}/{row.id}"]
    return argv + list(extra)


_SAFE = re.compile(r"^[A-Za-z0-9_./=<>:,+@%-]+$")


def shell_join(argv: Sequence[str]) -> str:
    """A command line to paste; placeholders such as ``<dir>`` stay unquoted."""
    return " ".join(a if _SAFE.match(a) else shlex.quote(a) for a in argv)


def newest_checkpoint(row_dir: str) -> Optional[str]:
    """The newest readable ``checkpoints/checkpoint_epoch_*.pyth`` (whole epochs) in
    ``row_dir``, or None."""
    from slowfast.utils import checkpoint as cu

    for path in reversed(cu.list_checkpoints(row_dir)):
        if "_iter_" not in os.path.basename(path) and cu.checkpoint_problem(path) is None:
            return path
    return None


def expected_checkpoint(row: Row, out: str, extra: Sequence[str] = ()) -> str:
    """The checkpoint a PG-long row will test: the newest one there is, else the one the
    retested row's training ends with."""
    source = BY_ID[row.retest]
    row_dir = os.path.join(out, source.id)
    found = newest_checkpoint(row_dir)
    if found:
        return found
    cfg = load_row_config(source, "<dir>", out, extra=extra)
    return os.path.join(row_dir, "checkpoints", f"checkpoint_epoch_{cfg.SOLVER.MAX_EPOCH:05d}.pyth")


def load_row_config(
    row: Row, data: str, out: str, ckpt: str = "<ckpt>", init: str = "<init>", extra=()
):
    """The row's config through slowfast's own loading (``parse_args`` + ``load_config``, which
    ends with ``assert_and_infer_cfg``); a ValueError names the row."""
    from slowfast.utils.parser import load_config, parse_args

    argv = command(row, data, out, ckpt, init, extra)[2:]
    argv[1] = os.path.join(REPO, row.config)
    try:
        return load_config(parse_args(argv))
    except (KeyError, ValueError) as err:
        raise ValueError(f"row {row.id}: {err}") from None


# ----------------------------------------------------------------------------- list


def markdown_rows(
    rows: Sequence[Row], data: Optional[Dict[str, str]] = None, out: Optional[str] = None
) -> List[str]:
    """The README's table of ``rows``: id, table, description, command."""
    lines = ["| row | table | description | command |", "|---|---|---|---|"]
    for row in rows:
        cmd = shell_join(command(row, (data or {}).get(row.dataset), out))
        lines.append(f"| `{row.id}` | {row.table} | {row.description} | `{cmd}` |")
    return lines


def cmd_list(args: argparse.Namespace) -> int:
    rows = select_rows(args.rows or (), args.table)
    data = parse_data(args.data) if args.data else {}
    if args.check:
        for row in rows:
            load_row_config(row, data.get(row.dataset, "<dir>"), args.out or "<out>")
        print(f"{len(rows)} rows: every config + overrides loads and validates", file=sys.stderr)
    if args.markdown:
        print("\n".join(markdown_rows(rows, data, args.out)))
        return 0
    for row in rows:
        ckpt = None
        if row.retest and args.out:
            ckpt = expected_checkpoint(row, args.out)
        note = f"; tests the last checkpoint of {row.retest}" if row.retest else ""
        if row.init:
            note += f"; <init>: a {row.init} checkpoint"
        print(f"# {row.id} ({row.label}): {row.description}{note}")
        print(shell_join(command(row, data.get(row.dataset), args.out, ckpt)))
    return 0


# ----------------------------------------------------------------------------- run


def read_summary(row_dir: str) -> Optional[dict]:
    path = os.path.join(row_dir, SUMMARY_FILE)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def has_test_result(summary: Optional[dict]) -> bool:
    return bool(summary) and any(summary.get(k) is not None for k in ("test_top1_acc", "test_map"))


def required_paths(cfg, dataset: str, train: bool) -> List[Tuple[str, str]]:
    """(path, what) pairs a row reads, from its resolved config."""
    if dataset == "kinetics":
        root = cfg.DATA.PATH_TO_DATA_DIR
        splits = ["train", "val", "test"] if train else ["test"]
        return [(os.path.join(root, f"{s}.csv"), "DATA.PATH_TO_DATA_DIR") for s in splits]
    if dataset == "charades":
        root = cfg.DATA.PATH_TO_DATA_DIR
        paths = [(os.path.join(root, "val.csv"), "DATA.PATH_TO_DATA_DIR")]
        if train:
            paths.insert(0, (os.path.join(root, "train.csv"), "DATA.PATH_TO_DATA_DIR"))
        return paths + [(cfg.DATA.PATH_PREFIX, "DATA.PATH_PREFIX")]
    lists = list(cfg.AVA.TEST_LISTS) + (list(cfg.AVA.TRAIN_LISTS) if train else [])
    paths = [(cfg.AVA.FRAME_DIR, "AVA.FRAME_DIR"), (cfg.AVA.ANNOTATION_DIR, "AVA.ANNOTATION_DIR")]
    return paths + [(os.path.join(cfg.AVA.FRAME_LIST_DIR, n), "AVA.FRAME_LIST_DIR") for n in lists]


def check_inputs(rows: Sequence[Row], data: Dict[str, str], out: str, extra, inits) -> None:
    """Every row's config loads and its data is there, before anything runs."""
    for row in rows:
        if row.dataset not in data:
            raise UsageError(f"--data: no folder for {row.dataset} (row {row.id})")
        init = inits.get(row.id, "<init>")
        if init not in ("scratch", "<init>") and not os.path.isfile(init):
            raise UsageError(f"--init {row.id}={init}: no such file")
        try:
            cfg = load_row_config(row, data[row.dataset], out, init=init, extra=extra)
        except ValueError as err:
            raise UsageError(str(err)) from None
        for path, key in required_paths(cfg, row.dataset, cfg.TRAIN.ENABLE):
            if not os.path.exists(path):
                raise UsageError(
                    f"--data: {path} does not exist ({key} of row {row.id}, {row.dataset})"
                )


def parse_inits(values: Sequence[str], rows: Sequence[Row], from_scratch: bool) -> Dict[str, str]:
    inits: Dict[str, str] = {}
    for value in values:
        row_id, sep, path = value.partition("=")
        if not sep or not path:
            raise UsageError(f"--init {value}: expected ROW=CHECKPOINT")
        if row_id not in BY_ID:
            raise UsageError(f"--init: unknown row {row_id}; known rows: {', '.join(BY_ID)}")
        inits[row_id] = path
    missing = [row.id for row in rows if row.init and row.id not in inits]
    if missing and not from_scratch:
        raise UsageError(
            "these rows fine-tune from a Kinetics-400 checkpoint: give --init ROW=CKPT for "
            f"{', '.join(missing)} (or --from-scratch for a smoke run from random weights)"
        )
    for row_id in missing:
        inits[row_id] = "scratch"
    return inits


def cmd_run(args: argparse.Namespace) -> int:
    if len(args.extra) % 2:
        raise UsageError(f"trailing overrides must be KEY VALUE pairs, got {args.extra}")
    chosen = select_rows(args.rows or (), args.table)
    rows = with_dependencies(chosen)
    for row in rows:
        if row not in chosen:
            print(f"adding {row.id}: its checkpoint is re-tested by a selected row")
    data = parse_data(args.data)
    out = os.path.abspath(args.out)
    inits = parse_inits(args.init or (), rows, args.from_scratch)
    extra = list(args.extra)
    check_inputs(rows, data, out, extra, inits)

    failed: Dict[str, str] = {}
    ran = skipped = 0
    for row in rows:
        row_dir = os.path.join(out, row.id)
        if has_test_result(read_summary(row_dir)):
            print(f"skip {row.id}: done ({os.path.join(row_dir, SUMMARY_FILE)})")
            skipped += 1
            continue
        if row.retest in failed:
            failed[row.id] = f"not run: {row.retest} failed"
            print(f"FAIL {row.id}: not run, it re-tests {row.retest}, which failed")
            continue
        ckpt = None
        if row.retest:
            ckpt = newest_checkpoint(os.path.join(out, row.retest))
            if ckpt is None and not args.dry_run:
                failed[row.id] = f"no checkpoint in {os.path.join(out, row.retest)}"
                print(f"FAIL {row.id}: {failed[row.id]}")
                continue
            ckpt = ckpt or expected_checkpoint(row, out, extra)
        argv = command(row, data[row.dataset], out, ckpt, inits.get(row.id), extra, sys.executable)
        if args.dry_run:
            print(shell_join(argv))
            continue
        os.makedirs(row_dir, exist_ok=True)
        log = os.path.join(row_dir, LOG_FILE)
        print(f"run  {row.id} ({row.label}: {row.description}); log {log}", flush=True)
        start = time.time()
        with open(log, "a") as f:
            f.write(f"$ {shell_join(argv)}\n")
            f.flush()
            code = subprocess.call(argv, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
        took = time.time() - start
        ran += 1
        if code != 0:
            failed[row.id] = f"exit status {code}, log {log}"
        elif not has_test_result(read_summary(row_dir)):
            failed[row.id] = f"finished without a test result in {SUMMARY_FILE}, log {log}"
        if row.id in failed:
            print(f"FAIL {row.id}: {failed[row.id]} ({took:.0f} s)", flush=True)
        else:
            print(f"done {row.id} in {took:.0f} s", flush=True)
    if args.dry_run:
        return 0
    print(f"{ran} run, {skipped} skipped (done before), {len(failed)} failed")
    for row_id, why in failed.items():
        print(f"  {row_id}: {why}")
    return 1 if failed else 0


# ----------------------------------------------------------------------------- collect


def result_cells(row: Row, summary: Optional[dict]) -> List[str]:
    """[result, test cost] of a row's run summary."""
    if summary is None:
        return ["not run", ""]
    if not has_test_result(summary):
        return ["no test result", ""]
    if summary.get("test_map") is not None:
        result = f"mAP {100.0 * summary['test_map']:.2f}"
    else:
        top5 = summary.get("test_top5_acc")
        result = f"{summary['test_top1_acc']:.2f} / " + ("-" if top5 is None else f"{top5:.2f}")
    cost = summary.get("test_cost") or {}
    cost_text = ""
    if cost.get("gflops") is not None:
        cost_text = f"{cost['gflops']:.2f} x {cost['steps']} x {cost['views']}"
    return [result, cost_text]


def collect_table(rows: Sequence[Row], out: str) -> Tuple[List[str], List[List[str]]]:
    header = ["row", "table", "top-1 / top-5 or mAP (%)", "test GFLOPs x P x views"]
    header.append(REFERENCE_SOURCE)
    body = []
    for row in rows:
        cells = result_cells(row, read_summary(os.path.join(out, row.id)))
        body.append([row.id, row.table, *cells, row.reference])
    return header, body


def cmd_collect(args: argparse.Namespace) -> int:
    rows = select_rows(args.rows or (), args.table)
    header, body = collect_table(rows, args.out)
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for cells in body:
            print("| " + " | ".join(cells) + " |")
    else:
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
        for cells in [header, *body]:
            print("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
    done = sum(1 for cells in body if cells[2] not in ("not run", "no test result"))
    print(f"{done} of {len(body)} rows have a test result in {args.out}", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def selection(p: argparse.ArgumentParser) -> None:
        p.add_argument("--table", help="only the rows of this table (1, 2, 3, Charades or AVA)")
        p.add_argument("--rows", nargs="+", metavar="ID", help="only these rows")

    p = sub.add_parser("list", help="print each row's command")
    selection(p)
    p.add_argument("--data", action="append", help="DIR or DATASET=DIR (else <dir>)")
    p.add_argument("--out", help="the output root (else <out>)")
    p.add_argument("--markdown", action="store_true", help="as the README's table")
    p.add_argument(
        "--check", action="store_true", help="load and validate every row's config + overrides"
    )
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="run the rows (skipping finished ones)")
    selection(p)
    p.add_argument("--data", action="append", required=True, help="DIR or DATASET=DIR")
    p.add_argument("--out", required=True, help="row R writes OUT/R")
    p.add_argument("--init", action="append", metavar="ROW=CKPT", help="fine-tune ROW from CKPT")
    p.add_argument(
        "--from-scratch", action="store_true", help="rows without --init start from random weights"
    )
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="KEY VALUE pairs for every row")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("collect", help="print the results of OUT's rows")
    selection(p)
    p.add_argument("--out", required=True)
    p.add_argument("--markdown", action="store_true")
    p.set_defaults(func=cmd_collect)
    return parser


_CONFIG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)*$")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    # ``--rows a b KEY VALUE``: the KEY VALUE pairs are overrides, not row ids.
    rows = list(args.rows or [])
    for i, value in enumerate(rows):
        if _CONFIG_KEY.match(value):
            if args.command != "run":
                print(f"error: unknown row {value}; KEY VALUE pairs go to run", file=sys.stderr)
                return 2
            args.rows, args.extra = rows[:i], rows[i:] + list(args.extra)
            break
    try:
        return args.func(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
