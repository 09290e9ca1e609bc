"""How many CPU threads a tinyr1 command uses when nobody says, and why.

The default is the cores this process may actually run on: the CPUs in its affinity mask (``taskset``, a batch
scheduler's binding), counted as physical cores (two hyper-threads of one core share its matrix units, and a second
thread there only contends), and capped by a cgroup CPU quota (a container's ``--cpus``, a Kubernetes limit),
rounded down: a thread the quota cannot run is throttled, and every parallel region then waits for it.

``--num_threads`` and ``$OMP_NUM_THREADS`` still win. ``choose_threads`` returns the count with a reason, which the
run header prints. Every path it reads is under ``root`` so that tests can fake a machine.

Why several threads used to be erratic on a shared machine: torch's OpenMP (libgomp) threads meet at a barrier at
the end of every parallel region, thousands of times a step. When another program (or a second tinyr1 run) wants
one of the cores, each region waits for a thread the scheduler has descheduled. Sleeping at once at the barrier
(``OMP_WAIT_POLICY=PASSIVE``) cures that but, on some VMs, doubles an idle machine's step: waking a thread costs
more than a small operation takes. So ``openmp_defaults`` asks for a short spin (``GOMP_SPINCOUNT``), fast when the
machine is idle, and the thread count itself follows the other work: ``choose_threads`` starts on the cores that
work leaves free, and between training steps ``tinyr1.infra.thread_governor`` gives threads up and takes them back.
The ``tinyr1`` command sets the spin before torch loads, unless the user set a wait policy or spin count.
docs/cpu-fast-path.md#threads has the measurements.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from tinyr1.infra.naming import setting


class Threads(int):
    """A thread count that says why it was chosen (``.why``), e.g. ``Threads(2, "all 2 physical cores")``."""

    def __new__(cls, count: int, why: str, most: int | None = None, fixed: bool | None = None):
        value = super().__new__(cls, count)
        value.why = why
        value.most = count if most is None else most  # what the governor may go back up to
        # whether the user set the count (num_threads, $OMP_NUM_THREADS), which tinyr1 then keeps
        named = ("--num_threads", "num_threads", "$OMP_NUM_THREADS")  # the command line's own, among the others
        value.fixed = why in named if fixed is None else fixed
        return value


def read_or_none(path: Path) -> str | None:
    """A small system file's text, or None where it cannot be read."""
    try:
        return path.read_text().strip()
    except OSError:
        return None


def physical_cores(cpus: list[int], root: Path = Path("/")) -> int:
    """The distinct cores among ``cpus`` (hyper-thread siblings count once); ``len(cpus)`` where sysfs says nothing."""
    cores = set()
    for cpu in cpus:
        topology = root / f"sys/devices/system/cpu/cpu{cpu}/topology"
        siblings = read_or_none(topology / "core_cpus_list") or read_or_none(topology / "thread_siblings_list")
        if siblings is None:
            return len(cpus)
        cores.add(siblings)
    return len(cores)


def _cgroup_v2_quota(line_path: str, root: Path) -> float | None:
    base = root / "sys/fs/cgroup"
    folder, quotas = base / line_path.lstrip("/"), []
    while True:
        parts = (read_or_none(folder / "cpu.max") or "").split()
        if len(parts) == 2 and parts[0] != "max":
            try:
                quotas.append(int(parts[0]) / int(parts[1]))
            except (ValueError, ZeroDivisionError):
                pass
        if folder == base or base not in folder.parents:
            break
        folder = folder.parent
    return min(quotas) if quotas else None


def _cgroup_v1_quota(line_path: str, root: Path) -> float | None:
    for mount in ("sys/fs/cgroup/cpu,cpuacct", "sys/fs/cgroup/cpu"):
        for folder in (root / mount / line_path.lstrip("/"), root / mount):
            quota, period = read_or_none(folder / "cpu.cfs_quota_us"), read_or_none(folder / "cpu.cfs_period_us")
            try:
                if quota is not None and period is not None and int(quota) > 0:
                    return int(quota) / int(period)
            except (ValueError, ZeroDivisionError):
                continue
    return None


def cgroup_cpu_quota(root: Path = Path("/")) -> float | None:
    """The CPUs this process's cgroup may use per period (cgroup v2 ``cpu.max`` or v1 ``cfs_quota_us``), or None."""
    for line in (read_or_none(root / "proc/self/cgroup") or "").splitlines():
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if number == "0" and controllers == "":
            quota = _cgroup_v2_quota(path, root)
        elif "cpu" in controllers.split(","):
            quota = _cgroup_v1_quota(path, root)
        else:
            continue
        if quota is not None:
            return quota
    return None


def process_cpus() -> set[int]:
    """The CPUs this process may run on."""
    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))


def usable_cores(root: Path = Path("/"), affinity: set[int] | None = None) -> Threads:
    """The cores this process may run on: affinity, physical cores, the cgroup quota; with the reason."""
    cpus = sorted(process_cpus() if affinity is None else affinity)
    cores = max(1, physical_cores(cpus, root))
    total = os.cpu_count() if root == Path("/") else None
    plural = "s" if cores != 1 else ""
    if total and len(cpus) < total:
        where = f"the {cores} core{plural} of this process's CPU affinity ({total} CPUs in the machine)"
    else:
        where = f"all {cores} physical core{plural}"
    if cores < len(cpus):
        where += f" ({len(cpus)} logical CPUs: one thread a core)"
    quota = cgroup_cpu_quota(root)
    if quota is not None and math.floor(quota) < cores:
        return Threads(max(1, math.floor(quota)), f"the cgroup CPU quota of {quota:g} CPUs ({cores} cores otherwise)")
    return Threads(cores, where)


