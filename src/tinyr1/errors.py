"""Errors a user can act on. The CLI prints them as one line on stderr and exits with their code, no traceback.

Exit codes: 2 bad input or configuration, 3 training collapsed (non-finite logits, loss or gradients, or
degenerate completions), 4 out of memory.
"""


class TinyR1Error(Exception):
    """A problem the user can fix: the message names the file or field and the fix."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class CollapseError(TinyR1Error):
    """The model produced non-finite numbers or degenerate text; training must stop before wasting hours."""

    exit_code = 3


class OutOfMemoryError(TinyR1Error):
    """Out of memory, with remedies sized to the current settings."""

    exit_code = 4
