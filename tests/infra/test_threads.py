"""tinyr1.infra.threads: the default thread count from a faked machine (sysfs topology, cgroup files, affinity)."""

from pathlib import Path

import pytest

from tinyr1.infra.threads import cgroup_cpu_quota, choose_threads, physical_cores, usable_cores


def fake_machine(root: Path, cores: int, threads_per_core: int = 1, cgroup: str | None = None,
                 files: dict | None = None) -> set[int]:
    """CPUs 0..cores*threads_per_core-1, siblings numbered as Linux does (cpu i and i+cores share a core)."""
    cpus = cores * threads_per_core
    for cpu in range(cpus):
        topology = root / f"sys/devices/system/cpu/cpu{cpu}/topology"
        topology.mkdir(parents=True)
        siblings = ",".join(str(cpu % cores + k * cores) for k in range(threads_per_core))
        topology.joinpath("core_cpus_list").write_text(siblings)
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/cgroup").write_text(cgroup or "0::/\n")
    for name, text in (files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return set(range(cpus))


def test_hyper_threads_count_once(tmp_path):
    cpus = fake_machine(tmp_path, cores=4, threads_per_core=2)
    assert physical_cores(sorted(cpus), tmp_path) == 4
    threads = usable_cores(tmp_path, cpus)
    assert threads == 4 and "8 logical CPUs" in threads.why


def test_affinity_limits_the_cores(tmp_path):
    fake_machine(tmp_path, cores=8, threads_per_core=2)
    assert usable_cores(tmp_path, {0, 1, 8, 9}) == 2  # two cores, both hyper-threads of each
    assert usable_cores(tmp_path, {3}) == 1


def test_a_cgroup_v2_quota_caps_the_count_rounded_down(tmp_path):
    cpus = fake_machine(tmp_path, cores=16, cgroup="0::/job/step\n",
                        files={"sys/fs/cgroup/job/step/cpu.max": "max 100000\n",
                               "sys/fs/cgroup/job/cpu.max": "250000 100000\n"})
    assert cgroup_cpu_quota(tmp_path) == 2.5
    threads = usable_cores(tmp_path, cpus)
    assert threads == 2 and "quota of 2.5 CPUs" in threads.why


def test_a_quota_under_one_cpu_still_gets_one_thread(tmp_path):
    cpus = fake_machine(tmp_path, cores=4, files={"sys/fs/cgroup/cpu.max": "50000 100000\n"})
    assert usable_cores(tmp_path, cpus) == 1


def test_cgroup_v1_quota(tmp_path):
    cpus = fake_machine(tmp_path, cores=8, cgroup="4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n",
                        files={"sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "300000\n",
                               "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"})
    assert usable_cores(tmp_path, cpus) == 3


def test_no_quota_uses_every_core(tmp_path):
    cpus = fake_machine(tmp_path, cores=6, files={"sys/fs/cgroup/cpu.max": "max 100000\n"})
    assert cgroup_cpu_quota(tmp_path) is None
    threads = usable_cores(tmp_path, cpus)
    assert threads == 6 and threads.why == "all 6 physical cores"


def test_unreadable_topology_counts_the_cpus(tmp_path):
    (tmp_path / "proc/self").mkdir(parents=True)
    assert usable_cores(tmp_path, {0, 1, 2}) == 3


@pytest.mark.parametrize("env, flag, expected, why", [
    ("3", None, 3, "$OMP_NUM_THREADS"),
    ("3", 5, 5, "num_threads"),
    ("", None, 4, "all 4 physical cores"),
    ("zero", None, 4, "all 4 physical cores"),
])
def test_the_flag_and_omp_num_threads_win(tmp_path, monkeypatch, env, flag, expected, why):
    cpus = fake_machine(tmp_path, cores=4)
    monkeypatch.setenv("OMP_NUM_THREADS", env)
    threads = choose_threads(flag, tmp_path, cpus)
    assert threads == expected and threads.why == why


def test_this_machine(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    import os

    threads = choose_threads()
    assert 1 <= threads <= len(os.sched_getaffinity(0)) and threads.why


def test_the_cli_asks_openmp_for_a_short_spin_unless_the_user_chose():
    import os
    import subprocess
    import sys

    code = ("import contextlib, io, os\nfrom tinyr1 import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    cli.main(['prepare', '--help'])\n"
            "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    for extra, expected in (({}, "None 10000"), ({"OMP_WAIT_POLICY": "PASSIVE"}, "PASSIVE None"),
                            ({"GOMP_SPINCOUNT": "300000"}, "None 300000")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**env, **extra})
        assert out.stdout.strip() == expected, out.stderr


def test_other_work_at_the_start_leaves_its_cores_to_it(tmp_path, monkeypatch):
    """A core busy with other work at the start is left to it; the governor may take it back later (``most``)."""
    from tinyr1.infra import threads as threads_module

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads_module, "busy_cores", lambda cpus, root: 0.9)
    chosen = choose_threads(None, tmp_path, {0, 1})
    assert (int(chosen), chosen.most, chosen.fixed) == (1, 2, False)
    assert chosen.why == "all 2 physical cores, less 1 that other work kept busy at the start (0.9 CPUs)"
    monkeypatch.setattr(threads_module, "busy_cores", lambda cpus, root: 0.3)
    assert (int(choose_threads(None, tmp_path, {0, 1})), choose_threads(None, tmp_path, {0, 1}).most) == (2, 2)
