"""Fault injection for the durability tests: SIGKILL (or pause) this process at a named point.

`AUTOIMPROVE_FAULT=<step>:<point>[:pause]` (several, comma-separated) acts when the process
reaches that point. Controller points, for every step: `before` (about to run the step),
`after_effect` (its side effect is done: output sealed, version registered or alias moved, but
the state change is not committed) and `after_commit`. Child points: `generate:after_shard`,
`verify:after_shard`, `train:after_checkpoint`, `evaluate:after_shard`.

Without `:pause` the process kills itself with SIGKILL (no cleanup, like a power cut). With
`:pause` it writes its pid to the marker file and waits until the file says `release` (or a stop
is requested), so a test can act at that exact moment: kill from outside, edit the policy,
send SIGTERM. `AUTOIMPROVE_FAULT_ONCE=<file>` makes each fault fire once: `<file>.<step>.<point>`
is created when it fires and a fault whose marker exists is skipped; a pause needs it.
Unset in production, the check is one environment lookup.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ENV = "AUTOIMPROVE_FAULT"
ONCE_ENV = "AUTOIMPROVE_FAULT_ONCE"


def marker(once: str | Path, step: str, point: str) -> Path:
    return Path(f"{once}.{step}.{point}")


def fault_point(step: str, point: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    for fault in spec.split(","):
        parts = fault.strip().split(":")
        if parts[:2] != [step, point]:
            continue
        once = os.environ.get(ONCE_ENV)
        flag = marker(once, step, point) if once else None
        if flag is not None and flag.exists():
            return
        if len(parts) > 2 and parts[2] == "pause":
            assert flag is not None, f"{ENV} pause needs {ONCE_ENV}"
            _pause(flag)
            return
        if flag is not None:
            flag.write_text(f"killed {os.getpid()}\n")
        os.kill(os.getpid(), signal.SIGKILL)


def _pause(flag: Path) -> None:
    from autoimprove import stopping

    flag.write_text(f"paused {os.getpid()}\n")
    while not stopping.stop_requested():
        if flag.read_text().strip() == "release":
            return
        time.sleep(0.05)
