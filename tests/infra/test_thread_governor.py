"""The thread governor on a faked machine: /proc/stat and /proc/self/stat readings it is fed, step by step."""

from __future__ import annotations

from tinyr1.infra.thread_governor import ThreadGovernor, governor_callback
from tinyr1.infra.threads import Threads


class FakeMachine:
    """Two CPUs whose jiffies advance by one second a step: ``busy`` (other work + ours), ``steal`` and ``own``
    (this process's user + system) in cores' worth of each second."""

    def __init__(self, cpus: int = 2):
        self.cpus, self.jiffies, self.own, self.now = cpus, [[0] * 8 for _ in range(cpus)], 0, 0.0

    def advance(self, others: float = 0.0, own: float = 0.0, steal: float = 0.0, tick: int = 100):
        # Spread the work over the CPUs, one core's worth at a time, as the scheduler would.
        work, left_to_steal = others + own, steal
        for cpu in range(self.cpus):
            used = min(1.0, max(0.0, work))
            stolen = min(1.0 - used, left_to_steal)
            work, left_to_steal = work - used, left_to_steal - stolen
            self.jiffies[cpu][0] += round(used * tick)      # user
            self.jiffies[cpu][7] += round(stolen * tick)    # steal
            self.jiffies[cpu][3] += round((1.0 - used - stolen) * tick)  # idle
        self.own += round(own * tick)
        self.now += 1.0

    def clock(self) -> float:
        return self.now

    def stat(self) -> str:
        return "\n".join(f"cpu{c} " + " ".join(map(str, j)) for c, j in enumerate(self.jiffies))

    def self_stat(self) -> str:
        return "4242 (python3 tinyr1) R " + " ".join(["0"] * 10) + f" {self.own} 0 0 0 20 0"


def governor(machine: FakeMachine, most: int = 2):
    applied, said = [], []
    gov = ThreadGovernor(most, set(range(machine.cpus)), read_stat=machine.stat, read_self=machine.self_stat,
                         set_threads=applied.append, say=said.append, clock=machine.clock)
    return gov, applied, said


def test_other_work_on_a_core_takes_a_thread_away_and_says_so(monkeypatch):
    monkeypatch.setattr("os.sysconf", lambda name: 100)
    machine = FakeMachine()
    gov, applied, said = governor(machine)
    machine.advance(others=0.7, own=1.3)  # a busy loop squeezed beside our two threads
    assert gov.check(step=5) == 1
    assert applied == [1] and gov.current == 1
    assert said == ["cpu threads 2 -> 1 at step 5: other work keeps 0.7 of this process's 2 CPUs busy"]


def test_its_own_threads_are_not_other_work(monkeypatch):
    monkeypatch.setattr("os.sysconf", lambda name: 100)
    machine = FakeMachine()
    gov, applied, _ = governor(machine)
    for step in range(5):
        machine.advance(own=2.0)
        assert gov.check(step) is None
    assert applied == [] and gov.current == 2


def test_a_thread_comes_back_after_two_quiet_steps_not_one(monkeypatch):
    monkeypatch.setattr("os.sysconf", lambda name: 100)
    machine = FakeMachine()
    gov, applied, said = governor(machine)
    machine.advance(others=1.0, own=1.0)
    assert gov.check(1) == 1
    machine.advance(own=1.0)
    assert gov.check(2) is None  # one quiet step
    machine.advance(others=0.9, own=1.0)
    assert gov.check(3) is None  # busy again: the count stays
    machine.advance(own=1.0)
    assert gov.check(4) is None
    machine.advance(own=1.0)
    assert gov.check(5) == 2
    assert applied == [1, 2]
    assert said[-1] == "cpu threads 1 -> 2 at step 5: other work now keeps only 0.0 of this process's 2 CPUs busy"
    assert [c[:2] for c in gov.changes] == [(1, 1), (5, 2)]


def test_steal_time_counts_as_other_work(monkeypatch):
    """A VM whose neighbours take the host's cores: the guest sees it as steal time, not as idle."""
    monkeypatch.setattr("os.sysconf", lambda name: 100)
    machine = FakeMachine()
    gov, applied, _ = governor(machine)
    machine.advance(own=1.2, steal=0.8)
    assert gov.check(1) == 1 and applied == [1]


def test_light_other_work_keeps_every_thread(monkeypatch):
    monkeypatch.setattr("os.sysconf", lambda name: 100)
    machine = FakeMachine()
    gov, applied, _ = governor(machine)
    machine.advance(others=0.3, own=1.7)
    assert gov.check(1) is None and applied == []


def test_on_more_cores_it_gives_up_only_the_cores_taken(monkeypatch):
    monkeypatch.setattr("os.sysconf", lambda name: 100)
    machine = FakeMachine(cpus=8)
    gov, applied, _ = governor(machine, most=8)
    machine.advance(others=2.0, own=6.0)
    assert gov.check(1) == 6 and applied == [6]


def test_unreadable_proc_changes_nothing(monkeypatch):
    monkeypatch.setattr("os.sysconf", lambda name: 100)
    applied = []
    gov = ThreadGovernor(2, {0, 1}, read_stat=lambda: None, read_self=lambda: None, set_threads=applied.append,
                         say=lambda line: None)
    assert gov.check(1) is None and applied == [] and gov.current == 2


def test_a_count_the_user_set_is_never_governed():
    assert governor_callback(Threads(2, "--num_threads")) is None
    assert governor_callback(Threads(2, "$OMP_NUM_THREADS")) is None
    assert governor_callback(Threads(1, "all 1 physical core")) is None
    assert governor_callback(None) is None  # a GPU run: configure_cpu set nothing
    assert governor_callback(Threads(2, "all 2 physical cores")) is not None  # this machine has /proc


def test_the_commands_govern_only_what_configure_cpu_chose_in_one_process(monkeypatch):
    from tinyr1.infra import device
    from tinyr1.infra.thread_governor import thread_governor

    monkeypatch.setattr(device, "_configured", None)
    assert thread_governor() is None  # nothing configured: a GPU run, or the API left the CPU alone
    monkeypatch.setattr(device, "_configured", Threads(2, "all 2 physical cores"))
    monkeypatch.setattr(device.torch, "get_num_threads", lambda: 2)
    assert thread_governor() is not None
    assert thread_governor(world_size=2) is None  # each process would count the others as other work
    monkeypatch.setattr(device.torch, "get_num_threads", lambda: 1)  # set since, e.g. an API call's num_threads=
    assert thread_governor() is None


def test_a_run_that_started_on_fewer_threads_takes_the_rest_back_once_the_machine_is_quiet(monkeypatch):
    monkeypatch.setattr("os.sysconf", lambda name: 100)
    machine = FakeMachine()
    applied, said = [], []
    gov = ThreadGovernor(2, {0, 1}, start=1, read_stat=machine.stat, read_self=machine.self_stat,
                         set_threads=applied.append, say=said.append, clock=machine.clock)
    for step in (1, 2):
        machine.advance(own=1.0)
        gov.check(step)
    assert applied == [2] and gov.current == 2
