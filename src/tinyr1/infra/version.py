"""tinyr1's version: the one place it is written (the package, pyproject.toml and every file tinyr1 signs read it)."""

__version__ = "0.1.0"