def torch_start_threads(environ: dict | None = None) -> int:
    """The thread count torch starts a process with: ``$OMP_NUM_THREADS`` (or ``$MKL_NUM_THREADS``), else the
    physical cores of the process's CPU affinity (its MKL/OpenMP default on x86). ``tinyr1.train`` reads a different
    count as one the caller set (``torch.set_num_threads``) and keeps it.

    >>> torch_start_threads({"OMP_NUM_THREADS": "3"}), torch_start_threads({"MKL_NUM_THREADS": "5"})
    (3, 5)
    """
    environ = os.environ if environ is None else environ
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        value = environ.get(key, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return max(1, physical_cores(sorted(process_cpus())))


# libgomp's own default spins ~300,000 rounds at a barrier before it sleeps.
SPIN_COUNT = "10000"


def openmp_defaults(environ: dict | None = None) -> dict:
    """The OpenMP settings to add to ``environ`` (``os.environ``): a short spin at barriers unless the user chose a
    wait policy or spin count.

    >>> openmp_defaults({}), openmp_defaults({"GOMP_SPINCOUNT": "5"}), openmp_defaults({"OMP_WAIT_POLICY": "x"})
    ({'GOMP_SPINCOUNT': '10000'}, {}, {})
    """
    environ = os.environ if environ is None else environ
    if any(key in environ for key in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")):
        return {}
    return {"GOMP_SPINCOUNT": SPIN_COUNT}


def choose_threads(num_threads: int | None = None, root: Path = Path("/"),
                   affinity: set[int] | None = None) -> Threads:
    """``num_threads`` (``--num_threads``), else ``$OMP_NUM_THREADS``, else ``usable_cores``."""
    if num_threads is not None:
        return Threads(num_threads, setting("num_threads"), fixed=True)
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return Threads(int(env), "$OMP_NUM_THREADS")
    affinity = process_cpus() if affinity is None else affinity
    threads = usable_cores(root, affinity)
    busy = busy_cores(affinity, root=root) if threads > 1 else None  # of the CPUs it may run on, not the machine
    if busy is not None:  # start on the cores left free; train and sft take the rest back later
        start = threads_left(threads, len(affinity), busy)
        if start < threads:
            return Threads(start, f"{threads.why}, less {threads - start} that other work kept busy at the start "
                           f"({busy:.1f} CPUs)", most=threads)
    return threads


# Other work on this many of the process's CPUs or more takes a thread away (at the start, and between training
# steps in tinyr1.infra.thread_governor).
BUSY = 0.5


def threads_left(most: int, cpus: int, others: float) -> int:
    """The threads to use when other work keeps ``others`` of the process's ``cpus`` busy, at most ``most`` (the
    usable cores) and at least 1: a CPU counts as taken from half a CPU's worth of other work.

    >>> threads_left(2, 2, 0.4), threads_left(2, 2, 0.6), threads_left(8, 8, 2.0), threads_left(2, 16, 10.0)
    (2, 1, 6, 2)
    """
    return max(1, min(most, math.floor(cpus - others + 1 - BUSY)))


def _cpu_times(stat: str) -> dict[int, tuple[int, int]]:
    """Per CPU of a ``/proc/stat`` text: (all jiffies, idle + iowait jiffies)."""
    found = {}
    for line in stat.splitlines():
        name, *fields = line.split() or [""]
        if name.startswith("cpu") and name[3:].isdigit() and len(fields) >= 4:
            values = [int(v) for v in fields[:8]]
            found[int(name[3:])] = (sum(values), values[3] + (values[4] if len(values) > 4 else 0))
    return found


def busy_between(before: str, after: str, cpus: set[int] | None = None) -> float | None:
    r"""How many of ``cpus`` (all, if None) were busy between two ``/proc/stat`` readings; None if unreadable.

    >>> before = "cpu0 100 0 0 900 0 0 0 0\ncpu1 0 0 0 1000 0 0 0 0"
    >>> after = "cpu0 200 0 0 900 0 0 0 0\ncpu1 0 0 0 1100 0 0 0 0"
    >>> busy_between(before, after), busy_between(before, after, {1})
    (1.0, 0.0)
    """
    first, second = _cpu_times(before), _cpu_times(after)
    wanted = [c for c in (cpus if cpus is not None else first) if c in first and c in second]
    if not wanted:
        return None
    busy = 0.0
    for cpu in wanted:
        total = second[cpu][0] - first[cpu][0]
        if total > 0:
            busy += 1.0 - (second[cpu][1] - first[cpu][1]) / total
    return round(busy, 2)


def busy_cores(cpus: set[int] | None = None, seconds: float = 0.2, root: Path = Path("/")) -> float | None:
    """How many of ``cpus`` other work keeps busy, over ``seconds`` at a command's start (before it works)."""
    import time

    before = read_or_none(root / "proc/stat")
    if before is None:  # no /proc (not Linux, or a faked machine): nothing to wait for
        return None
    time.sleep(seconds)
    return busy_between(before, read_or_none(root / "proc/stat") or "", cpus)
