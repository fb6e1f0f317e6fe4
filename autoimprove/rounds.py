"""The round state machine: PENDING -> GENERATED -> VERIFIED -> TRAINED -> EVALUATED -> DECIDED
-> PROMOTED | REJECTED (or FAILED with the error kept).

This module sequences the steps and owns every state transition; each step module writes its own
artifacts under `<workspace>/rounds/<id>/<step>/` and the state change is committed only after
they are sealed. The MLflow side (run, version, aliases) is driven from here through
`champion.Registry`. Promotion is compare-and-set on the `champion` alias: it moves only if it
still points at the version this round started from.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from autoimprove import evaluate, gate, generate, train, verify
from autoimprove.champion import Registry
from autoimprove.context import Progress, RoundContext, Workspace
from autoimprove.embedded import EMBEDDED_MODEL_ID, embedded_model_dir
from autoimprove.policy import EMBEDDED, Policy
from autoimprove.store import RoundState, Store
from autoimprove.types import ModelRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundOutcome:
    round_id: int
    state: str
    decision: str
    reason: str
    model_version: str | None
    champion_version: str | None


def resolve_base(policy: Policy) -> tuple[Path, str]:
    """The base model folder and the name recorded on registry versions."""
    if policy.model.base == EMBEDDED:
        return embedded_model_dir(), EMBEDDED_MODEL_ID
    path = Path(policy.model.base)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"model.base {path} is not a transformers model folder (no config.json)"
        )
    return path, str(path)


def open_registry(policy: Policy, workspace: Workspace) -> Registry:
    return Registry(
        workspace.tracking_uri(policy.registry.tracking_uri),
        policy.registry.model_name,
        artifact_root=workspace.mlflow_artifacts if policy.registry.tracking_uri is None else None,
    )


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


def run_round(
    policy: Policy, workspace: Workspace, progress: Progress | None = None
) -> RoundOutcome:
    """Run one complete round; the store records every transition."""
    workspace.root.mkdir(parents=True, exist_ok=True)
    store = Store(workspace.state_db)
    registry = open_registry(policy, workspace)
    champion = registry.champion()
    base_dir, base_name = resolve_base(policy)
    adapter = (
        registry.download_adapter(champion.version, workspace.root / "cache" / "adapters")
        if champion.version
        else None
    )
    round_id = store.create_round(
        policy.digest(), policy.model_dump_json(), parent_version=champion.version
    )
    ctx = RoundContext(
        round_id=round_id,
        policy=policy,
        workspace=workspace,
        store=store,
        base_dir=base_dir,
        champion=ModelRef(str(base_dir), str(adapter) if adapter else None, champion.version),
        progress=progress or (lambda label, done, total: None),
    )
    try:
        return _drive(ctx, registry, base_name)
    except BaseException as exc:
        store.update_round(round_id, state=RoundState.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise


def _drive(ctx: RoundContext, registry: Registry, base_name: str) -> RoundOutcome:
    store, round_id, policy = ctx.store, ctx.round_id, ctx.policy
    parent = ctx.champion.version

    def finish(state: str, decision: str, reason: str, version: str | None) -> RoundOutcome:
        store.update_round(
            round_id, state=state, decision=decision, reason=reason, model_version=version
        )
        return RoundOutcome(round_id, state, decision, reason, version, registry.champion().version)

    walls: dict[str, float] = {}

    def timed(step: str, fn, *args):  # noqa: ANN001, ANN202 - thin wrapper over step entry points
        started = time.perf_counter()
        result = fn(*args)
        walls[step] = round(time.perf_counter() - started, 2)
        return result

    summary = timed("generate", generate.run, ctx)
    store.update_round(
        round_id, state=RoundState.GENERATED, summary={"generate": summary, "wall_seconds": walls}
    )
    summary = timed("verify", verify.run, ctx)
    store.update_round(
        round_id, state=RoundState.VERIFIED, summary={"verify": summary, "wall_seconds": walls}
    )

    run_id = registry.start_round_run(round_id, json.loads(policy.model_dump_json()))
    registry.log_artifacts(run_id, ctx.step_dir(verify.STEP), "accepted_data")
    accepted = verify.load_accepted(ctx)
    if not accepted:
        reason = (
            f"No candidate passed the cascade ({summary['funnel']['candidates']} judged); "
            "training skipped."
        )
        registry.log_metrics(run_id, _metrics(store.get_round(round_id).summary))  # type: ignore[union-attr]
        registry.finish_run(run_id)
        return finish(RoundState.REJECTED, "rejected", reason, None)

    summary = timed("train", train.run, ctx, accepted)
    store.update_round(
        round_id, state=RoundState.TRAINED, summary={"train": summary, "wall_seconds": walls}
    )
    candidate_ref = ModelRef(str(ctx.base_dir), str(train.adapter_dir(ctx)), None)

    champ_eval, cand_eval, timings = timed("evaluate", evaluate.run, ctx, candidate_ref)
    eval_summary = {
        "task": policy.evaluation.task,
        "champion": {"pass_at_1": champ_eval.pass_at_1, "n": champ_eval.n},
        "candidate": {"pass_at_1": cand_eval.pass_at_1, "n": cand_eval.n},
        **timings,
    }
    store.update_round(
        round_id, state=RoundState.EVALUATED, summary={"eval": eval_summary, "wall_seconds": walls}
    )

    decision = gate.decide(champ_eval, cand_eval, policy.promotion)
    store.update_round(
        round_id,
        state=RoundState.DECIDED,
        decision="promote" if decision.promote else "reject",
        reason=decision.reason,
        summary={"gate": asdict(decision)},
    )
    registry.log_artifacts(run_id, train.adapter_dir(ctx), "adapter")
    registry.log_artifacts(run_id, ctx.step_dir(evaluate.STEP), "eval_items")
    registry.log_metrics(run_id, _metrics(store.get_round(round_id).summary))  # type: ignore[union-attr]
    version = registry.register(
        run_id,
        round_id,
        tags={
            "parent_version": parent or "base",
            "base_model": base_name,
            "policy_hash": policy.digest(),
            "decision": "promote" if decision.promote else "reject",
        },
    )
    registry.finish_run(run_id)
    if not decision.promote:
        return finish(RoundState.REJECTED, "rejected", decision.reason, version)
    if not registry.promote(version, expected=parent):
        reason = (
            f"Stale: the champion alias moved away from {parent or 'the base model'} while this "
            f"round ran; version {version} was registered but not promoted. {decision.reason}"
        )
        registry.tag_version(version, "decision", "stale")
        return finish(RoundState.REJECTED, "stale", reason, version)
    return finish(RoundState.PROMOTED, "promoted", decision.reason, version)
