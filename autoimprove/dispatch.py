"""Run a heavy step in a child process (`autoimprove.worker`) and report how it ended.

The child gets its own session so a terminal's Ctrl-C reaches only the controller, which decides
when to pass a stop on (`stop_current`). The child's stdout carries progress as JSON lines; its
stderr is filed as `rounds/<id>/logs/<step>-<attempt>.log`, and its tail becomes the round's
error when the step fails.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from autoimprove.context import Progress, Workspace
from autoimprove.worker import EXIT_PERMANENT, EXIT_STOPPED

_current: subprocess.Popen | None = None
_lock = threading.Lock()


@dataclass(frozen=True)
class ChildResult:
    exit_code: int
    log: Path
    pid: int

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def stopped(self) -> bool:
        return self.exit_code == EXIT_STOPPED

    @property
    def permanent(self) -> bool:
        return self.exit_code == EXIT_PERMANENT

    def error(self, lines: int = 12) -> str:
        """The end of the child's log, for the round's error field."""
        try:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            tail = []
        how = (
            f"killed by signal {-self.exit_code}"
            if self.exit_code < 0
            else f"exit code {self.exit_code}"
        )
        if self.exit_code == -signal.SIGKILL:
            # Nothing here sends SIGKILL; the kernel's OOM killer does (a training batch of 8
            # rows x 512 tokens on the embedded model went past 20 GB).
            how += (
                " (often the out-of-memory killer: see `dmesg`; lower training.batch_size or "
                "raise training.grad_accum, or lower generation.batch)"
            )
        return f"{how}; log {self.log}" + ("\n" + "\n".join(tail) if tail else "")


def stop_current() -> None:
    """Ask the running child (if any) to stop at its next safe point."""
    with _lock:
        if _current is not None and _current.poll() is None:
            _current.send_signal(signal.SIGTERM)


def run_child(
    workspace: Workspace,
    round_id: int,
    step: str,
    attempt: int,
    progress: Progress,
    on_start=None,  # noqa: ANN001 - callable(pid), records the attempt before it runs
) -> ChildResult:
    global _current
    logs = workspace.log_dir(round_id)
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{step}-{attempt}.log"
    command = [
        sys.executable,
        "-m",
        "autoimprove.worker",
        step,
        str(round_id),
        "--workspace",
        str(workspace.root),
    ]
    with log.open("ab") as err:
        with _lock:
            proc = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=err, start_new_session=True, text=True
            )
            _current = proc
        if on_start is not None:
            on_start(proc.pid)
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                label, done, total = json.loads(line)["progress"]
            except (ValueError, KeyError, TypeError):
                continue
            progress(label, done, total)
        code = proc.wait()
        with _lock:
            _current = None
    return ChildResult(code, log, proc.pid)
