"""utils.atomic with real writer processes: killed by SIGTERM or SIGKILL mid-write, next to a live writer."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from utils.atomic import LEGACY_TEMP_MAX_AGE_S, atomic_output, remove_stale_temporaries, temporary_path

REPO_ROOT = Path(__file__).resolve().parents[1]

# Writes "partial" to a temporary of argv[1], prints the temporary's path, waits argv[2] seconds, finishes.
WRITER = """
import sys, time
from utils.atomic import atomic_output, sigterm_as_interrupt
with sigterm_as_interrupt():
    try:
        with atomic_output(sys.argv[1]) as tmp:
            with open(tmp, "w") as handle:
                handle.write("partial")
                handle.flush()
                print(tmp, flush=True)
                time.sleep(float(sys.argv[2]))
                handle.write(" done by " + sys.argv[3])
    except KeyboardInterrupt:
        sys.exit(143)
"""


def start_writer(path, seconds, name):
    """A writer process and the temporary it is writing (once it exists)."""
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(seconds), name], cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, text=True)
    temporary = Path(process.stdout.readline().strip())
    assert temporary.is_file(), temporary
    return process, temporary


def test_sigkilled_writers_temporary_is_removed_by_the_next_writer_but_a_live_ones_is_not(tmp_path):
    target = tmp_path / "out" / "video.mp4"
    killed, killed_temp = start_writer(target, 60, "killed")
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed_temp.exists()  # SIGKILL leaves it: nothing in the process can run
    live, live_temp = start_writer(target, 60, "live")
    try:
        finisher = subprocess.run([sys.executable, "-c", WRITER, str(target), "0", "finisher"], cwd=REPO_ROOT,
                                  capture_output=True, text=True, timeout=60)
        assert finisher.returncode == 0, finisher.stderr
        assert not killed_temp.exists()  # its writer is dead: removed on the finisher's start
        assert live_temp.is_file() and live_temp.read_text() == "partial"  # the live writer's: untouched
        assert target.read_text() == "partial done by finisher"
    finally:
        live.send_signal(signal.SIGTERM)
        assert live.wait(timeout=30) == 143
    assert sorted(p.name for p in target.parent.iterdir()) == ["video.mp4"]  # SIGTERM cleaned up too


def test_sigterm_mid_write_removes_the_temporary(tmp_path):
    target = tmp_path / "motion.npy"
    writer, temporary = start_writer(target, 60, "terminated")
    writer.send_signal(signal.SIGTERM)
    assert writer.wait(timeout=30) == 143
    assert list(tmp_path.iterdir()) == []


def test_temporary_names_carry_host_and_pid_and_keep_the_suffix(tmp_path):
    temporary = temporary_path(tmp_path / "clip.mp4")
    stem, suffix = temporary.name.split(".tmp-")
    host, pid, token = suffix[:-len(".mp4")].split("-")
    assert stem == "clip" and temporary.suffix == ".mp4" and pid == str(os.getpid()) and len(token) == 8


def dead_pid():
    """The PID of a process that has exited."""
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)


def with_pid(temporary, pid):
    return temporary.with_name(temporary.name.replace(f"-{os.getpid()}-", f"-{pid}-"))


def test_only_own_dead_temporaries_are_swept(tmp_path):
    target, pid = tmp_path / "clip.mp4", dead_pid()
    own = temporary_path(target)
    dead = with_pid(temporary_path(target), pid)
    elsewhere = tmp_path / f"clip.tmp-otherhost-{pid}-0123abcd.mp4"  # another machine: cannot be checked
    other_output = with_pid(temporary_path(tmp_path / "clip_grid.mp4"), pid)  # another destination's
    old_legacy, new_legacy = tmp_path / "clip.tmp-0badc0de.mp4", tmp_path / "clip.tmp-1badc0de.mp4"
    for path in (own, dead, elsewhere, other_output, old_legacy, new_legacy):
        path.write_text("x")
    old = time.time() - LEGACY_TEMP_MAX_AGE_S - 60
    os.utime(old_legacy, (old, old))
    assert sorted(remove_stale_temporaries(target)) == sorted([dead, old_legacy])
    assert all(path.exists() for path in (own, elsewhere, other_output, new_legacy))
    # a directory output's temporary (no suffix) is removed whole
    dead_directory = with_pid(temporary_path(tmp_path / "clip"), pid)
    (dead_directory / "frames").mkdir(parents=True)
    assert remove_stale_temporaries(tmp_path / "clip") == [dead_directory] and not dead_directory.exists()


def test_atomic_output_replaces_on_success_and_deletes_on_error(tmp_path):
    target = tmp_path / "a.txt"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole" and list(tmp_path.iterdir()) == [target]
