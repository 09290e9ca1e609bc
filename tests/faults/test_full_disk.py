"""A full disk during a run, through the real CLI on the tiny model: one line naming the folder and the space,
run.json says failed (not running), no temporary file is left, and the retry after freeing space resumes.

The disk is a small tmpfs mounted for the test; where mounting is not allowed (not root, a container without
CAP_SYS_ADMIN) the test is skipped, saying so."""

import json
import subprocess
import uuid

import pytest

from ..conftest import REPO
from .helpers import one_line, resume_args, small_tmpfs, status, train_args


@pytest.fixture
def small_disk(tmp_path):
    """A 600 KB tmpfs: room for the run's first checkpoint of the tiny model, not its second."""
    with small_tmpfs(tmp_path / f"disk-{uuid.uuid4().hex[:6]}", "600k") as disk:
        yield disk


def test_a_full_disk_is_one_line_and_the_retry_after_freeing_space_resumes(cli, gsm8k_dir, small_disk):
    out = small_disk / "run"
    result = cli(*train_args(gsm8k_dir, out, "--max_steps", "4"), cwd=REPO)
    assert result.returncode == 2, result.stderr[-2000:]
    line = one_line(result)
    assert f"{out}: the disk is full" in line and "MB free" in line and "needs about" in line
    assert "--resume_from_checkpoint latest" in line
    assert status(out) == "failed" and json.loads((out / "run.json").read_text())["error"] == "disk full"
    assert not [p for p in out.rglob("*.tmp")], "a temporary file was left"
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)  # space freed
    retry = cli(*resume_args(out), cwd=REPO)
    assert retry.returncode == 0, retry.stderr[-2000:]
    assert status(out) == "completed" and json.loads((out / "run.json").read_text())["global_step"] == 4
