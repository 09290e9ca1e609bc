"""What a Python API call may change in the process, put back when it returns or raises.

A command run from the CLI owns its process; one called from Python (``tinyr1.api``) is a guest in the user's.
``call_scope`` notes, before the call, and restores, after it:

- ``os.environ``: a recipe's ``env:`` block (``tinyr1.infra.recipe``) and what transformers and accelerate write
  there while a trainer is set up apply for the call only;
- torch's CPU thread count (a recipe's ``num_threads``, the API's ``num_threads=``, or the command line's choice
  that ``train`` and ``sft`` make when the caller set none: ``run_threads``);
- the SIGINT/SIGTERM handlers and the signal wakeup fd that a run's ``GracefulStop`` installs, also after a run
  that raised (the Trainer then never calls ``on_train_end``);
- the filters of dependency warnings and progress bars that tell the user nothing (``tinyr1.infra.quiet``).

glibc's allocator settings (``tinyr1.infra.device.keep_freed_memory``) cannot be undone, so no API call makes them;
``tinyr1.configure_cpu()`` applies the CLI's whole CPU tuning to the process, once, when the user asks.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.naming import speaking
from tinyr1.infra.options import python_source
from tinyr1.infra.validate import check

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _signal_state() -> tuple[dict, int] | None:
    """The Python-level handlers and the wakeup fd; None off the main thread (neither can be changed there)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    fd = signal.set_wakeup_fd(-1)  # the only way to read it; put back at once
    if fd != -1:
        signal.set_wakeup_fd(fd)
    return {sig: signal.getsignal(sig) for sig in _SIGNALS}, fd


def _restore_signals(state: tuple[dict, int] | None) -> None:
    callbacks = sys.modules.get("tinyr1.training.callbacks")
    if callbacks is not None:
        callbacks.GracefulStop.restore_all()
    if state is None:
        return
    handlers, fd = state
    for sig, handler in handlers.items():
        if handler is not None and signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)
    current = signal.set_wakeup_fd(-1)
    try:
        signal.set_wakeup_fd(fd)
    except (ValueError, OSError):  # the fd was closed meanwhile (its event loop ended): keep what was there
        signal.set_wakeup_fd(current)


def _restore_environ(saved: dict[str, str]) -> None:
    for key in [k for k in os.environ if k not in saved]:
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


@contextlib.contextmanager
def call_scope(num_threads: int | None = None, uses_torch: bool = True, caller: str = "tinyr1"):
    """Run one API call: ``num_threads`` (if given) for torch during it, messages naming settings as ``caller``'s
    keyword arguments (``tinyr1.infra.naming``); afterwards the environment, torch's thread count and random state,
    the warning filters and the signal handlers are as they were before it."""
    environ = dict(os.environ)
    signals = _signal_state()
    threads = configured = rng = None
    quiet = contextlib.nullcontext()
    if uses_torch:
        import torch

        from tinyr1.infra import device  # lazy: loads torch, which import tinyr1 must not
        from tinyr1.infra.quiet import quieted  # lazy: loads transformers, as the line above torch

        threads, configured, quiet = device.get_threads(), device.configured(), quieted()
        rng = torch.random.get_rng_state()
        if num_threads is not None:
            if isinstance(num_threads, bool) or not isinstance(num_threads, int):
                raise TinyR1Error(f"{caller}(num_threads={num_threads!r}): expected a whole number of CPU threads")
            check({"num_threads": num_threads}, python_source(caller))
            device.set_threads(num_threads)
    try:
        with speaking(caller), quiet:  # quiet: the warning filters and bars, put back afterwards
            yield
    finally:
        _restore_signals(signals)
        _restore_environ(environ)
        if threads is not None:
            device.set_threads(threads)
            device.restore_configured(configured)
            torch.random.set_rng_state(rng)


def run_threads(num_threads: int | None):
    """Inside ``call_scope``: the CPU threads a run uses and why (a ``Threads``; None with a GPU, where the CLI's
    tuning does nothing either). A count the caller set is kept: ``num_threads`` (the keyword or the recipe's
    field), ``tinyr1.configure_cpu()``'s, or ``torch.set_num_threads``' (a count other than the one torch starts
    with); otherwise the command line's choice (``tinyr1.infra.threads.choose_threads``) for this call, fitted to
    other work between steps as on the command line."""
    from tinyr1.infra import device  # lazy: loads torch, which import tinyr1 must not
    from tinyr1.infra.threads import Threads, torch_start_threads

    if device.cuda_available():
        return None
    if num_threads is not None:
        device.set_threads(num_threads)
        return Threads(num_threads, "num_threads")
    now, configured = device.get_threads(), device.configured()
    if configured is not None and now == int(configured):  # tinyr1.configure_cpu() before this call
        return configured
    if now != torch_start_threads():
        return Threads(now, "set by the caller with torch.set_num_threads; num_threads= to change")
    return device.cpu_threads()
