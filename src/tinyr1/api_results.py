"""What the Python API (``tinyr1.api``) returns: plain objects over the files a run leaves, each printing a short
summary (and showing one in a notebook).

- ``Run`` (``tinyr1.train``, ``tinyr1.sft``): ``status`` (``completed``, ``interrupted``...), ``output_dir``,
  ``model_path`` (what ``evaluate``/``generate``/``train`` accept), ``metrics`` (metrics.jsonl's rows, one per log),
  ``facts`` (run.json), ``samples``, ``series(key)`` for plotting, and the before/after evaluations of a run with
  ``eval_before_after``. ``Run.load(folder)`` opens an earlier run.
- ``Evaluation`` (``tinyr1.evaluate``): a dict of metrics.json's values, plus ``samples`` (one row per question).
- ``Comparison`` (``tinyr1.compare``) and ``Report`` (``tinyr1.report``): Markdown, and the files written.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from tinyr1.infra.files import read_json, read_jsonl, read_text
from tinyr1.run_folder.logs import read_rows

_HEADLINE = ("accuracy_strict", "accuracy_flexible", "format_strict", "mean_completion_tokens")


def _number(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


@dataclass
class Run:
    """A training run's folder as ``tinyr1 train``/``tinyr1 sft`` left it."""

    output_dir: Path
    command: str = ""
    exit_code: int = 0  # the CLI's code for the same stop: 0, or 130/143 after Ctrl-C/SIGTERM
    facts: dict = field(default_factory=dict)
    metrics: list[dict] = field(default_factory=list)

    @classmethod
    def load(cls, output_dir: str | Path, exit_code: int = 0) -> Run:
        """Read run.json and metrics.jsonl of a run folder (what a run writes as it goes)."""
        folder = Path(output_dir)
        facts = read_json(folder / "run.json") or {}
        metrics = read_rows(folder / "metrics.jsonl")[0]  # one row a logged step; a damaged row skipped
        return cls(folder, str(facts.get("command", "")), exit_code, facts, metrics)

    @property
    def status(self) -> str:
        """run.json's status: completed, interrupted, collapsed, failed, out of memory, running, or unknown."""
        return str(self.facts.get("status", "unknown"))

    @property
    def model_path(self) -> str:
        """The trained model as every command accepts it: the folder (a LoRA adapter, a merged model, or, for an
        interrupted run, its newest checkpoint)."""
        return str(self.output_dir)

    @property
    def steps(self) -> int | None:
        return self.facts.get("global_step")

    @property
    def samples(self) -> list[dict]:
        """samples.jsonl: the question, completion and rewards kept every ``sample_every`` steps."""
        return read_jsonl(self.output_dir / "samples.jsonl", missing_ok=True)

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """Steps and values of one logged metric (``reward``, ``loss``, ``rewards/<name>/mean``...), nulls
        skipped: ``plt.plot(*run.series("reward"))``."""
        from tinyr1.evaluation.report import series  # lazy: the report module loads its plotting code

        return series(self.metrics, key)

    def evaluation(self, stage: str) -> Evaluation | None:
        """The run's own ``before`` or ``after`` evaluation (``eval_before_after: true``), or None."""
        folder = self.output_dir / "eval" / stage
        return Evaluation.load(folder) if (folder / "metrics.json").is_file() else None

    def summary_lines(self) -> list[str]:
        wall = self.facts.get("wall_seconds")
        steps = "? steps" if self.steps is None else f"{self.steps} step{'' if self.steps == 1 else 's'}"
        lines = [f"{self.command or 'run'} {self.status}: {steps}"
                 + (f" in {wall:.0f} s" if isinstance(wall, (int, float)) else "") + f", {self.output_dir}"]
        for key in ("reward", "loss"):
            _, values = self.series(key)
            if values:
                lines.append(f"{key}: {values[0]:.3f} (first step) -> {values[-1]:.3f} (last step)")
        before, after = self.evaluation("before"), self.evaluation("after")
        if before and after:
            lines.append(f"accuracy_strict: {_number(before.get('accuracy_strict'))} (before) -> "
                         f"{_number(after.get('accuracy_strict'))} (after), n={after.get('n')}")
        return lines

    def __repr__(self) -> str:
        return "Run(" + "\n    ".join(self.summary_lines()) + ")"

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in self.summary_lines()[1:])
        return f"<b>tinyr1 {html.escape(self.summary_lines()[0])}</b><ul>{items}</ul>"


