"""A training run's report: plots, report.md and report.html in its folder (what ``tinyr1 report``, ``tinyr1.report``
and the end of ``tinyr1 train`` write)."""

from __future__ import annotations

import base64
import json
import logging
import math
import re
from pathlib import Path

from tinyr1.evaluation.learning_summary import learning_lines
from tinyr1.evaluation.trl_log import read_trl_run
from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.files import atomic_file, read_json, read_text, write_together
from tinyr1.infra.log import TO_STDERR
from tinyr1.infra.naming import setting
from tinyr1.infra.paths import check_output_dir, check_output_file, make_dirs
from tinyr1.run_folder import ownership
from tinyr1.run_folder.folder import MARKER
from tinyr1.run_folder.logs import read_objects, read_rows
from tinyr1.run_folder.run_json import mark_if_killed
from tinyr1.tasks import answers
from tinyr1.tasks.scoring import rescored_metrics

logger = logging.getLogger(__name__)

# Opt-in sampling options' per-step counts (tinyr1.training.dynamic_sampling, tinyr1.training.curriculum),
# plotted if logged.
SAMPLING_PANELS = (("dynamic_sampling/dropped_all_right", "groups dropped: all right"),
                   ("dynamic_sampling/dropped_all_wrong", "groups dropped: all wrong"),
                   ("dynamic_sampling/rounds", "refill rounds"), ("curriculum/solved", "prompts solved (retired)"),
                   ("curriculum/failed", "prompts failed"))


# Written into each plot's PNG header (the Software field), so a later report knows the plot is its own to replace.
PLOT_MARK = "tinyr1 report"


# accuracy_strict: the last <answer> block is right; accuracy_recipe_reward: what the correctness reward paid for
# (a bare right number counts). Both as tinyr1.evaluation.evaluate defines them.
EVAL_METRICS = ("accuracy_strict", "truncated_fraction", "accuracy_flexible", "accuracy_recipe_reward",
                "format_strict", "format_soft", "worked_step_fraction", "mean_completion_tokens", "tokens_per_second")


# Values beyond this are not plotted (matplotlib cannot place ticks over a range near the float maximum).
PLOTTABLE = 1e100


def _read_jsonl(path: Path) -> list[dict]:
    # A line a kill cut, or one damaged or edited by hand, is skipped, never a reason to stop (tinyr1.run_folder.logs)
    return read_objects(path)[0]


