"""A run's logs, ``metrics.jsonl`` and ``samples.jsonl``: one row per logged step, as a resume and a report see them.

- A resume trains again every step after its checkpoint, so the rows those steps left (a kill after the log, a full
  disk during the save) are dropped first (``drop_rows_after``, the file rewritten whole or not at all): each step
  is logged once, and ``Run.series()``, the report and its plots count it once.
- A report reads the rows it can use and skips the others, saying how many (``read_rows``): a line that is not a
  JSON object, a row without a whole-number step, a value that is not a number. A hand-edited or damaged row never
  stops a report.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from tinyr1.infra.files import read_text, write_text

logger = logging.getLogger(__name__)

LOGS = ("metrics.jsonl", "samples.jsonl")


def _step(row) -> int | None:
    step = row.get("step") if isinstance(row, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) and step >= 0 else None


def drop_rows_after(run_dir: Path, step: int) -> int:
    """Remove the rows of steps after ``step`` from the run's logs (rows tinyr1 cannot read are kept as they are);
    returns how many were removed, said in one line."""
    dropped, last = 0, step
    for name in LOGS:
        path = Path(run_dir) / name
        if not path.is_file():
            continue
        kept, lines = [], read_text(path).split("\n")
        for line in lines:
            try:
                logged = _step(json.loads(line)) if line.strip() else None
            except ValueError:
                logged = None
            if logged is not None and logged > step:
                dropped += 1
                last = max(last, logged)
                continue
            kept.append(line)
        if len(kept) != len(lines):
            write_text(path, "\n".join(kept))
    if dropped:
        steps = f"step {last}" if last == step + 1 else f"steps {step + 1}-{last}"
        logger.info(f"{steps} trained again from the checkpoint of step {step}: {dropped} logged row(s) of "
                    f"{'it' if last == step + 1 else 'them'} dropped, so each step is logged once")
    return dropped


def _usable(row) -> bool:
    if _step(row) is None:
        return False
    return all(value is None or isinstance(value, (bool, int, float)) for value in row.values())


def read_objects(path: Path) -> tuple[list[dict], int]:
    """The JSON objects of a JSON-lines file, one a line, and how many lines were skipped (not an object: damaged,
    hand-edited, cut by a kill); an absent file has none."""
    path = Path(path)
    if not path.is_file():
        return [], 0
    rows, skipped = [], 0
    for line in read_text(path).split("\n"):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            skipped += 1
    return rows, skipped


def read_rows(path: Path) -> tuple[list[dict], int]:
    """The usable rows of a metrics.jsonl (see the module docstring), non-finite numbers as None, and how many rows
    were skipped."""
    objects, skipped = read_objects(path)
    rows, unusable = usable_rows(objects)
    return rows, skipped + unusable


def usable_rows(objects: list) -> tuple[list[dict], int]:
    """The rows a report can use among ``objects`` (metrics.jsonl's, or a trl run's log history), non-finite
    numbers as None, and how many were not usable."""
    rows, skipped = [], 0
    for row in objects:
        if _usable(row):
            rows.append({k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()})
        else:
            skipped += 1
    return rows, skipped
