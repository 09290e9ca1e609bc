"""tinyr1: DeepSeek-R1-style GRPO reasoning training on small instruct models, on a CPU or GPUs.

In a trl script, change one import (examples/trl_script.ipynb runs the tutorial's script that way):

    from tinyr1 import GRPOConfig, GRPOTrainer      # was: from trl import GRPOConfig, GRPOTrainer

As a library (``tinyr1.api``; examples/quickstart.ipynb walks through it):

    import tinyr1
    cold = tinyr1.sft("recipes/smollm2-135m-instruct/sft-arith-coldstart-cpu.yaml", max_steps=8, output_dir="runs/c")
    run = tinyr1.train("recipes/smollm2-135m-instruct/grpo-arith-cpu.yaml", model=cold, max_steps=20,
                       output_dir="runs/a")
    after = tinyr1.evaluate(run.model_path, dataset_name="reasoning-gym:chain_sum", limit=32)

Every public name is loaded on first use, so ``import tinyr1`` stays cheap (no torch) and changes nothing in the
process but the ``tinyr1`` logger (``tinyr1.infra.log``: what tinyr1 says goes through ``logging``).
docs/architecture.md describes the layers: ``commands/`` and the API at the top; ``training/``, ``evaluation/``,
``models/``, ``run_folder/``, ``tasks/`` and ``cpu/`` (the fast path) as the library; ``infra/`` below them all.
"""

from tinyr1.infra.errors import CollapseError, OutOfMemoryError, TinyR1Error, TinyR1ValueError
from tinyr1.infra.log import configure_library_logger
from tinyr1.infra.version import __version__

configure_library_logger()  # logging.getLogger("tinyr1"): INFO, printed unless the program configured logging

# name -> the module that defines it, imported on first access (PEP 562).
_LAZY = {
    **dict.fromkeys(("train", "sft", "evaluate", "compare", "report", "generate", "prepare", "configure_cpu"),
                    "tinyr1.api"),
    **dict.fromkeys(("Run", "Evaluation", "Comparison", "Report", "PromptRows"), "tinyr1.api_results"),
    "GRPOTrainer": "tinyr1.training.grpo_trainer",
    "SFTTrainer": "tinyr1.training.sft_trainer",
    **dict.fromkeys(("GRPOConfig", "SFTConfig"), "tinyr1.training.config"),
}

__all__ = ["__version__", "TinyR1Error", "TinyR1ValueError", "CollapseError", "OutOfMemoryError", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tinyr1' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
