"""The tinyr1 command (tinyr1.cli): help lists every command, an unknown one is exit 2."""


def test_cli_help_lists_every_command(cli):
    result = cli("--help")
    assert result.returncode == 0
    for command in ("prepare", "train", "eval", "compare", "report", "sft", "generate", "doctor"):
        assert f"  {command}" in result.stdout
    unknown = cli("nope")
    assert unknown.returncode == 2 and "unknown command 'nope'" in unknown.stderr
