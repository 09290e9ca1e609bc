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


def test_the_command_turns_trls_usage_ping_off_unless_the_user_set_it(tmp_path):
    """trl sends its ping through huggingface_hub unless HF_HUB_DISABLE_TELEMETRY is set when the hub is imported;
    the command sets it before any import, and a value the user set stays."""
    import os
    import subprocess
    import sys

    probe = ("import sys; from tinyr1.cli import main; main(['report', sys.argv[1]]); "
             "from huggingface_hub import constants; print(constants.HF_HUB_DISABLE_TELEMETRY)")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_DISABLE_TELEMETRY", "HF_HUB_OFFLINE", "CI")}
    for given, expected in ((None, "True"), ("0", "False")):
        run_env = env if given is None else {**env, "HF_HUB_DISABLE_TELEMETRY": given}
        result = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "none")], capture_output=True,
                                text=True, env=run_env, timeout=300)
        assert result.stdout.strip().splitlines()[-1] == expected, result.stdout + result.stderr
