"""A child process that runs one heavy step of one round and exits.

    python -m autoimprove.worker <step> <round-id> --workspace <dir>

The controller starts one per attempt at generate, verify, train or evaluate, so a model is only
ever loaded here: memory is returned when the child exits and a crash cannot take the daemon
down. The round's own policy (stored with the round when it began) is used, never the file on
disk. Progress goes to stdout as JSON lines; logs go to stderr (the controller files them under
`rounds/<id>/logs/`). Exit status: 0 done (output sealed), 75 stopped at a safe point on
SIGTERM/SIGINT (resumable), anything else failed. The child dies with its parent: a watchdog
exits as soon as the controller is gone, so a killed daemon leaves no orphan writing to the
workspace.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from autoimprove import stopping

EXIT_STOPPED = 75
EXIT_PERMANENT = 78  # retrying cannot help (seeds exhausted, base model missing)
STEPS = ("generate", "verify", "train", "evaluate")


def _die_with_parent() -> None:
    parent = os.getppid()
    try:  # Linux: the kernel delivers SIGKILL when the parent exits
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass

    def watch() -> None:  # anywhere else (and if the parent died before prctl took effect)
        while True:
            if os.getppid() != parent:
                os._exit(70)
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True, name="parent-watchdog").start()


def _emit(label: str, done: int, total: int) -> None:
    print(json.dumps({"progress": [label, done, total]}), flush=True)


def run_step(step: str, round_id: int, workspace: Path) -> dict:
    from autoimprove.basemodel import champion_ref, resolve_base
    from autoimprove.context import RoundContext, Workspace
    from autoimprove.policy import Policy
    from autoimprove.store import Store

    ws = Workspace(workspace)
    store = Store(ws.state_db)
    row = store.get_round(round_id)
    if row is None:
        raise SystemExit(f"no round {round_id} in {workspace}")
    policy = Policy.model_validate_json(row.policy_json)
    base_dir = resolve_base(policy)
    ctx = RoundContext(
        round_id=round_id,
        policy=policy,
        workspace=ws,
        store=store,
        base_dir=base_dir,
        champion=champion_ref(ws, base_dir, row.parent_version),
        progress=_emit,
    )
    if step == "generate":
        from autoimprove.generate import run
    elif step == "verify":
        from autoimprove.verify import run
    elif step == "train":
        from autoimprove.train import run
    else:
        from autoimprove.evaluate import run
    return run(ctx)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autoimprove.worker")
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("round_id", type=int)
    parser.add_argument("--workspace", type=Path, required=True)
    args = parser.parse_args(argv)
    _die_with_parent()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.request_stop())
    from autoimprove.runtime import offline_env, quiet_libraries

    offline_env()
    quiet_libraries()
    from autoimprove.embedded import EmbeddedModelError
    from autoimprove.generate import SeedsExhausted

    try:
        run_step(args.step, args.round_id, args.workspace)
    except stopping.StopRequested:
        print(f"{args.step}: stopped at a safe point", file=sys.stderr)
        return EXIT_STOPPED
    except (SeedsExhausted, EmbeddedModelError, FileNotFoundError) as exc:
        print(f"{args.step}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_PERMANENT
    return 0


if __name__ == "__main__":
    sys.exit(main())
