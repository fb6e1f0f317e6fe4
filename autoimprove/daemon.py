"""The always-on service: one daemon per workspace running rounds on the policy's schedule.

On start it takes the workspace lock, resumes every unfinished round, runs one round at once if
a trigger time was missed while it was down (several missed times coalesce into one), then
hands the schedule to APScheduler's `BlockingScheduler` (UTC, `max_instances=1`,
`coalesce=True`, the policy's misfire grace). The job itself only creates an idempotent round
row for its slot and drives the state machine; everything it knows is in the store. A trigger
that fires while a round still runs is skipped, and the skip is recorded.

Between rounds the policy file is re-read: a valid change applies to the next round (a running
round keeps the policy it started with), an invalid one is rejected with every error recorded
as an event that `status` shows, and the last good policy stays in force.

SIGTERM or SIGINT: the step in flight stops at its next safe point (end of a shard, a training
checkpoint), the round stays resumable, and the daemon exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.blocking import BlockingScheduler

from autoimprove import dispatch, stopping
from autoimprove.context import Progress, Workspace
from autoimprove.lock import WorkspaceLock
from autoimprove.policy import PolicyError, load_policy
from autoimprove.rounds import Controller, RoundOutcome
from autoimprove.schedule import catch_up_slot, latest_slot, make_trigger, slot_key

log = logging.getLogger(__name__)
JOB_ID = "round"


class Daemon:
    def __init__(
        self,
        policy_path: Path,
        workspace: Workspace,
        rounds: int | None = None,
        progress: Progress | None = None,
        on_outcome: Callable[[RoundOutcome], None] | None = None,
    ):
        self.policy_path = policy_path
        self.ws = workspace
        self.rounds = rounds
        self.controller = Controller(workspace, progress)
        self.store = self.controller.store
        self.on_outcome = on_outcome or (lambda outcome: None)
        self.policy = load_policy(policy_path)  # invalid at start: the caller exits 2
        self._policy_text = policy_path.read_bytes()
        self.completed = 0
        self.scheduler: BlockingScheduler | None = None
        self._busy = threading.RLock()  # held while a round runs; never two at once
        self._pending_slot: str | None = None

    # lifecycle ------------------------------------------------------------------------------
    def run(self) -> int:
        """Run until `rounds` rounds finished, or forever; return the exit status."""
        with WorkspaceLock(self.ws.lock_file):
            stopping.reset()
            previous = self._install_signals()
            try:
                return self._run_locked()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    def _install_signals(self) -> dict:
        def on_signal(signum: int, _frame: object) -> None:
            name = signal.Signals(signum).name
            log.warning("%s: stopping after the step in flight", name)
            stopping.request_stop()
            dispatch.stop_current()
            if self.scheduler is not None and self.scheduler.running:
                threading.Thread(target=self._shutdown_scheduler, daemon=True).start()

        previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
        return previous

    def _shutdown_scheduler(self) -> None:
        try:
            assert self.scheduler is not None
            self.scheduler.shutdown(wait=False)
        except Exception:  # noqa: BLE001 - already stopped
            pass

    def _run_locked(self) -> int:
        self.store.abandon_running_step_runs()
        self.store.add_event(
            "start",
            f"pid {os.getpid()}, policy {self.policy_path} ({self.policy.digest()}), "
            f"rounds {self.rounds if self.rounds is not None else 'forever'}",
        )
        try:
            if not self._resume_unfinished():
                return 0
            if self.rounds is not None:
                while self.completed < self.rounds and not stopping.stop_requested():
                    self.controller.wait_if_paused("before a new round")
                    self._reload_policy()
                    self._drive(self.controller.start_round(self.policy))
                return 0
            self._schedule_forever()
            self._busy.acquire()  # wait for the round in flight to reach a safe point
            self._busy.release()
            return 0
        except stopping.StopRequested:
            return 0
        finally:
            self.store.add_event(
                "stop", f"pid {os.getpid()}, {self.completed} round(s) finished this run"
            )

    def _resume_unfinished(self) -> bool:
        """Finish rounds a previous daemon left; False when `rounds` is already satisfied."""
        for row in self.store.unfinished_rounds():
            assert row.id is not None
            self.store.add_resume_event(row)
            self._drive(row.id)
            if self.rounds is not None and self.completed >= self.rounds:
                return False
        return True

    def _drive(self, round_id: int) -> None:
        with self._busy:
            outcome, _ = self.controller.finish(round_id)
        self.completed += 1
        self.on_outcome(outcome)

    # policy reload --------------------------------------------------------------------------
    def _reload_policy(self) -> None:
        try:
            text = self.policy_path.read_bytes()
        except OSError as exc:
            self.store.add_event("policy_rejected", f"{self.policy_path}: cannot read: {exc}")
            return
        if text == self._policy_text:
            return
        self._policy_text = text
        try:
            policy = load_policy(self.policy_path)
        except PolicyError as exc:
            self.store.add_event(
                "policy_rejected",
                f"{exc}\nkeeping policy {self.policy.digest()} (the last good one)",
            )
            log.error("policy rejected, keeping the last good one:\n%s", exc)
            return
        old = self.policy
        self.policy = policy
        self.store.add_event("policy_reloaded", f"{old.digest()} -> {policy.digest()}")
        if policy.schedule != old.schedule and self.scheduler is not None:
            self.scheduler.reschedule_job(JOB_ID, trigger=make_trigger(policy.schedule))
            self.store.add_event("schedule_changed", str(policy.schedule.model_dump()))

    # schedule -------------------------------------------------------------------------------
    def _schedule_forever(self) -> None:
        sched = self.policy.schedule
        trigger = make_trigger(sched)
        scheduler = BlockingScheduler(
            timezone=UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(sched.misfire_grace),
            },
        )
        now = datetime.now(UTC)
        catch_up = catch_up_slot(
            trigger,
            now,
            sched.misfire_grace,
            self.store.last_slot(),
            any_rounds=bool(self.store.list_rounds()),
        )
        extra = {}
        if catch_up is not None:
            self.store.add_event("catch_up", f"running slot {catch_up} now")
            self._pending_slot = catch_up
            extra["next_run_time"] = now  # (passing None would add the job paused)
        scheduler.add_job(self._tick, trigger, id=JOB_ID, **extra)
        scheduler.add_listener(self._on_job_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_ERROR)
        self.scheduler = scheduler
        if stopping.stop_requested():
            return
        scheduler.start()

    def _tick(self) -> None:
        """The scheduled job: one round for the slot that fired (resuming leftovers first)."""
        with self._busy:
            if stopping.stop_requested():
                return
            try:
                self.controller.wait_if_paused("before a new round")
                self._reload_policy()
                slot, self._pending_slot = self._pending_slot, None
                if slot is None:
                    sched = self.policy.schedule
                    now = datetime.now(UTC)
                    fired = latest_slot(make_trigger(sched), now, sched.misfire_grace)
                    slot = slot_key(fired or now)
                self._resume_unfinished()
                self._drive(self.controller.start_round(self.policy, slot=slot))
            except stopping.StopRequested:
                return

    def _on_job_event(self, event: JobSubmissionEvent | JobExecutionEvent) -> None:
        if isinstance(event, JobSubmissionEvent):  # EVENT_JOB_MAX_INSTANCES
            times = ", ".join(slot_key(t) for t in event.scheduled_run_times)
            log.warning("trigger at %s skipped: a round is still running", times)
            self.store.add_event(
                "trigger_skipped", f"trigger at {times} skipped: a round is running"
            )
        elif event.exception is not None:
            exc = event.exception
            self.store.add_event("job_error", f"{type(exc).__name__}: {exc}")
