"""The round state machine, driven by the controller: PENDING -> GENERATED -> VERIFIED ->
TRAINED -> EVALUATED -> DECIDED -> PROMOTED | REJECTED, with FAILED (a step failed and waits
for its retry) and ABANDONED (it failed `schedule.max_attempts` times; the error is kept).

Each heavy step runs in a child process (`dispatch`), writes its output atomically under
`rounds/<id>/<step>/` (sealed by a manifest written last), and only then does the controller
commit the step's rows and the state change in one transaction. `drive` can therefore be
called on a round in any state, after a crash at any point, and it continues: a step whose
state is committed is skipped; a step whose output is sealed but not committed is committed
without running again; anything else runs (resuming from its sealed shards or checkpoints).
The MLflow side is idempotent too: one run per round (found by tag), one version per round
(found by tag), and promotion is a compare-and-set on the `champion` alias that recognises its
own earlier success, so a crash between moving the alias and recording it cannot promote twice.
The controller never loads a model.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from autoimprove import dispatch, gate, stopping
from autoimprove.artifacts import is_complete, read_jsonl
from autoimprove.basemodel import base_name, versions_cache
from autoimprove.context import Progress, Workspace
from autoimprove.early_stop import first_items
from autoimprove.evaluate import baselines_of, load_results, seed_cache_from_candidate
from autoimprove.faults import fault_point
from autoimprove.policy import Policy
from autoimprove.store import RoundRow, RoundState, Store
from autoimprove.types import Candidate
from autoimprove.verify import load_votes

log = logging.getLogger(__name__)

HEAVY_STEPS = ("generate", "verify", "train", "evaluate")
STATE_AFTER = {
    "generate": RoundState.GENERATED,
    "verify": RoundState.VERIFIED,
    "train": RoundState.TRAINED,
    "evaluate": RoundState.EVALUATED,
}


class RoundAbandoned(Exception):
    """A step failed `max_attempts` times; the round is ABANDONED with the error kept."""


@dataclass(frozen=True)
class RoundOutcome:
    round_id: int
    state: str
    decision: str | None
    reason: str | None
    model_version: str | None
    champion_version: str | None


_registries: dict[tuple, object] = {}
_registries_lock = threading.Lock()


def open_registry(policy: Policy, workspace: Workspace):  # noqa: ANN201 - Registry, imported lazily
    """The policy's registry (one client per store and model, reused: opening one costs ~1 s)."""
    from autoimprove.champion import Registry

    uri = workspace.tracking_uri(policy.registry.tracking_uri)
    root = workspace.mlflow_artifacts if policy.registry.tracking_uri is None else None
    key = (uri, policy.registry.model_name, root)
    with _registries_lock:
        if key not in _registries:
            _registries[key] = Registry(uri, policy.registry.model_name, artifact_root=root)
        return _registries[key]


def _metrics(summary: dict) -> dict[str, float]:
    """Numeric leaves of a round summary, flattened for MLflow."""
    out: dict[str, float] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        elif isinstance(value, bool | int | float):
            out[prefix] = float(value)

    walk("", summary)
    return out


def _no_progress(label: str, done: int, total: int) -> None:
    return None


