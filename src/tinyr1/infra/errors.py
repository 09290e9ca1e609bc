"""Errors a user can act on, and the one way they are worded. The CLI prints them as one line on stderr and exits
with their code, no traceback.

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


class TinyR1ValueError(TinyR1Error, ValueError):
    """A bad argument where trl would raise ``ValueError`` (a reward's return, ``reward_funcs``,
    ``reward_weights``): code that catches trl's ``ValueError`` catches it too."""


class CollapseError(TinyR1Error):
    """The model produced non-finite numbers or degenerate text; training must stop before wasting hours."""

    exit_code = 3


class OutOfMemoryError(TinyR1Error):
    """Out of memory, with remedies sized to the current settings."""

    exit_code = 4


def first_line(err: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none: how a library's error is
    quoted inside a tinyr1 message.

    >>> first_line(ValueError("bad value\\nTraceback..."))
    'bad value'
    >>> first_line(KeyError())
    'KeyError'
    """
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def one_line_errors(parser, prog: str):
    """Make an ``argparse`` parser raise TinyR1Error (one line, exit 2) where argparse would print its usage and
    exit."""
    import re

    def error(message: str):
        # "argument --learning_rate/--learning-rate: invalid float value: 'abc'" -> "--learning_rate: invalid ..."
        message = re.sub(r"^argument (-[^/:\s]+)(?:/[^:\s]+)*: ", r"\1: ", message)
        raise TinyR1Error(f"{message}; see {prog} --help")  # the command line's own: argparse's errors

    parser.error = error  # argparse calls self.error for every bad flag, value or missing option
    return parser
