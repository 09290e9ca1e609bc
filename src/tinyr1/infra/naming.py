"""How a message names a setting: in the caller's language. One rule, spoken two ways:

    setting("overwrite_output_dir", True)
    # the command line:                      --overwrite_output_dir true
    # tinyr1.train(...):                     tinyr1.train(overwrite_output_dir=True)
    # a trl script with tinyr1.GRPOTrainer:  GRPOConfig(overwrite_output_dir=True)

The interface says who is listening (``speaking``): ``tinyr1.cli`` the command line for its whole run, each Python
API call and each method of the drop-in trainers their own name. A message is worded when it is built, inside that
scope, so a ``TinyR1Error`` or a log line carries plain text. Outside any scope (library code called directly) a
setting is named as a keyword argument, ``overwrite_output_dir=True``.

    >>> setting("max_steps", 20), setting("skip_bad_rows")
    ('max_steps=20', 'skip_bad_rows')
    >>> with speaking(CLI):
    ...     setting("overwrite_output_dir", True), setting("report_to", "none"), setting("lora_modules", ["q", "v"])
    ('--overwrite_output_dir true', '--report_to none', '--lora_modules q v')
    >>> with speaking("GRPOConfig"):
    ...     setting("max_length", 512), setting("resume_from_checkpoint", "latest")
    ('GRPOConfig(max_length=512)', "trainer.train(resume_from_checkpoint='latest')")
"""

from __future__ import annotations

import contextlib
import contextvars
import functools

CLI = "--"  # the command line's style; any other style names the Python callable that took the keyword arguments
_NOTHING = object()

# Settings a drop-in trainer takes as arguments of ``train()``, not of its config.
_TRAIN_ARGUMENTS = {"resume_from_checkpoint"}
_CONFIGS = {"GRPOConfig", "SFTConfig", "TrainingArguments"}

_listener: contextvars.ContextVar[str | None] = contextvars.ContextVar("tinyr1_listener", default=None)


@contextlib.contextmanager
def speaking(listener: str | None):
    """Name settings for ``listener`` inside the block: ``CLI``, a Python callable (``"tinyr1.train"``) or a config
    class (``"GRPOConfig"``). The outermost scope wins: the trainer ``tinyr1 train`` or ``tinyr1.train`` builds
    speaks to their caller, not as a config."""
    if _listener.get() is not None:
        yield
        return
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def command_line(main):
    """A command's ``main(argv)`` speaks the command line's language, whoever calls it (``tinyr1.cli``, a test, a
    ``python -m`` entry point)."""
    @functools.wraps(main)
    def run(*args, **kwargs):
        with speaking(CLI):
            return main(*args, **kwargs)

    return run


def listener() -> str | None:
    return _listener.get()


def on_command_line() -> bool:
    return _listener.get() == CLI


def setting(name: str, value=_NOTHING) -> str:
    """``name`` (with ``value``, if given) as the caller sets it (module docstring)."""
    who = _listener.get()
    if who == CLI:
        return f"--{name}" if value is _NOTHING else f"--{name} {_cli_value(value)}"
    if value is _NOTHING:
        return name
    said = f"{name}={value!r}"
    if who in _CONFIGS and name in _TRAIN_ARGUMENTS:
        return f"trainer.train({said})"
    return f"{who}({said})" if who else said


def _cli_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return " ".join(_cli_value(v) for v in value)
    return str(value)