def series(metrics: list[dict], key: str) -> tuple[list[int], list[float]]:
    """Steps and values of one metric, skipping steps where it is missing, null (NaN) or not a number."""
    points = [(m["step"], m[key]) for m in metrics if isinstance(m, dict) and _number(m.get(key))
              and _number(m.get("step")) and abs(m[key]) <= PLOTTABLE]
    return [p[0] for p in points], [float(p[1]) for p in points]


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def smooth(values: list[float]) -> list[float]:
    """Trailing rolling mean over about a twentieth of the run (none for short runs).

    >>> smooth([1.0, 2.0, 3.0])
    [1.0, 2.0, 3.0]
    """
    window = max(1, len(values) // 20)
    if window == 1:
        return list(values)
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def _plot(ax, steps, values, label, color):
    short = len(steps) <= 50
    ax.plot(steps, values, marker="o" if short else None, markersize=4, linewidth=1.5 if short else 0.6,
            alpha=1.0 if short else 0.35, color=color, label=label if short else f"{label} (raw)")
    if not short:
        ax.plot(steps, smooth(values), linewidth=2, color=color, label=f"{label} (rolling mean)")


def make_plots(metrics: list[dict], plot_dir: Path) -> list[Path]:
    # A Figure of its own, not pyplot: no GUI backend is needed, and the process's pyplot backend (a notebook's
    # inline one) and open figures are left as they are.
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    plot_dir.mkdir(parents=True, exist_ok=True)
    train_logs = [m for m in metrics if "loss" in m or "reward" in m]
    reward_keys = sorted({k for m in train_logs for k in m if k.startswith("rewards/") and k.endswith("/mean")})
    panels = [("reward", "total reward")] + [(k, k.split("/")[1].replace("_reward_func", "")) for k in reward_keys]
    extra = [(k, t) for k, t in (("completions/mean_length", "completion length (tokens)"),
                                 ("grad_norm", "grad norm"), ("learning_rate", "learning rate"), ("kl", "kl"),
                                 ("loss", "loss"), *SAMPLING_PANELS) if series(train_logs, k)[0]]
    written = []
    for name, group in (("rewards.png", panels), ("training.png", extra)):
        group = [(k, t) for k, t in group if series(train_logs, k)[0]]
        if not group:
            continue
        cols = min(3, len(group))
        rows = -(-len(group) // cols)
        fig = Figure(figsize=(5 * cols, 3.4 * rows))
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax, (key, title) in zip(axes.flat, group, strict=False):
            steps, values = series(train_logs, key)
            _plot(ax, steps, values, title, "tab:blue" if key == "reward" else "tab:green")
            ax.set_title(title)
            ax.set_xlabel("step")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
            ax.grid(alpha=0.3)
            if key == "grad_norm" and values and max(values) > 0 and max(values) / max(min(values), 1e-12) > 100:
                ax.set_yscale("log")
        for ax in list(axes.flat)[len(group):]:
            ax.set_visible(False)
        fig.tight_layout()
        with atomic_file(plot_dir / name) as tmp:  # a full disk: one line, the old plot kept, no temporary
            fig.savefig(tmp, format="png", dpi=110, metadata={"Software": PLOT_MARK})
        written.append(plot_dir / name)
    return written


def eval_table(before: dict | None, after: dict | None) -> list[str]:
    if not before and not after:
        return [f"No before/after evaluation in this run (train with `{setting('eval_before_after', True)}`).", ""]
    lines = ["| metric | before | after | change |", "|---|---:|---:|---:|"]
    for key in EVAL_METRICS:
        b, a = ((m or {}).get(key) for m in (before, after))
        b, a = (v if _number(v) else None for v in (b, a))  # a hand-edited metrics.json: shown blank
        if b is None and a is None:
            continue
        change = f"{a - b:+.3f}" if a is not None and b is not None else ""
        lines.append(f"| {key} | {'' if b is None else f'{b:.3f}'} | {'' if a is None else f'{a:.3f}'} | {change} |")
    n = (after or before or {}).get("n")
    return lines + ["", f"n = {n} questions from {(after or before or {}).get('dataset')} "
                        f"({(after or before or {}).get('split')}), greedy decoding.", ""]


def _sample_pairs(run_dir: Path, count: int = 3) -> list[str]:
    before = {s.get("question"): s for s in _read_jsonl(run_dir / "eval" / "before" / "samples.jsonl")
              if isinstance(s.get("question"), str)}
    after = _read_jsonl(run_dir / "eval" / "after" / "samples.jsonl")
    lines = []
    for sample in [s for s in after if s.get("question") in before][:count]:
        lines += [f"**Q:** {sample['question']}  ", f"**gold:** {sample.get('answer')}", ""]
        for label, s in (("before", before[sample["question"]]), ("after", sample)):
            text, gold = str(s.get("completion") or ""), str(s.get("answer"))
            ok = ("correct" if answers.is_correct(text, gold, scoring="strict") else
                  "correct (flexible)" if answers.is_correct(text, gold, scoring="flexible") else "wrong")
            lines += [f"*{label}* ({ok}, strict format: {'yes' if s.get('format_strict') else 'no'}):", "",
                      "```text", str(s.get("completion") or "").strip()[:1200], "```", ""]
    return lines


def write_report(run_dir: str | Path, output_dir: str | Path | None = None, flag: str | None = None) -> Path:
    """Write report.md, report.html and plots/ for a run and return the path of report.md: into the run's folder,
    or into ``output_dir`` (a new folder, or one an earlier report wrote). A plain trl run's folder is read, never
    written: its report needs ``output_dir`` (``flag``: how the caller names it, in messages)."""
    flag = flag or setting("output_dir")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TinyR1Error(f"{run_dir}: no such run folder")
    tinyr1_run = _is_tinyr1_run(run_dir)
    trl = None if tinyr1_run else read_trl_run(run_dir)
    if output_dir is None:
        if trl is not None:
            raise TinyR1Error(f"{run_dir}: a trl run ({trl.state_file.relative_to(run_dir)}), not a tinyr1 run; "
                              f"tinyr1 writes nothing into it: give {flag} NEW_FOLDER for its report")
        # the rule every command follows (train's): a report goes only into a tinyr1 run's folder
        ownership.check_folder(run_dir, "report", "tinyr1 report", owners=ownership.RUNS,
                               fix=f"give the output_dir of a tinyr1 train or sft run, or {flag} NEW_FOLDER")
    if trl is not None:
        metrics, skipped, log = trl.rows, trl.skipped, trl.state_file
        run = {"status": f"a trl run (log history of {trl.state_file.relative_to(run_dir)})", **trl.facts}
    else:
        metrics, skipped = read_rows(run_dir / "metrics.jsonl")
        log = run_dir / "metrics.jsonl"
        if tinyr1_run:
            mark_if_killed(run_dir)  # a run.json left "running" by a dead process says "killed" from now on
        run = read_json(run_dir / "run.json") or {}
    if skipped:
        logger.warning(f"warning: {log}: {skipped} malformed row(s) skipped (each row must be a JSON object with a "
                       "whole-number step and numeric values)", extra=TO_STDERR)
    if not metrics and not run:
        raise TinyR1Error(f"{run_dir}: no metrics.jsonl or run.json; is this a tinyr1 train output_dir?")
    out = run_dir if output_dir is None else _report_folder(Path(output_dir).expanduser(), run_dir, trl, flag)

    for name in ("report.md", "report.html"):  # checked before plotting, not after
        check_output_file(out / name, "report")
        if (out / name).is_file() and not ownership.is_ours(out / name):
            raise TinyR1Error(f"{out / name}: not a report tinyr1 wrote; move it, tinyr1 will not replace it")
    check_output_dir(out / "plots", "report")
    for name in ("rewards.png", "training.png"):
        if not _own_plot(out, name):
            raise TinyR1Error(f"{out / 'plots' / name}: not a plot tinyr1 wrote; move it, tinyr1 will not "
                              "replace it")
    plots = make_plots(metrics, out / "plots")
    markdown = "\n".join(_report_lines(run_dir, metrics, run, plots, trl is not None))
    report = out / "report.md"
    write_together([(report, markdown.encode("utf-8")),
                    (out / "report.html", to_html(markdown, out).encode("utf-8"))])
    return report


def _is_tinyr1_run(folder: Path) -> bool:
    try:
        return ownership.check_folder(folder, "report", "report", owners=ownership.RUNS) is not None
    except TinyR1Error:
        return False


def _report_folder(out: Path, run_dir: Path, trl, flag: str) -> Path:
    """``--output_dir``: new, empty or an earlier report's, and never inside a folder tinyr1 did not write."""
    if trl is not None and (out.resolve() == run_dir.resolve() or run_dir.resolve() in out.resolve().parents):
        raise TinyR1Error(f"{flag} {out}: inside the trl run {run_dir}, which tinyr1 never writes into; "
                          "pick a folder outside it")
    ownership.check_folder(out, "report", flag, owners=("report",))
    make_dirs(out, flag)
    ownership.claim_outputs(out, "report", ["report.md", "report.html", "plots"])
    return out


def _report_lines(run_dir: Path, metrics: list[dict], run: dict, plots: list[Path], trl: bool) -> list[str]:
    before, after = (rescored_metrics(run_dir / "eval" / s) for s in ("before", "after"))
    steps = [m for m in metrics if "loss" in m]
    facts = [("model", run.get("model")), ("data", f"{run.get('dataset')} ({run.get('split')})"),
             ("steps", run.get("global_step", steps[-1]["step"] if steps else None)),
             ("status", run.get("status")), ("stopped because", run.get("stopped_because")),
             ("wall time", f"{run.get('wall_seconds')} s"),
             ("device", run.get("device")),
             ("cpu", run["cpu"].get("cpu_name") if isinstance(run.get("cpu"), dict) else None),
             ("precision", run.get("precision_reason")),
             ("skipped steps (non-finite)", run.get("skipped_steps"))]
    lines = [f"# tinyr1 run report: `{run_dir.name}`", "", "| fact | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in facts if v not in (None, "None (None)", "None s")]

    glance = learning_lines(run_dir, rows=metrics)
    if glance:
        lines += ["", "## Did it learn?", ""] + glance
    lines += ["", "## Before and after", ""] + (eval_table(before, after) if not trl else [
        # the command line's own, beside the API's
        f"A trl run has no before/after evaluation: `tinyr1 eval --model_name_or_path {run_dir}` "
        f"(`tinyr1.evaluate(\"{run_dir}\")`) scores its model.",
        ""])
    lines += ["## Training curves", ""] + [f"![{p.stem}](plots/{p.name})" for p in plots] + [""]
    pairs = _sample_pairs(run_dir)
    if pairs:
        lines += ["## Sample answers, before and after", ""] + pairs
    train_samples = _read_jsonl(run_dir / "samples.jsonl")
    if train_samples:
        last = train_samples[-1]
        lines += [f"## Last training sample (step {last.get('step')})", "", f"**Q:** {last.get('question')}  ",
                  f"**gold:** {last.get('answer')} — **extracted:** {last.get('extracted')}", "", "```text",
                  str(last.get("completion") or "").strip()[:1200], "```", ""]
    compare_md = run_dir / "compare.md"
    if compare_md.is_file():
        lines += ["## The recipe's question", "", read_text(compare_md).split("\n", 1)[-1], ""]
    return lines


def _own_plot(run_dir: Path, name: str) -> bool:
    """Whether plots/``name`` is absent or tinyr1's: its PNG header carries PLOT_MARK, or (a report from before the
    mark) the run's marker lists plots/ as the run's own."""
    plot = run_dir / "plots" / name
    if not plot.exists() and not plot.is_symlink():
        return True
    if plot.is_symlink() or not plot.is_file():
        return False
    try:
        with plot.open("rb") as f:
            if PLOT_MARK.encode() in f.read(4096):
                return True

        return "plots" in json.loads((run_dir / MARKER).read_text(encoding="utf-8")).get("paths", [])
    except (OSError, ValueError, AttributeError):
        return False


def to_html(markdown: str, base: Path) -> str:
    """The report rendered by markdown-it (CommonMark plus tables), plots embedded as base64 so the file stands
    alone. Raw HTML in the Markdown (a completion can hold anything) is shown as text, never rendered."""
    from markdown_it import MarkdownIt

    def embed(match: re.Match) -> str:
        image = base / match.group(2)
        if not image.is_file():
            return match.group(0)
        return f"![{match.group(1)}](data:image/png;base64,{base64.b64encode(image.read_bytes()).decode()})"

    inlined = re.sub(r"!\[([^\]]*)\]\((plots/[^)\s]+\.png)\)", embed, markdown)
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(inlined)
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px}pre{background:#f6f6f6;padding:8px;white-space:pre-wrap}"
             "img{max-width:100%}")
    return f"<!doctype html><meta charset='utf-8'><title>tinyr1 run report</title><style>{style}</style>\n" + body