class Controller:
    """Creates rounds and drives them to a final state; owns every state transition."""

    def __init__(self, workspace: Workspace, progress: Progress | None = None):
        self.ws = workspace
        workspace.root.mkdir(parents=True, exist_ok=True)
        self.store = Store(workspace.state_db)
        self.progress = progress or _no_progress

    # creating -------------------------------------------------------------------------------
    def start_round(self, policy: Policy, slot: str | None = None) -> int:
        """A new round on the current champion (or the existing round of `slot`)."""
        champion = open_registry(policy, self.ws).champion()
        return self.store.create_round(
            policy.digest(), policy.model_dump_json(), champion.version, slot=slot
        )

    # driving --------------------------------------------------------------------------------
    def finish(self, round_id: int) -> tuple[RoundOutcome, str | None]:
        """`drive`, and when the retries abandon the round, record that and read it back.

        Returns the outcome and, for an abandoned round, the error that abandoned it."""
        try:
            return self.drive(round_id), None
        except RoundAbandoned as exc:
            self.store.add_event("abandoned", f"round {round_id}: {str(exc)[:2000]}")
            return self.drive(round_id), str(exc) or "abandoned"  # final now: reads it back

    def drive(self, round_id: int) -> RoundOutcome:
        """Run the round from wherever it stands to a final state (or until a stop request)."""
        row = self._row(round_id)
        policy = Policy.model_validate_json(row.policy_json)
        registry = open_registry(policy, self.ws)
        if row.state in RoundState.FINAL:
            if not (self.ws.round_dir(round_id) / "report" / "index.html").is_file():
                self.write_report(round_id, registry)
            return self._outcome(row, registry)
        if row.parent_version:
            registry.download_model(row.parent_version, versions_cache(self.ws))
        for step in HEAVY_STEPS:
            if RoundState.reached(self._row(round_id).progress, STATE_AFTER[step]):
                continue
            if step == "train" and self._accepted_count(round_id) == 0:
                self._reject_untrained(round_id, policy, registry)
                return self._reported(round_id, registry)
            self._run_heavy(round_id, step, policy)
            fault_point(step, "after_effect")
            self._commit(round_id, step)
            fault_point(step, "after_commit")
            stopping.check()
        self._decide(round_id, policy)
        self._register(round_id, policy, registry)
        self._promote(round_id, registry)
        return self._reported(round_id, registry)

    def _reported(self, round_id: int, registry) -> RoundOutcome:  # noqa: ANN001
        self.write_report(round_id, registry)
        return self._outcome(self._row(round_id), registry)

    def write_report(self, round_id: int, registry=None) -> Path:  # noqa: ANN001
        """Render the round's HTML report and log it to the round's MLflow run (if any).

        Rendered in a short child process: plotting imports matplotlib (~30 MB), which the
        long-lived controller of `autoimprove run` should not carry.
        """
        done = subprocess.run(
            [sys.executable, "-m", "autoimprove.report", str(self.ws.root), str(round_id)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"round {round_id}'s report failed to render:\n{done.stderr[-3000:]}"
            )
        page = Path(done.stdout.strip().splitlines()[-1])
        run_id = registry.find_round_run(round_id) if registry is not None else None
        if run_id:
            registry.log_artifacts(run_id, page.parent, "report")
        return page

    def _row(self, round_id: int) -> RoundRow:
        row = self.store.get_round(round_id)
        if row is None:
            raise KeyError(f"round {round_id} does not exist")
        return row

    def _outcome(self, row: RoundRow, registry) -> RoundOutcome:  # noqa: ANN001
        assert row.id is not None
        return RoundOutcome(
            row.id,
            row.state,
            row.decision,
            row.reason,
            row.model_version,
            registry.champion().version,
        )

    def _step_dir(self, round_id: int, step: str) -> Path:
        return self.ws.step_dir(round_id, step)

    def wait_if_paused(self, where: str) -> None:
        """Hold here (between steps, before a new round) while the workspace is paused."""
        if not self.ws.pause_file.exists():
            return
        self.store.add_event("paused", f"waiting {where}")
        log.warning("paused by an operator: waiting %s (autoimprove resume)", where)
        while self.ws.pause_file.exists():
            stopping.check()
            time.sleep(0.5)
        self.store.add_event("resumed", f"continuing {where}")

    # heavy steps ----------------------------------------------------------------------------
    def _run_heavy(self, round_id: int, step: str, policy: Policy) -> None:
        """Run `step` in a child until its output is sealed, retrying failures with backoff."""
        self.wait_if_paused(f"before {step} of round {round_id}")
        fault_point(step, "before")
        sched = policy.schedule
        failed = sum(
            1 for r in self.store.step_runs(round_id) if r.step == step and r.outcome == "failed"
        )
        while True:
            attempt = failed + 1
            if is_complete(self._step_dir(round_id, step)):
                # Sealed by an attempt whose commit never happened: commit it, don't redo it.
                run = self.store.start_step_run(round_id, step, attempt, None)
                self.store.finish_step_run(run, "reused", 0)
                return
            stopping.check()
            started = time.perf_counter()
            run_id: list[int] = []

            def record(pid: int, attempt: int = attempt, run_id: list[int] = run_id) -> None:
                run_id.append(self.store.start_step_run(round_id, step, attempt, pid))

            result = dispatch.run_child(
                self.ws, round_id, step, attempt, self.progress, on_start=record
            )
            seconds = round(time.perf_counter() - started, 2)
            if result.ok and is_complete(self._step_dir(round_id, step)):
                self.store.finish_step_run(run_id[0], "ok", 0)
                self._add_wall(round_id, step, seconds)
                return
            if result.stopped or stopping.stop_requested():
                self.store.finish_step_run(run_id[0], "stopped", result.exit_code)
                raise stopping.StopRequested(f"stopped during {step} of round {round_id}")
            error = f"{step} attempt {attempt} failed: {result.error()}"
            self.store.finish_step_run(run_id[0], "failed", result.exit_code, error)
            failed += 1
            total_failed = sum(1 for r in self.store.step_runs(round_id) if r.outcome == "failed")
            log.warning("round %s: %s", round_id, error.splitlines()[0])
            if failed >= sched.max_attempts or result.permanent:
                self.store.commit_step(
                    round_id,
                    RoundState.ABANDONED,
                    error=error,
                    attempts=total_failed,
                    decision="abandoned",
                    reason=(
                        f"{step} failed with an error retrying cannot fix"
                        if result.permanent
                        else f"{step} failed {failed} times (schedule.max_attempts); giving up"
                    ),
                )
                raise RoundAbandoned(error)
            self.store.commit_step(round_id, RoundState.FAILED, error=error, attempts=total_failed)
            backoff = sched.retry_backoff * 2 ** (failed - 1)
            deadline = time.monotonic() + backoff
            while time.monotonic() < deadline:
                stopping.check()
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def _add_wall(self, round_id: int, step: str, seconds: float) -> None:
        walls = self._row(round_id).summary.get("wall_seconds", {})
        walls[step] = round(walls.get(step, 0.0) + seconds, 2)
        self.store.commit_step(round_id, self._row(round_id).state, {"wall_seconds": walls})

    def _summary(self, round_id: int, step: str) -> dict:
        return json.loads((self._step_dir(round_id, step) / "summary.json").read_text())

    def _commit(self, round_id: int, step: str) -> None:
        """Record a sealed step: its rows and the state change in one transaction."""
        folder = self._step_dir(round_id, step)
        summary = self._summary(round_id, step)
        write = None
        if step == "generate":
            seeds = [row["id"] for row in read_jsonl(folder / "seeds.jsonl")]
            candidates = [Candidate(**r) for r in read_jsonl(folder / "candidates.jsonl")]
            write = Store.write_generated(round_id, seeds, candidates)
        elif step == "verify":
            verdicts, votes = load_votes(folder)
            write = Store.write_verified(round_id, verdicts, votes)
        elif step == "evaluate":
            write = Store.write_evaluated(round_id, load_results(folder, summary))
        key = "eval" if step == "evaluate" else step
        self.store.commit_step(round_id, STATE_AFTER[step], {key: summary}, write)

    def _accepted_count(self, round_id: int) -> int:
        return int(self._summary(round_id, "verify")["funnel"]["accepted"])

    # decide, register, promote --------------------------------------------------------------
    def _decide(self, round_id: int, policy: Policy) -> None:
        if RoundState.reached(self._row(round_id).progress, RoundState.DECIDED):
            return
        fault_point("decide", "before")
        summary = self._summary(round_id, "evaluate")
        results = load_results(self._step_dir(round_id, "evaluate"), summary)
        baselines = baselines_of(results)
        stopped = summary.get("stopped_early")
        # No guard results when the candidate stopped early or (guard_scoring: on_promotion)
        # failed the main test: the gate rejects it on those grounds alone.
        unguarded = stopped or summary.get("guards_not_scored")
        guards = {
            task: (results[f"guard/{task}/champion"], results[f"guard/{task}/candidate"])
            for task in policy.evaluation.guard_tasks
            if not unguarded
        }
        champion, candidate = results["champion"], results["candidate"]
        if stopped:  # the candidate has its first look's items only; compare on those
            champion = first_items(champion, candidate.n)
        decision = gate.decide(
            champion, candidate, policy.promotion, baselines, guards, stopped_early=stopped
        )
        if decision.promote and unguarded:
            raise RuntimeError(
                f"round {round_id}: the gate would promote a candidate whose guard tasks were "
                "not scored; was the policy's promotion section changed mid-round?"
            )
        self.store.commit_step(
            round_id,
            RoundState.DECIDED,
            {"gate": asdict(decision)},
            decision="promote" if decision.promote else "reject",
            reason=decision.reason,
        )
        fault_point("decide", "after_commit")

    def _log_run(self, round_id: int, policy: Policy, registry, with_model: bool) -> str:  # noqa: ANN001
        run_id = registry.start_round_run(round_id, json.loads(policy.model_dump_json()))
        registry.log_artifacts(run_id, self._step_dir(round_id, "verify"), "accepted_data")
        if with_model:
            import tempfile

            from autoimprove.consumer import save_pyfunc

            with tempfile.TemporaryDirectory(prefix="autoimprove-model-") as scratch:
                model_dir = save_pyfunc(
                    self._step_dir(round_id, "train") / "adapter",
                    Path(scratch) / "model",
                    policy.model.base,
                    policy.model.dtype,
                    policy.model.system_prompt,
                )
                registry.log_artifacts(run_id, model_dir, "model")
            registry.log_artifacts(run_id, self._step_dir(round_id, "evaluate"), "eval_items")
        registry.log_metrics(run_id, _metrics(self._row(round_id).summary))
        return run_id

    def _register(self, round_id: int, policy: Policy, registry) -> None:  # noqa: ANN001
        row = self._row(round_id)
        if row.model_version is not None:
            return
        fault_point("register", "before")
        run_id = self._log_run(round_id, policy, registry, with_model=True)
        version = registry.register(
            run_id,
            round_id,
            tags={
                "parent_version": row.parent_version or "base",
                "base_model": base_name(policy),
                "policy_hash": row.policy_hash,
                "decision": row.decision or "",
            },
        )
        registry.finish_run(run_id)
        fault_point("register", "after_effect")
        self.store.commit_step(round_id, RoundState.DECIDED, model_version=version)
        fault_point("register", "after_commit")

    def _promote(self, round_id: int, registry) -> None:  # noqa: ANN001
        row = self._row(round_id)
        version = row.model_version
        assert version is not None
        fault_point("promote", "before")
        if row.decision != "promote":
            self.store.commit_step(round_id, RoundState.REJECTED, decision="rejected")
            fault_point("promote", "after_commit")
            return
        if registry.promote(version, expected=row.parent_version):
            fault_point("promote", "after_effect")
            policy = Policy.model_validate_json(row.policy_json)
            seed_cache_from_candidate(self.ws, round_id, policy, version)
            self.store.commit_step(round_id, RoundState.PROMOTED, decision="promoted")
        else:
            reason = (
                f"Stale: the champion alias moved away from "
                f"{row.parent_version or 'the base model'} while this round ran; version "
                f"{version} was registered but not promoted. {row.reason}"
            )
            registry.tag_version(version, "decision", "stale")
            self.store.commit_step(round_id, RoundState.REJECTED, decision="stale", reason=reason)
        fault_point("promote", "after_commit")

    def _reject_untrained(self, round_id: int, policy: Policy, registry) -> None:  # noqa: ANN001
        candidates = self._summary(round_id, "verify")["funnel"]["candidates"]
        run_id = self._log_run(round_id, policy, registry, with_model=False)
        registry.finish_run(run_id)
        self.store.commit_step(
            round_id,
            RoundState.REJECTED,
            decision="rejected",
            reason=f"No candidate passed the cascade ({candidates} judged); training skipped.",
        )


def run_round(
    policy: Policy, workspace: Workspace, progress: Progress | None = None
) -> RoundOutcome:
    """Create one round and drive it to the end (the `round` command; no lock, no schedule)."""
    controller = Controller(workspace, progress)
    return controller.drive(controller.start_round(policy))
