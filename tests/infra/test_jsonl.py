"""tinyr1.infra.jsonl: a crash's truncated last line is skipped, with a warning; corruption is an error."""

import pytest

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.jsonl import read_jsonl


def test_truncated_last_line_is_skipped_but_a_corrupt_middle_line_is_an_error(tmp_path, capsys):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.4}\n{"step": 3, "lo')
    assert [r["step"] for r in read_jsonl(path)] == [1, 2]
    assert "truncated last line skipped" in capsys.readouterr().err
    path.write_text('{"step": 1}\n{"st\n{"step": 3}\n')
    with pytest.raises(TinyR1Error, match="line 2: not valid JSON"):
        read_jsonl(path)
