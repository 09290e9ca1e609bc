"""The stages a user runs: one module per ``tinyr1 <command>``, each with ``main(argv) -> int``."""