class Evaluation(dict):
    """metrics.json's values (``accuracy_strict``, ``accuracy_flexible``, ``format_strict``, ``n``...) as a dict,
    plus ``samples`` (question, answer, completion and the per-question scores) and ``output_dir`` (or None)."""

    def __init__(self, metrics: dict, samples: list[dict] | None = None, output_dir: str | Path | None = None):
        super().__init__(metrics)
        self.samples = samples or []
        self.output_dir = Path(output_dir) if output_dir is not None else None

    @classmethod
    def load(cls, folder: str | Path) -> Evaluation:
        """An evaluation ``tinyr1 eval --output_dir folder`` (or a run's eval/before, eval/after) wrote."""
        folder = Path(folder)
        return cls(read_json(folder / "metrics.json") or {},
                   read_jsonl(folder / "samples.jsonl", missing_ok=True), folder)

    def summary_lines(self) -> list[str]:
        what = self.get("model") or self.get("predictions") or "?"
        head = f"{what} on {self.get('dataset')} ({self.get('split')}), n={self.get('n')}"
        return [head] + [f"{key}: {_number(self[key])}" for key in _HEADLINE if self.get(key) is not None]

    def __repr__(self) -> str:
        lines = self.summary_lines()
        return f"Evaluation({lines[0]}: " + ", ".join(lines[1:]) + ")"

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(line.split(': ')[0])}</td><td>{html.escape(line.split(': ')[1])}"
                       "</td></tr>" for line in self.summary_lines()[1:])
        return f"<b>{html.escape(self.summary_lines()[0])}</b><table>{rows}</table>"


@dataclass
class Comparison:
    """``tinyr1.compare``'s answers of two models, as Markdown (``str(comparison)``; shown rendered in a notebook)."""

    base: str
    trained: str
    markdown: str
    output: Path | None = None

    def __str__(self) -> str:
        return self.markdown

    def __repr__(self) -> str:
        prompts = self.markdown.count("\n## ")
        return (f"Comparison({self.base} vs {self.trained}: {prompts} prompt(s)"
                + (f", written to {self.output}" if self.output else "") + ")")

    def _repr_markdown_(self) -> str:
        return self.markdown


@dataclass
class Report:
    """``tinyr1.report``'s files: report.md, report.html (plots embedded) and plots/*.png in the run folder."""

    markdown_path: Path
    html_path: Path
    plots: list[Path]

    @property
    def markdown(self) -> str:
        return read_text(self.markdown_path)

    def __repr__(self) -> str:
        return f"Report({self.markdown_path}, {self.html_path.name}, {len(self.plots)} plot(s) in plots/)"


class PromptRows(list):
    """``tinyr1.prepare``'s rows (``{"prompt": [system, user], "answer": gold}``), a list that prints briefly."""

    def __init__(self, rows: list[dict], dataset: str, split: str, skipped: int = 0):
        super().__init__(rows)
        self.dataset, self.split, self.skipped = dataset, split, skipped

    def __repr__(self) -> str:
        first = self[0]["prompt"][-1]["content"] if self else ""
        return (f"PromptRows({len(self)} rows from {self.dataset} ({self.split})"
                + (f", {self.skipped} skipped" if self.skipped else "")
                + (f"; first: {first[:60]!r} -> {self[0]['answer']!r}" if self else "") + ")")
