"""tinyr1.infra.quiet: dependency warnings and one-second progress bars filtered, for an API call only."""

import importlib
import os
import subprocess
import sys
import warnings

import datasets.utils.tqdm as _unused  # noqa: F401 - loads the module the filter switches
import pytest
import transformers.utils.logging as transformers_logging

from tinyr1.infra.quiet import quieted

datasets_tqdm = importlib.import_module("datasets.utils.tqdm")


def _warn(category, module: str) -> None:
    warnings.warn_explicit("deprecated", category, f"{module.replace('.', '/')}.py", 1, module=module)


@pytest.fixture
def bars_on():
    """The bars as a user's process has them; a CLI command run in this test process turns them off for good."""
    found = (transformers_logging.is_progress_bar_enabled(), datasets_tqdm.are_progress_bars_disabled())
    transformers_logging.enable_progress_bar()
    datasets_tqdm.enable_progress_bars()
    yield
    if not found[0]:
        transformers_logging.disable_progress_bar()
    if found[1]:
        datasets_tqdm.disable_progress_bars()


def test_quieted_filters_the_libraries_warnings_and_bars_and_puts_them_back(bars_on):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quieted():
            _warn(FutureWarning, "transformers.modeling_utils")  # a library's: filtered
            _warn(FutureWarning, "my_rewards")  # the user's own: shown
            assert not transformers_logging.is_progress_bar_enabled() and datasets_tqdm.are_progress_bars_disabled()
        _warn(FutureWarning, "transformers.modeling_utils")  # after the call: shown again
    assert [w.filename for w in seen] == ["my_rewards.py", "transformers/modeling_utils.py"]
    assert transformers_logging.is_progress_bar_enabled() and not datasets_tqdm.are_progress_bars_disabled()


@pytest.mark.parametrize("module", ["trl.trainer.grpo_trainer", "peft.tuners", "torch.utils.checkpoint"])
def test_every_library_tinyr1_calls_is_covered(module):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quieted():
            _warn(DeprecationWarning, module)
    assert seen == []


def test_deepspeeds_cpu_accelerator_warning_is_left_out_and_its_others_stay():
    # The real import: DeepSpeed makes its logger (a level and a handler to stdout) as it loads, after tinyr1's
    # filter is in place, and warns while it picks the CPU as its accelerator.
    pytest.importorskip("deepspeed")
    code = ("import logging; from tinyr1.infra.quiet import quiet_dependencies; quiet_dependencies()\n"
            "from deepspeed.accelerator import get_accelerator; get_accelerator()\n"
            "logging.getLogger('DeepSpeed').warning('another warning')")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Setting accelerator to CPU" not in out.stdout + out.stderr and "another warning" in out.stdout
