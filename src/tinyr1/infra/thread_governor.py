"""Threads that follow what the machine leaves free: between training steps, one thread fewer while other work
wants a core, and all of them again once it is gone.

Why a run cannot pick one setting at its start and keep it: torch's OpenMP threads meet at a barrier at the end of
every parallel region, thousands of times a step. On an idle machine a short spin at that barrier is what makes
several threads pay (sleeping at once and being woken costs more than a small operation takes on some VMs). But
when another program wants one of the cores, a thread of ours waits there for a core the scheduler gave away, and
every region waits for it: the whole step slows down by more than one thread fewer would cost. One thread has no
barrier at all. So the governor measures, over each step, how much CPU time the process's own CPUs spent on other
work (``/proc/stat``, steal time included, minus this process's own time from ``/proc/self/stat``), uses the cores
that work leaves free, and says so in one line when the count changes. docs/cpu-fast-path.md#threads has the
measurements.

It acts only where tinyr1 chose the count itself (``tinyr1.infra.threads.choose_threads``): ``--num_threads`` and
``$OMP_NUM_THREADS`` are kept as given. ``ThreadGovernor`` is the rule; ``ThreadGovernorCallback`` calls it at the
end of each step of a Trainer (``tinyr1 train``, ``tinyr1 sft``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from transformers import TrainerCallback

from tinyr1.infra import device
from tinyr1.infra.threads import busy_between, process_cpus, read_or_none, threads_left

# A thread comes back once other work is under FREE (cores' worth, of the ones it would run on) for two checks in a
# row, so one quiet moment does not bring it back.
FREE = 0.25


def own_cpu_seconds(stat: str | None) -> float | None:
    """This process's user + system CPU seconds, all threads, from a ``/proc/self/stat`` text (None if unreadable).

    >>> own_cpu_seconds("12 (python3 x) R " + " ".join(["0"] * 10) + " 150 50 0 0") * os.sysconf("SC_CLK_TCK")
    200.0
    """
    if not stat:
        return None
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces; fields after it are fixed
    try:
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError):
        return None


class ThreadGovernor:
    """Adjusts the thread count between steps: ``check()`` returns the new count when it changed, else None.

    ``read_stat`` and ``read_self`` return the texts of ``/proc/stat`` and ``/proc/self/stat``; ``clock`` the
    seconds now; ``set_threads`` applies a count (``tinyr1.infra.device.set_threads``); ``say`` prints the
    line. Tests pass fakes for all five.
    """

    def __init__(self, most: int, cpus: set[int] | None = None, *, start: int | None = None,
                 read_stat: Callable[[], str | None] | None = None,
                 read_self: Callable[[], str | None] | None = None, set_threads: Callable[[int], None] | None = None,
                 say: Callable[[str], None] = print, clock: Callable[[], float] = time.monotonic):
        self.most = most
        self.cpus = process_cpus() if cpus is None else cpus
        self.read_stat = read_stat or (lambda: read_or_none(Path("/proc/stat")))
        self.read_self = read_self or (lambda: read_or_none(Path("/proc/self/stat")))
        self.set_threads = set_threads or device.set_threads
        self.say, self.clock = say, clock
        self.current = most if start is None else start
        self.changes: list[tuple[int, int, float]] = []  # (step, threads, other work in cores)
        self._calm = 0
        self._last = self._reading()

    def _reading(self):
        return self.clock(), self.read_stat(), own_cpu_seconds(self.read_self())

    def other_work(self) -> float | None:
        """Cores' worth of other work on this process's CPUs since the last call (None if unreadable): their busy
        CPUs (``tinyr1.infra.threads.busy_between``, steal included) less this process's own CPU time."""
        (then, stat_then, own_then), now = self._last, self._reading()
        self._last = now
        if None in (stat_then, now[1], own_then, now[2]) or now[0] <= then:
            return None
        busy = busy_between(stat_then, now[1], self.cpus)
        return None if busy is None else max(0.0, busy - (now[2] - own_then) / (now[0] - then))

    def check(self, step: int = 0) -> int | None:
        others = self.other_work()
        if others is None:
            return None
        wanted = threads_left(self.most, len(self.cpus), others)
        if wanted < self.current:
            self._calm = 0
            return self._apply(wanted, others, step)
        if wanted > self.current and others <= (len(self.cpus) - wanted) + FREE:
            self._calm += 1
            if self._calm >= 2:
                self._calm = 0
                return self._apply(wanted, others, step)
        else:
            self._calm = 0
        return None

    def _apply(self, threads: int, others: float, step: int) -> int:
        was, self.current = self.current, threads
        self.set_threads(threads)
        self.changes.append((step, threads, round(others, 2)))
        why = "other work keeps" if threads < was else "other work now keeps only"
        self.say(f"cpu threads {was} -> {threads} at step {step}: {why} {others:.1f} of this process's "
                 f"{len(self.cpus)} CPUs busy")
        return threads


class ThreadGovernorCallback(TrainerCallback):
    """Runs ``ThreadGovernor.check`` at the end of every training step."""

    def __init__(self, governor: ThreadGovernor):
        self.governor = governor

    def on_train_begin(self, args, state, control, **kwargs):
        self.governor.other_work()  # the first step is measured from here, not from the model's loading

    def on_step_end(self, args, state, control, **kwargs):
        self.governor.check(state.global_step)


def governor_callback(threads) -> ThreadGovernorCallback | None:
    """The callback for a command whose CPU threads are ``threads`` (``tinyr1.infra.device.configure_cpu``'s
    result), or None where there is nothing to govern: a GPU run, one thread, a count the user fixed, or a machine
    without ``/proc``."""
    most = getattr(threads, "most", None)
    if threads is None or most is None or most < 2 or threads.fixed:
        return None
    governor = ThreadGovernor(most, start=int(threads))
    _, stat, own = governor._last
    return ThreadGovernorCallback(governor) if stat is not None and own is not None else None


def thread_governor(world_size: int = 1):
    """The Trainer callback that fits this process's threads to what the machine leaves free between steps
    (``tinyr1.infra.thread_governor``), or None: nothing configured here (a GPU, or an API call that left the CPU
    alone), a count the user fixed (here or since: ``num_threads=`` of an API call, ``torch.set_num_threads``), or
    several training processes, each of which would count the others as other work."""
    if world_size != 1 or device.configured() is None or device.get_threads() != int(device.configured()):
        return None
    return governor_callback(device.configured())
