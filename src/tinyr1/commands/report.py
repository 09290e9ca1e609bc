"""``tinyr1 report RUN_DIR``: plots and a Markdown/HTML report of a training run.

    tinyr1 report outputs/my-run      # writes report.md, report.html and plots/*.png in the run folder
    tinyr1 report my-trl-output --output_dir my-trl-report   # a plain trl run: read, the report written elsewhere

Reads what ``tinyr1 train`` leaves behind (metrics.jsonl, samples.jsonl, run.json, eval/before and eval/after,
compare.md) and works with whatever is there. A plain trl (or transformers Trainer) output_dir is read through its
``trainer_state.json`` log history (``tinyr1.evaluation.trl_log``) and never written into. Plots stay readable from
5 steps (markers) to 5000 (a thin raw line under a rolling mean).

Every file is written atomically (a full disk is one line naming the path and leaves the old file or none), and
only over files a tinyr1 report wrote: report.md/html by their title, plots by the mark in their PNG header.
"""

from __future__ import annotations

import argparse
import sys

from tinyr1.evaluation.report import write_report
from tinyr1.infra.errors import one_line_errors
from tinyr1.infra.naming import command_line


@command_line
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tinyr1 report", description="Plots and a Markdown/HTML report for a "
                                "tinyr1 train output folder or a plain trl one.")
    p.add_argument("run_dir", help="a tinyr1 train or sft output_dir, or a plain trl output_dir (its "
                   "trainer_state.json, or its newest checkpoint's)")
    p.add_argument("--output_dir", help="write the report into this new folder instead of the run's (needed for a "
                   "trl run, whose folder tinyr1 never writes into)")

    args = one_line_errors(p, "tinyr1 report").parse_args(argv)
    report = write_report(args.run_dir, args.output_dir)
    print(f"wrote {report} and {report.with_suffix('.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
