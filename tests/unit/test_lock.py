"""The workspace lock: one holder at a time, named in the refusal, gone with its holder."""

import os
import subprocess
import sys

import pytest

from autoimprove.lock import WorkspaceBusy, WorkspaceLock, holder


def test_second_holder_is_refused_with_the_first_ones_pid(tmp_path):
    path = tmp_path / "daemon.lock"
    first = WorkspaceLock(path).acquire()
    assert holder(path) == str(os.getpid())
    with pytest.raises(WorkspaceBusy) as refused:
        WorkspaceLock(path).acquire()
    assert refused.value.pid == str(os.getpid()) and f"pid {os.getpid()}" in str(refused.value)
    first.release()
    assert holder(path) is None
    with WorkspaceLock(path):
        assert holder(path) == str(os.getpid())


def test_a_killed_holder_leaves_no_lock(tmp_path):
    path = tmp_path / "daemon.lock"
    code = (
        "import os, signal; from pathlib import Path; from autoimprove.lock import WorkspaceLock;"
        f"WorkspaceLock(Path({str(path)!r})).acquire(); os.kill(os.getpid(), signal.SIGKILL)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9
    assert path.read_text().strip().isdigit()  # the dead holder's pid is still written there
    assert holder(path) is None
    WorkspaceLock(path).acquire().release()
