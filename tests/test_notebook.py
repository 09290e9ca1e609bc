"""examples/quickstart.ipynb, executed headless through a real Jupyter kernel (nbclient + ipykernel) on the tiny
model: the notebook a user opens is the one that ran, only its parameters cell swapped for tiny sizes."""

import json

import nbclient  # the dev extras; a missing one fails here rather than skipping the notebook silently
import nbformat

from .conftest import ASSETS, REPO

NOTEBOOK = REPO / "examples" / "quickstart.ipynb"

TINY_PARAMETERS = """
MODEL = @TINY@
OUTPUT_DIR = @OUTPUT_DIR@
TASK = {"dataset_name": "reasoning-gym:chain_sum", "dataset_options": {"min_terms": 2, "max_terms": 2}}
EVAL = {"split": "test", "limit": 2, "max_new_tokens": 8}
COLD_START = {"max_steps": 1, "dataset_limit": 4, "max_length": 128, "lora_r": 4, "save_strategy": "no"}
# A random tiny model earns no arithmetic reward: the length reward gives each group different scores.
GRPO = {"reward_funcs": ["tests.train_helpers:length_reward", "correctness"], "reward_weights": [1, 1],
        "dataset_limit": 8, "num_generations": 4, "per_device_train_batch_size": 4, "max_completion_length": 8,
        "max_steps": 2, "save_steps": 1000, "sample_every": 1}
NUM_THREADS = 1
"""


def outputs(cell) -> str:
    """Everything a cell showed: streams, text and HTML, as one string."""
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts += [str(v) for k, v in out.get("data", {}).items() if k.startswith("text/")]
    return "\n".join(parts)


def test_the_committed_notebook_has_no_outputs_and_a_parameters_cell():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit the notebook with outputs cleared"
    assert "parameters" in code[0].metadata.get("tags", [])
    calls = "".join(c.source for c in code)
    for api in ("tinyr1.prepare(", "tinyr1.evaluate(", "tinyr1.sft(", "tinyr1.train(", "tinyr1.compare(",
                "tinyr1.report(", "plt.show()"):
        assert api in calls


def test_the_notebook_runs_on_the_tiny_model_in_a_jupyter_kernel(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    parameters = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    parameters.source = TINY_PARAMETERS.replace("@TINY@", repr(str(ASSETS / "tiny-qwen2"))).replace(
        "@OUTPUT_DIR@", repr(str(tmp_path / "nb")))
    # The kernel starts in the checkout's root, as `jupyter lab` opened there would; tests.train_helpers imports.
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell fails
    cells = {c.source.split("\n")[0]: c for c in nb.cells if c.cell_type == "code"}
    shown = "\n".join(outputs(c) for c in nb.cells if c.cell_type == "code")
    assert "PromptRows(3 rows from reasoning-gym:chain_sum (train)" in shown
    assert "sft completed: 1 step in " in shown and "train completed: 2 steps" in shown
    assert "| after GRPO |" in shown and "n = 2 held-out questions" in shown
    assert "<progress" in shown, "the Trainer's notebook progress bar did not render"
    widgets = [out["data"]["text/plain"] for c in nb.cells for out in c.get("outputs", [])
               if "application/vnd.jupyter.widget-view+json" in out.get("data", {})]
    assert any(text.startswith("eval:") for text in widgets), "the evaluation's tqdm bar is not a notebook widget"
    # The plot comes after tinyr1.report, which must leave the kernel's inline backend alone (pyplot switched to
    # Agg shows nothing).
    plot = next(c for first, c in cells.items() if first.startswith("import matplotlib"))
    assert any("image/png" in out.get("data", {}) for out in plot.outputs), "no inline plot"
    assert "Report(" in shown and (tmp_path / "nb" / "grpo" / "report.md").is_file()
    metrics = [json.loads(line) for line in (tmp_path / "nb" / "grpo" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2]


TRL_SCRIPT = REPO / "examples" / "trl_script.ipynb"

TRL_SCRIPT_TINY = """
MODEL = @TINY@
GSM8K_TRAIN = @GSM8K@
OUTPUT_DIR = @OUTPUT_DIR@
ROWS = 8
STEPS = 2
PER_DEVICE_BATCH = 4
NUM_GENERATIONS = 4
MAX_COMPLETION = 8
"""


def test_the_trl_script_notebook_changes_one_import_and_no_reward(tmp_path):
    nb = nbformat.read(TRL_SCRIPT, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit the notebook with outputs cleared"
    source = "".join(c.source for c in code)
    imports = [line for line in source.splitlines() if line.startswith(("from ", "import "))]
    assert "from tinyr1 import GRPOConfig, GRPOTrainer  # the one changed line; was: from trl import GRPOConfig, " \
        "GRPOTrainer" in imports and not any(line.startswith(("from trl", "import trl")) for line in imports)
    for reward in ("correctness_reward_func", "int_reward_func", "strict_format_reward_func",
                   "soft_format_reward_func", "xmlcount_reward_func"):
        assert f"def {reward}(" in source  # defined in the notebook, as in the tutorial, not imported


def test_the_trl_script_notebook_runs_on_the_tiny_model(tmp_path, gsm8k_dir):
    nb = nbformat.read(TRL_SCRIPT, as_version=4)
    parameters = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    parameters.source = (TRL_SCRIPT_TINY.replace("@TINY@", repr(str(ASSETS / "tiny-qwen2")))
                         .replace("@GSM8K@", repr(str(gsm8k_dir / "train.jsonl")))
                         .replace("@OUTPUT_DIR@", repr(str(tmp_path / "run"))))
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO)}})
    client.execute()
    shown = "\n".join(outputs(c) for c in nb.cells if c.cell_type == "code")
    assert "'status': 'completed', 'global_step': 2, 'trainer': 'GRPOTrainer'" in shown
    assert "Question:" in shown and "Extracted:" in shown  # the tutorial's own sample printing ran
    assert "Report(" in shown and (tmp_path / "run" / "report.md").is_file()
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["cpu_fast_path"]["used"] and (tmp_path / "run" / "checkpoint-2").is_dir()
    assert "rewards/correctness_reward_func/mean" in (tmp_path / "run" / "metrics.jsonl").read_text()
