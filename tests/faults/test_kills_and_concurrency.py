"""One writer per run folder, and what a kill -9 leaves, through the real CLI on the tiny model: a second run,
resume, overwrite or eval into a folder in use is refused naming the holder's PID; a run killed at any moment
(in the middle of a checkpoint included) resumes from its newest complete checkpoint, never another run's."""

import json
import random
import signal
import subprocess
import time

import pytest

from tinyr1.run_folder.checkpoints import latest_checkpoint
from tinyr1.run_folder.ownership import owned_names, read_marker

from ..conftest import REPO
from .helpers import lock_pid, one_line, resume_args, start, status, steps, train_args, wait_for


def _checkpoints(out):
    return {p.name for p in out.glob("checkpoint-*")}


def _kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()


@pytest.mark.slow
def test_a_second_process_is_refused_naming_the_pid_while_the_first_runs(cli, gsm8k_dir, tmp_path):
    out = tmp_path / "run"
    first = start(*train_args(gsm8k_dir, out, "--max_steps", "500", "--sample_every", "0",
                              "--max_completion_length", "64"))
    try:
        wait_for(lambda: lock_pid(out) == first.pid and (out / "checkpoint-1").is_dir(), proc=first)
        attempts = {"a second run": train_args(gsm8k_dir, out, "--max_steps", "2", "--learning_rate", "0.5"),
                    "a resume": resume_args(out),
                    "an overwrite": train_args(gsm8k_dir, out, "--max_steps", "1", "--overwrite_output_dir", "true"),
                    "an eval": ["eval", "--predictions", str(REPO / "tests/assets/predictions.jsonl"),
                                "--output_dir", str(out)]}
        tries = {what: start(*args) for what, args in attempts.items()}  # all at once, as from four terminals
        for what, proc in tries.items():
            stderr = proc.communicate(timeout=600)[1]
            result = subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr)
            assert result.returncode == 2, f"{what}: {result.stderr[-2000:]}"
            line = one_line(result)
            if what == "an eval":  # eval never writes into a train run's folder, running or not
                assert "holds a tinyr1 train run, not a folder eval writes" in line
                continue
            assert f"in use by tinyr1 train (PID {first.pid})" in line, what
            assert "pick another --output_dir, or wait until" in line  # advice that works while it runs
        assert first.poll() is None and not (out / "metrics.json").exists()
        logged = steps(out)
        assert logged == list(range(1, len(logged) + 1))  # one run's rows only, in order
    finally:
        _kill(first)
    # Killed: the lock died with it. The next command that looks says so; the resume then goes on.
    assert status(out) == "running"
    report = cli("report", str(out), cwd=REPO)
    assert report.returncode == 0, report.stderr[-2000:]
    assert status(out) == "killed"
    newest = int(latest_checkpoint(out).name.split("-")[1])
    resumed = cli(*resume_args(out, "--max_steps", str(newest + 1)), cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert status(out) == "completed" and json.loads((out / "run.json").read_text())["global_step"] == newest + 1


@pytest.mark.slow
def test_kill_9_at_random_moments_then_latest_resumes_the_newest_complete_checkpoint(cli, gsm8k_dir, tmp_path):
    out = tmp_path / "run"
    rng = random.Random()
    seed = rng.randrange(10**6)
    rng.seed(seed)
    command = train_args(gsm8k_dir, out, "--max_steps", "500", "--sample_every", "0")
    starts = []  # (the rows logged up to the step a resume starts from, that step)
    for attempt in range(3):
        proc = start(*command)
        seen = _checkpoints(out)
        # The first kill lands just as the second checkpoint folder appears (in the middle of its save); the others
        # at a random moment after the resumed run's first checkpoint.
        wait_for(lambda: len(_checkpoints(out) - seen) >= (2 if attempt == 0 else 1), proc=proc)  # noqa: B023
        time.sleep(0 if attempt == 0 else rng.uniform(0, 0.8))
        _kill(proc)
        marker = read_marker(out)
        made = _checkpoints(out) - {"checkpoint-900"}
        assert made <= owned_names(out, marker), f"seed {seed}: a checkpoint the run made is not its own"
        newest = latest_checkpoint(out, owned_names(out, marker))
        assert newest is not None, f"seed {seed}"
        if attempt == 0:  # someone else's checkpoint, newer than any of the run's: never resumed (beyond
            planted = out / "checkpoint-900"  # max_steps: a run that would save there is refused at its start)
            planted.mkdir()
            for f in newest.iterdir():
                (planted / f.name).write_bytes(f.read_bytes())
            (planted / ".tinyr1-run-id").write_text("another-run")
            state = json.loads((planted / "trainer_state.json").read_text())
            (planted / "trainer_state.json").write_text(json.dumps({**state, "global_step": 900}))
        step = int(newest.name.split("-")[1])
        text = (out / "metrics.jsonl").read_text() if (out / "metrics.jsonl").exists() else ""
        complete = [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines()]  # not a torn last line
        starts.append(([row for row in complete if row["step"] <= step], step))
        command = resume_args(out, "--max_steps", "500")
    last = starts[-1][1]
    done = cli(*resume_args(out, "--max_steps", str(last + 2)), cwd=REPO)
    assert done.returncode == 0, f"seed {seed}: {done.stderr[-2000:]}"
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]  # none torn
    # Each resume started from the newest complete checkpoint: the rows up to it stayed as they were (a resume from
    # an older one would have trained, and logged, those steps again), and every step is logged once.
    for before, step in starts:
        assert all(row in lines for row in before), f"seed {seed}: steps up to {step} were trained again"
    assert [row["step"] for row in lines if "loss" in row] == list(range(1, last + 3)), f"seed {seed}"
    assert json.loads((out / "run.json").read_text())["global_step"] == last + 2, f"seed {seed}"
    assert (out / "checkpoint-900" / ".tinyr1-run-id").read_text() == "another-run"  # and never deleted
