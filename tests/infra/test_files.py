"""The shared JSON-lines reader and the atomic writers: a crash's truncated last line is skipped with a warning,
corruption is an error, line numbers count from 1, and no temporary file is left on failure."""

import errno
import json
import os

import pytest

from tinyr1.infra import files as jsonl
from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.files import read_jsonl


def test_truncated_last_line_is_skipped_but_a_corrupt_middle_line_is_an_error(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.4}\n{"step": 3, "lo')
    assert [r["step"] for r in read_jsonl(path)] == [1, 2]
    assert "truncated last line skipped" in caplog.text
    path.write_text('{"step": 1}\n{"st\n{"step": 3}\n')
    with pytest.raises(TinyR1Error, match="line 2: not valid JSON"):
        read_jsonl(path)


def test_rows_are_numbered_by_their_line_from_one(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert jsonl.read_jsonl_numbered(f) == [(1, {"a": 1}), (3, {"a": 2})]
    f.write_text('{"a": 1}\n\n[2]\n')
    with pytest.raises(TinyR1Error, match="r.jsonl line 3: expected a JSON object"):
        jsonl.read_jsonl(f)


def test_deep_nesting_is_one_line(tmp_path):
    f = tmp_path / "deep.jsonl"
    f.write_text('{"a": ' + "[" * 100000 + "]" * 100000 + "}\n")
    with pytest.raises(TinyR1Error, match="deep.jsonl line 1: "):
        jsonl.read_jsonl(f)


def test_write_replaces_atomically_and_leaves_no_temporary(tmp_path):
    f = tmp_path / "out.jsonl"
    jsonl.write_jsonl(f, [{"a": 1}])
    jsonl.write_jsonl(f, [{"a": 2}, {"a": 3}])
    assert jsonl.read_jsonl(f) == [{"a": 2}, {"a": 3}] and os.listdir(tmp_path) == ["out.jsonl"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch):
    f = tmp_path / "out.jsonl"
    jsonl.write_jsonl(f, [{"old": True}])
    real_fsync = os.fsync

    def full(fd):  # the disk fills while the data reaches it
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(TinyR1Error, match=r"out.jsonl: disk full \(needs 14 bytes, [\d,]+ bytes free there\)"):
        jsonl.write_jsonl(f, [{"new": True}])
    with pytest.raises(TinyR1Error, match="disk full"):
        jsonl.write_together([(tmp_path / "a", b"1"), (f, b"2")])
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert jsonl.read_jsonl(f) == [{"old": True}] and sorted(os.listdir(tmp_path)) == ["out.jsonl"]


def test_other_write_errors_are_one_line_too(tmp_path):
    with pytest.raises(TinyR1Error, match="cannot write"):
        jsonl.write_text(tmp_path / "no-such-folder" / "x.txt", "x")


def test_write_together_renames_in_order(tmp_path):
    jsonl.write_together([(tmp_path / "samples.jsonl", b'{"a": 1}\n'), (tmp_path / "metrics.json", b"{}")])
    assert json.loads((tmp_path / "metrics.json").read_text()) == {}
    assert sorted(os.listdir(tmp_path)) == ["metrics.json", "samples.jsonl"]
