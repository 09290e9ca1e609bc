"""``tinyr1 prepare``: write the recipe's prompt rows (``{prompt: [system, user], answer: gold}``) as JSON lines.

    tinyr1 prepare --dataset_name ../shared/data/gsm8k --split train --output train.jsonl
    tinyr1 prepare --dataset_name reasoning-gym:gsm_symbolic --limit 100 --seed 1 --output sym.jsonl

The sources and the row rules are ``tinyr1.tasks.data``'s, shared with ``train``, ``eval`` and ``sft``.

``--output`` never replaces a file of yours: an existing file is replaced only if an earlier ``tinyr1 prepare``
wrote it and it is unchanged since (the hidden sidecar ``.<name>.tinyr1`` beside it records that; see
``tinyr1.infra.paths``), and never when it is the input, however the input was named (the file, its folder, a
symlink). The rows are written atomically: a full disk leaves the old file or none, and no temporary file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tinyr1.infra.errors import one_line_errors
from tinyr1.infra.files import write_jsonl
from tinyr1.infra.naming import command_line, setting
from tinyr1.infra.options import parse_command
from tinyr1.infra.paths import make_dirs, mark_written, written_by
from tinyr1.run_folder import ownership
from tinyr1.tasks.answers import SYSTEM_PROMPT
from tinyr1.tasks.data import DEFAULT_DATASET, load_examples, local_source_files
from tinyr1.tasks.rows import to_prompt_rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinyr1 prepare",
        description="Write the recipe's prompt rows ({prompt: [system, user], answer: gold}) as JSON lines.",
    )
    parser.add_argument("--dataset_name", default=DEFAULT_DATASET,
                        help="hub id (default openai/gsm8k), modelscope/gsm8k, a local folder or file, "
                             "or reasoning-gym:<name> such as reasoning-gym:gsm_symbolic")
    parser.add_argument("--split", default="train", help="split to read: train or test (default train)")
    parser.add_argument("--output", required=True, help="JSON-lines file to write")
    parser.add_argument("--limit", type=int, default=None,
                        help="keep the first N rows; for reasoning-gym, how many to generate (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed for reasoning-gym generation (default 0)")
    parser.add_argument("--dataset_options", nargs="+", default=None, metavar="KEY=VALUE",
                        help="reasoning-gym generator options, e.g. min_terms=3 max_terms=3 max_digits=2")
    parser.add_argument("--system_prompt", default=SYSTEM_PROMPT, help="system prompt (default: the recipe's)")
    parser.add_argument("--skip_bad_rows", action="store_true",
                        help="skip rows whose answer lacks '#### <gold>' and report how many, instead of stopping")
    return one_line_errors(parser, "tinyr1 prepare")


def parse_args(argv: list[str] | None = None, *, values: dict | None = None,
               caller: str | None = None) -> argparse.Namespace:
    """The options, range-checked, and the output file checked before the data is read or generated."""
    args = parse_command(build_parser(), argv, values, caller)
    # Before the data is read or generated: the output is neither one of the input's files nor a file of yours.
    ownership.check_file(args.output, "prepare", setting("output"),
                         inputs=local_source_files(args.dataset_name, args.split))
    return args


def load_rows(args: argparse.Namespace) -> tuple[list[dict], int]:
    """The prompt rows, and how many source rows were skipped (``--skip_bad_rows``)."""
    examples, skipped = load_examples(args.dataset_name, args.split, args.limit, args.seed, args.skip_bad_rows,
                                      args.dataset_options)
    return to_prompt_rows(examples, args.system_prompt), skipped


def write_rows(output: str | Path, rows: list[dict]) -> Path:
    """Write the rows as JSON lines, atomically, and mark the file as prepare's (so only prepare may replace it)."""
    output = Path(output).expanduser()
    make_dirs(output.parent, setting("output"))
    write_jsonl(output, rows)
    mark_written(output, "prepare")
    return output


@command_line
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    replacing = written_by(Path(args.output).expanduser()) is not None
    rows, skipped = load_rows(args)
    output = write_rows(args.output, rows)
    print(f"wrote {len(rows)} rows from {args.dataset_name} ({args.split}) to {output}"
          + (" (replacing the rows an earlier tinyr1 prepare wrote there)" if replacing else "")
          + (f"; skipped {skipped} rows without '####'" if skipped else ""))
    print("example row:")
    print(json.dumps(rows[0], indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
