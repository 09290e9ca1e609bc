"""tinyr1's output: every line the library says goes through ``logging.getLogger("tinyr1")`` (one child per module,
``logging.getLogger(__name__)``); only the interface decides what reaches a terminal.

- **A Python program or notebook** (``tinyr1.train``, ``from tinyr1 import GRPOTrainer``): the ``tinyr1`` logger is
  at INFO and has one handler of its own that prints the message (nothing else) to the current ``sys.stdout`` — but
  only while the program has configured no logging of its own (the root logger has no handler). A program that
  calls ``logging.basicConfig`` or adds handlers gets tinyr1's records through them instead, never twice; pytest's
  ``caplog`` sees them like any library's. ``logging.getLogger("tinyr1").setLevel(logging.ERROR)`` silences
  tinyr1's own lines, as ``logging.getLogger("trl")`` would trl's.
- **The command line** (``tinyr1.cli``): ``cli_output`` prints every record's message unchanged, on stdout, or on
  stderr where the record says so (``extra=TO_STDERR``): the lines ``tinyr1 <command>`` has always printed. What
  the dependencies say that a user cannot act on is held back in one place, ``tinyr1.infra.quiet``.
"""

from __future__ import annotations

import contextlib
import logging
import sys

ROOT = "tinyr1"
TO_STDERR = {"tinyr1_stderr": True}  # ``logger.warning(..., extra=TO_STDERR)``: the CLI prints it on stderr


class _MessageHandler(logging.Handler):
    """The message only, on the stream of the moment (a notebook or pytest may replace ``sys.stdout``)."""

    def __init__(self, only_unconfigured: bool):
        super().__init__(logging.NOTSET)
        self.only_unconfigured = only_unconfigured
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if self.only_unconfigured and logging.getLogger().handlers:
            return  # the program configured logging: its handlers show the record (propagation)
        stream = sys.stderr if getattr(record, "tinyr1_stderr", False) else sys.stdout
        try:
            stream.write(self.format(record) + "\n")
            stream.flush()
        except BrokenPipeError:
            raise  # `tinyr1 ... | head`: the CLI ends quietly (tinyr1.cli)
        except Exception:
            self.handleError(record)


_DEFAULT = _MessageHandler(only_unconfigured=True)
_CLI = _MessageHandler(only_unconfigured=False)


def configure_library_logger() -> logging.Logger:
    """The ``tinyr1`` logger as a library leaves it (module docstring); idempotent, run by ``import tinyr1``."""
    logger = logging.getLogger(ROOT)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if _DEFAULT not in logger.handlers:
        logger.addHandler(_DEFAULT)
    return logger


@contextlib.contextmanager
def cli_output():
    """While a command runs, it prints every tinyr1 record itself, whatever the root logger holds; afterwards the
    logger is as it was (a test or program that calls ``tinyr1.cli.main`` keeps its own logging)."""
    logger = configure_library_logger()
    handlers, propagate = list(logger.handlers), logger.propagate
    logger.handlers = [h for h in handlers if h is not _DEFAULT] + [_CLI]
    logger.propagate = False
    try:
        yield
    finally:
        logger.handlers, logger.propagate = handlers, propagate
