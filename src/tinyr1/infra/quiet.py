"""What tinyr1 leaves out of its output, in one place: messages of its dependencies that tell a tinyr1 user nothing
they can act on, and that interleave with tinyr1's own lines.

- ``FutureWarning`` and ``DeprecationWarning`` raised from inside the libraries tinyr1 calls (``LIBRARIES``): they
  are about calls tinyr1 makes, not the user; ``make test-latest`` meets the next releases before a user does.
- bitsandbytes' warning at import that the optional ``kernels`` package is missing (CPUs with AVX512-bf16, with the
  ``qlora`` extra): its CPU fallback works without it.
- DeepSpeed's warning, on every machine without a GPU that has it installed (the ``deepspeed`` extra, the test
  environment), that it set its accelerator to the CPU: a CPU run is what the user asked for.
- Progress bars of steps that take a second and print a line each: datasets' passes over the rows (``Tokenizing
  train dataset``, ``Map``) and transformers' weight loading and shard writing. The Trainer's own bar, tinyr1's
  evaluation bar and hub downloads keep theirs.

``quiet_dependencies`` applies these for the rest of the process (the ``tinyr1`` command); ``quieted`` for one
Python API call, putting back what it changed. A user's own warnings and settings are left alone: their code's
warnings are not matched, ``HF_DATASETS_DISABLE_PROGRESS_BARS`` or a logger level they set wins.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.util
import logging
import sys
import warnings

LIBRARIES = r"(transformers|trl|peft|accelerate|datasets|torch|huggingface_hub|bitsandbytes|tinyr1)(\.|$)"
SILENT_LOGGERS = ("bitsandbytes",)
# logger -> the start of the one message of it left out. A filter, not a level: DeepSpeed sets its logger's level
# when it is imported, and its other warnings stay.
DROPPED_MESSAGES = {"DeepSpeed": "Setting accelerator to CPU."}


class _DropMessage(logging.Filter):
    def __init__(self, start: str):
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.start)


def _filter_warnings() -> None:
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=LIBRARIES)


def _drop_messages() -> list[tuple[logging.Logger, logging.Filter]]:
    """Add ``DROPPED_MESSAGES``' filters where missing; returns those added, for ``quieted`` to take back."""
    added = []
    for name, start in DROPPED_MESSAGES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessage) for f in logger.filters):
            added.append((logger, _DropMessage(start)))
            logger.addFilter(added[-1][1])
    return added


def _quiet_loggers() -> dict[str, int]:
    """Raise the level of ``SILENT_LOGGERS`` the user left unset; returns the levels found."""
    found = {}
    for name in SILENT_LOGGERS:
        logger = logging.getLogger(name)
        found[name] = logger.level
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.ERROR)
    return found


def _transformers_bars_off(module) -> None:
    """transformers' own bars off, the hub's (downloads) as they were: its switch turns both off."""
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars

    hub_was_off = are_progress_bars_disabled()
    module.disable_progress_bar()
    if not hub_was_off:
        enable_progress_bars()


def _datasets_bars_off(module) -> None:
    if module.HF_DATASETS_DISABLE_PROGRESS_BARS is None:  # the user's environment variable wins
        module.disable_progress_bars()


# module -> what to do with it once imported; importing it only for this would cost seconds (`tinyr1 prepare`).
_ON_IMPORT = {"transformers.utils.logging": _transformers_bars_off, "datasets.utils.tqdm": _datasets_bars_off}


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``_ON_IMPORT``'s action on a module right after whoever imports it first has loaded it."""

    def find_spec(self, fullname, path, target=None):
        action = _ON_IMPORT.get(fullname)
        if action is None:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            action(module)

        spec.loader.exec_module = exec_module
        return spec


def quiet_dependencies() -> None:
    """Filter the messages above for the rest of this process (the ``tinyr1`` command, before it runs)."""
    _filter_warnings()
    _quiet_loggers()
    _drop_messages()
    for name, action in _ON_IMPORT.items():
        if name in sys.modules:
            action(sys.modules[name])
    if not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())


@contextlib.contextmanager
def quieted():
    """The same for one Python API call, in the user's process: everything put back afterwards. The libraries are
    loaded by then (the call imports them), so their switches are read and restored directly."""
    import transformers.utils.logging as transformers_logging  # lazy: heavy; an API call that trains loads it anyway

    datasets_tqdm = importlib.import_module("datasets.utils.tqdm")  # the module: datasets.utils.tqdm is also a class
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars

    bars = (transformers_logging.is_progress_bar_enabled(), datasets_tqdm.are_progress_bars_disabled(),
            are_progress_bars_disabled())
    with warnings.catch_warnings():
        _filter_warnings()
        levels = _quiet_loggers()
        dropped = _drop_messages()
        _transformers_bars_off(transformers_logging)
        _datasets_bars_off(datasets_tqdm)
        try:
            yield
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
            for logger, dropping in dropped:
                logger.removeFilter(dropping)
            if bars[0]:
                transformers_logging.enable_progress_bar()  # the hub's too: put back just below
            if bars[2]:
                disable_progress_bars()
            if not bars[1] and datasets_tqdm.HF_DATASETS_DISABLE_PROGRESS_BARS is None:
                datasets_tqdm.enable_progress_bars()
