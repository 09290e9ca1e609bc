"""The tinyr1 command (tinyr1.cli): help lists every command, an unknown one is exit 2."""


def test_cli_help_lists_every_command(cli):
    result = cli("--help")
    assert result.returncode == 0
    for command in ("prepare", "train", "eval", "compare", "report", "sft", "generate", "doctor"):
        assert f"  {command}" in result.stdout
    unknown = cli("nope")
    assert unknown.returncode == 2 and "unknown command 'nope'" in unknown.stderr


def test_help_into_a_closed_pipe_is_no_traceback():
    """``tinyr1 --help | head -1``: the reader may leave before tinyr1 writes; a read end closed before the
    process starts makes that certain. Exit 0, nothing on stderr."""
    import os
    import subprocess
    import sys

    for args in (["--help"], ["--version"], ["train", "--help"]):
        read, write = os.pipe()
        os.close(read)
        try:
            result = subprocess.run([sys.executable, "-m", "tinyr1", *args], stdout=write, stderr=subprocess.PIPE,
                                    text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        finally:
            os.close(write)
        assert result.returncode == 0, (args, result.stderr)
        assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, (args, result.stderr)
