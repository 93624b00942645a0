"""utils.runtime.configure_threads: the CLIs' CPU thread count (the user's choice kept, else CPUs less load)."""
import pytest
import torch

from utils import runtime


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def choose(monkeypatch, *, usable, load, machine_cpus):
    for name in runtime.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(runtime, "usable_cpus", lambda: usable)
    monkeypatch.setattr(runtime, "other_load", lambda: load)
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: machine_cpus)
    return runtime.configure_threads()


def test_a_count_the_user_set_is_kept(monkeypatch, restore_threads):
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(runtime, "usable_cpus", lambda: 8)
    monkeypatch.setattr(runtime, "other_load", lambda: 0.0)
    assert runtime.configure_threads() == 1 and torch.get_num_threads() == 1


def test_other_processes_take_their_cpus_and_a_reduction_is_said(monkeypatch, restore_threads, capsys):
    assert choose(monkeypatch, usable=4, load=1.2, machine_cpus=4) == 3 and torch.get_num_threads() == 3
    assert runtime.os.environ["OMP_NUM_THREADS"] == "3"  # what processes started from here inherit
    assert "torch uses 3 of 4 CPUs" in capsys.readouterr().err
    assert choose(monkeypatch, usable=2, load=1.0, machine_cpus=2) == 1  # one busy process on 2 cores
    assert choose(monkeypatch, usable=2, load=9.0, machine_cpus=2) == 1  # never below one
    assert choose(monkeypatch, usable=4, load=0.2, machine_cpus=4) == 4  # background noise keeps every CPU
    assert capsys.readouterr().err.count("[threads]") == 2  # said for 1 of 2 twice, not for 4 of 4


def test_machine_wide_load_is_scaled_to_the_cpus_this_process_may_use(monkeypatch, restore_threads):
    # A container with 2 of a 64-CPU host's CPUs: a host load of 16 keeps a quarter of them busy.
    assert choose(monkeypatch, usable=2, load=16.0, machine_cpus=64) == 2
    assert choose(monkeypatch, usable=2, load=48.0, machine_cpus=64) == 1


def test_usable_cpus_and_load_read_the_kernel_files(monkeypatch, tmp_path):
    quota = tmp_path / "cpu.max"
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: set(range(8)))
    real_open = open

    def fake_open(path, *args, **kwargs):
        files = {"/sys/fs/cgroup/cpu.max": quota, "/proc/loadavg": tmp_path / "loadavg"}
        return real_open(files.get(path, path), *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    quota.write_text("150000 100000\n")  # 1.5 CPUs of quota -> 2
    assert runtime.usable_cpus() == 2
    quota.write_text("max 100000\n")
    assert runtime.usable_cpus() == 8
    (tmp_path / "loadavg").write_text("0.50 0.40 0.30 4/310 12345\n")  # 4 runnable now, this one included
    assert runtime.other_load() == 3
    (tmp_path / "loadavg").write_text("5.25 4.00 3.00 1/310 12345\n")
    assert runtime.other_load() == 5.25
