"""Step `evaluate`: held-out pass@1 of candidate, champion and baselines through lm-eval.

Every evaluation runs the same lm-eval task on the same items; only the answering differs: the
candidate and the champion answer once, greedily; `maj_at_k` (the champion, k sampled answers,
majority final answer) and `uq_ttc` (the champion, n candidates judged by the cascade,
`ttc.py`) spend more calls per question. Guard tasks score champion and candidate once more
each. Champion-side results are cached in `ws/cache/evals/<key>` (`cache_key`: version, task
definition, settings), so a champion is evaluated once, not every round.

The held-out set is an lm-eval task (shipped ones live in `autoimprove/tasks/`, read offline
from JSONL). Each model is loaded with its adapter merged into the weights (an unmerged PEFT
adapter made evaluation 1.9x slower here) and handed to lm-eval's `hf` model class as an
in-memory model, with the backend's decode loop under its `generate` (`autoimprove-hf`,
`backends/lm_eval_hf.py`: a row that has ended leaves its batch; same greedy texts). Per-item
correctness is kept for the gate's paired test (finding and hashing tasks: `heldout.py`). Each
model's results are sealed as they finish (`work/evaluate/<model>/`), so a resumed step
evaluates only what is missing. Under `evaluation.early_stop` the candidate is scored in two
looks (each sealed, `early_stop.py`): a candidate not ahead of the champion on the first is not
scored further, and the summary says `stopped_early`. Output: `evaluate/champion.jsonl`,
`evaluate/candidate.jsonl` (per item), `evaluate/summary.json`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoimprove import stopping
from autoimprove.artifacts import atomic_dir, is_complete, read_jsonl, write_jsonl
from autoimprove.context import RoundContext, Workspace
from autoimprove.faults import fault_point
from autoimprove.heldout import task_hash, task_manager
from autoimprove.policy import EvaluationSection, Policy
from autoimprove.types import EvalResult, ModelRef

STEP = "evaluate"
METRIC = "exact_match"


def _samples(
    lm: Any,
    evaluation: EvaluationSection,
    task: str,
    system_prompt: str | None,
    gen_kwargs: dict,
    overrides: dict | None = None,
    items: range | None = None,
) -> list[dict]:
    """lm-eval's logged samples of `task` (optionally with config overrides), by doc id: the
    first `evaluation.limit` docs, or the docs `items` names."""
    from lm_eval import simple_evaluate

    spec: str | dict = task
    if overrides:
        # A one-task group whose member overrides the registered task's config: lm-eval merges
        # the overrides into the task's own YAML (same docs, prompt and metric).
        spec = {
            "group": f"{task}__{'_'.join(sorted(overrides))}",
            "task": [{"task": task, **overrides}],
        }
    results = simple_evaluate(
        model=lm,
        tasks=[spec],
        task_manager=task_manager(evaluation, task),
        limit=evaluation.limit if items is None else None,
        samples=None if items is None else {task: list(items)},
        log_samples=True,
        apply_chat_template=True,
        system_instruction=system_prompt,
        gen_kwargs=gen_kwargs,
        bootstrap_iters=0,
    )
    assert results is not None, "lm-eval returned no results"
    return sorted(results["samples"][task], key=lambda s: s["doc_id"])


def _result(task: str, samples: list[dict], calls: list[int], tokens: list[int]) -> EvalResult:
    n = len(samples)
    correct = tuple(bool(s[METRIC]) for s in samples)
    return EvalResult(
        task=task,
        n=n,
        pass_at_1=sum(correct) / n if n else 0.0,
        item_ids=tuple(str(s["doc"].get("id", s["doc_id"])) for s in samples),
        correct=correct,
        responses=tuple(str(s["filtered_resps"][0]) for s in samples),
        calls=tuple(calls),
        tokens=tuple(tokens),
    )


def _flat(resps: Any) -> list[str]:
    if isinstance(resps, str):
        return [resps]
    return [text for inner in resps for text in _flat(inner)]


def _hf_samples(
    ref: ModelRef,
    loaded: tuple | None,
    dtype: str,
    evaluation: EvaluationSection,
    task: str,
    system_prompt: str | None,
    gen: dict,
    overrides: dict | None = None,
    items: range | None = None,
) -> tuple[list[dict], Any]:
    """lm-eval's samples for the model through its `hf` class (in memory, finished rows pruned
    from generation: `backends/lm_eval_hf.py`), and the tokenizer."""
    from autoimprove.backends.hf import load_model
    from autoimprove.backends.lm_eval_hf import PrunedHFLM

    model, tokenizer = loaded or load_model(ref, dtype)
    lm = PrunedHFLM(model, tokenizer, batch_size=evaluation.batch_size)
    return _samples(lm, evaluation, task, system_prompt, gen, overrides, items), tokenizer


def evaluate_model(
    ref: ModelRef,
    evaluation: EvaluationSection,
    dtype: str,
    system_prompt: str | None,
    task: str | None = None,
    loaded: tuple | None = None,
    items: range | None = None,
) -> EvalResult:
    """Greedy pass@1 of one model (one call per question) on a task, per item (the first
    `evaluation.limit` items, or the ones `items` names)."""
    task = task or evaluation.task
    gen = {"max_gen_toks": evaluation.max_new_tokens, "do_sample": False}
    samples, tokenizer = _hf_samples(
        ref, loaded, dtype, evaluation, task, system_prompt, gen, items=items
    )
    tokens = [len(tokenizer(str(s["resps"][0][0]))["input_ids"]) for s in samples]
    return _result(task, samples, [1] * len(samples), tokens)


def evaluate_maj_at_k(
    ref: ModelRef, policy: Policy, loaded: tuple | None = None, task: str | None = None
) -> EvalResult:
    """maj@k through lm-eval: the task repeated k times (sampled), majority final answer."""
    import autoimprove.ttc  # noqa: F401 - registers the autoimprove_final_answer filter

    evaluation, k = policy.evaluation, policy.evaluation.baselines.maj_at_k
    assert k is not None
    task = task or evaluation.task
    chain = [
        {"function": "autoimprove_final_answer"},
        {"function": "majority_vote"},
        {"function": "take_first"},
    ]
    overrides = {"repeats": k, "filter_list": [{"name": "maj", "filter": chain}]}
    gen = {
        "max_gen_toks": evaluation.max_new_tokens,
        "do_sample": True,
        "temperature": policy.generation.temperature,
        "top_p": policy.generation.top_p,
    }
    samples, tokenizer = _hf_samples(
        ref,
        loaded,
        policy.model.dtype,
        evaluation,
        task,
        policy.model.system_prompt,
        gen,
        overrides,
    )
    tokens = [sum(len(tokenizer(t)["input_ids"]) for t in _flat(s["resps"])) for s in samples]
    return _result(task, samples, [k] * len(samples), tokens)


def evaluate_uq_ttc(
    ref: ModelRef, policy: Policy, loaded: tuple | None = None, task: str | None = None
) -> EvalResult:
    """UQ-TTC through lm-eval: the registered `autoimprove-uqttc` model answers the task."""
    from autoimprove.backends.hf import HFBackend
    from autoimprove.ttc import UQTTCLM

    evaluation, n = policy.evaluation, policy.evaluation.baselines.uq_ttc
    assert n is not None
    task = task or evaluation.task
    backend = HFBackend(ref, policy.model.dtype, policy.generation.batch, loaded=loaded)
    lm = UQTTCLM(backend, policy, n, evaluation.baselines.fallback)
    samples = _samples(lm, evaluation, task, policy.model.system_prompt, {})
    costs = lm.costs
    return _result(
        task,
        samples,
        [costs[s["doc_id"]].calls for s in samples],
        [costs[s["doc_id"]].tokens for s in samples],
    )


def rows_of(result: EvalResult) -> list[dict]:
    calls = result.calls or (1,) * result.n
    tokens = result.tokens or (0,) * result.n
    return [
        {"item_id": i, "correct": c, "response": r, "calls": k, "tokens": t}
        for i, c, r, k, t in zip(
            result.item_ids, result.correct, result.responses, calls, tokens, strict=True
        )
    ]


def eval_result(task: str, rows: list[dict]) -> EvalResult:
    """An EvalResult from stored per-item rows (`item_id`, `correct`, `response`, costs)."""
    n = len(rows)
    correct = tuple(bool(r["correct"]) for r in rows)
    return EvalResult(
        task=task,
        n=n,
        pass_at_1=sum(correct) / n if n else 0.0,
        item_ids=tuple(str(r["item_id"]) for r in rows),
        correct=correct,
        responses=tuple(str(r["response"]) for r in rows),
        calls=tuple(int(r.get("calls", 1)) for r in rows),
        tokens=tuple(int(r.get("tokens", 0)) for r in rows),
    )


def describe(result: EvalResult) -> dict:
    """The numbers a round shows for one evaluation: pass@1 with its 95% interval and costs."""
    from autoimprove.gate import wilson_interval

    low, high = wilson_interval(sum(result.correct), result.n)
    n = result.n or 1
    return {
        "pass_at_1": result.pass_at_1,
        "n": result.n,
        "ci95": [round(low, 4), round(high, 4)],
        "calls_per_question": round(sum(result.calls or (1,) * result.n) / n, 2),
        "tokens_per_question": round(sum(result.tokens) / n, 1) if result.tokens else None,
    }


@dataclass(frozen=True)
class Spec:
    """One evaluation of a round: `kind` of answering by the `side` model on `task`."""

    name: str
    task: str
    kind: str  # "greedy" | "maj_at_k" | "uq_ttc"
    side: str  # "champion" | "candidate"

    @property
    def folder(self) -> str:
        return self.name.replace("/", "--")


def plan(policy: Policy) -> list[Spec]:
    """Every evaluation the round runs: champion side first (cacheable), then the candidate."""
    evaluation = policy.evaluation
    task = evaluation.task
    specs = [Spec("champion", task, "greedy", "champion")]
    if evaluation.baselines.maj_at_k:
        specs.append(Spec("maj_at_k", task, "maj_at_k", "champion"))
    if evaluation.baselines.uq_ttc:
        specs.append(Spec("uq_ttc", task, "uq_ttc", "champion"))
    specs += [Spec(f"guard/{g}/champion", g, "greedy", "champion") for g in evaluation.guard_tasks]
    specs.append(Spec("candidate", task, "greedy", "candidate"))
    specs += [
        Spec(f"guard/{g}/candidate", g, "greedy", "candidate") for g in evaluation.guard_tasks
    ]
    return specs


def cache_key(policy: Policy, champion: ModelRef, spec: Spec) -> str:
    """What a champion-side result depends on: the model version, the task's definition and
    every setting that changes the answers. Equal keys = the same evaluation."""
    from autoimprove.basemodel import base_name

    evaluation = policy.evaluation
    payload: dict[str, Any] = {
        "registry": policy.registry.model_dump(mode="json"),
        "base": base_name(policy),
        "version": champion.version,
        "dtype": policy.model.dtype,
        "system_prompt": policy.model.system_prompt,
        "task": spec.task,
        "task_hash": task_hash(evaluation, spec.task),
        "kind": spec.kind,
        "limit": evaluation.limit,
        "batch_size": evaluation.batch_size,
        "max_new_tokens": evaluation.max_new_tokens,
    }
    if spec.kind == "maj_at_k":
        payload["k"] = evaluation.baselines.maj_at_k
        payload["sampling"] = [policy.generation.temperature, policy.generation.top_p]
    if spec.kind == "uq_ttc":
        payload["n"] = evaluation.baselines.uq_ttc
        payload["fallback"] = evaluation.baselines.fallback
        payload["generation"] = policy.generation.model_dump(mode="json")
        payload["cascade"] = policy.cascade.model_dump(mode="json")
    canonical = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _evaluate(spec: Spec, ref: ModelRef, policy: Policy, loaded: tuple) -> EvalResult:
    if spec.kind == "maj_at_k":
        return evaluate_maj_at_k(ref, policy, loaded, spec.task)
    if spec.kind == "uq_ttc":
        return evaluate_uq_ttc(ref, policy, loaded, spec.task)
    return evaluate_model(
        ref, policy.evaluation, policy.model.dtype, policy.model.system_prompt, spec.task, loaded
    )


def _copy_sealed(source: Path, dest: Path, extra: dict | None = None) -> None:
    with atomic_dir(dest) as out:
        shutil.copy2(source / "items.jsonl", out / "items.jsonl")
        stats = json.loads((source / "stats.json").read_text())
        (out / "stats.json").write_text(json.dumps({**stats, **(extra or {})}))


def seed_cache_from_candidate(
    workspace: Workspace, round_id: int, policy: Policy, version: str
) -> int:
    """A promoted candidate is the next round's champion, and its greedy results (held-out task
    and guards) are that champion's: same weights, items and settings. File them in the eval
    cache under its new version so the next round does not evaluate it again. Idempotent;
    returns how many results were filed."""
    champion = ModelRef("", None, version)
    filed = 0
    for spec in plan(policy):
        if spec.side != "candidate":
            continue
        source = workspace.work_dir(round_id, STEP) / spec.folder
        as_champion = Spec(spec.name, spec.task, spec.kind, "champion")
        cache = workspace.eval_cache / cache_key(policy, champion, as_champion)
        if is_complete(source) and not is_complete(cache):
            _copy_sealed(source, cache, {"from_round": round_id})
            filed += 1
    return filed


def seal(folder: Path, rows: list[dict], stats: dict) -> None:
    with atomic_dir(folder) as out:
        write_jsonl(out / "items.jsonl", rows)
        (out / "stats.json").write_text(json.dumps(stats))


def read_stats(folder: Path) -> dict:
    return json.loads((folder / "stats.json").read_text())


def baselines_of(results: dict[str, EvalResult]) -> dict[str, EvalResult]:
    """The test-time-compute baselines among a round's results, by name, for the gate."""
    return {k: results[k] for k in ("maj_at_k", "uq_ttc") if k in results}


def _main_test_rejects(ctx: RoundContext, specs: list[Spec]) -> str | None:
    """The gate's reason to reject on the main task and baselines alone (None: it would promote
    unless a guard task blocks). Reads the sealed shards of `specs`."""
    from autoimprove import gate

    results = {
        s.name: eval_result(s.task, read_jsonl(ctx.shard_dir(STEP, s.folder) / "items.jsonl"))
        for s in specs
    }
    decision = gate.decide(
        results["champion"], results["candidate"], ctx.policy.promotion, baselines_of(results)
    )
    return None if decision.promote else decision.reason


def run(ctx: RoundContext) -> dict:
    """Run every planned evaluation (each sealed as a shard, so a resume skips finished ones);
    champion-side results come from the workspace's eval cache when the champion, task and
    settings are unchanged since an earlier round. Under `evaluation.early_stop` the
    candidate is scored in two looks, and a stop at the first skips its guard tasks. Under
    `evaluation.guard_scoring: on_promotion` the guard tasks are scored last, and only when
    the gate would promote on the main task."""
    from autoimprove.backends.hf import load_model
    from autoimprove.early_stop import candidate_in_two_looks, stopped_early
    from autoimprove.train import adapter_dir

    policy = ctx.policy
    refs = {
        "champion": ctx.champion,
        "candidate": ModelRef(str(ctx.base_dir), str(adapter_dir(ctx)), None),
    }
    specs = plan(policy)
    deferred = policy.evaluation.guard_scoring == "on_promotion"
    guard_specs = [s for s in specs if s.name.startswith("guard/")]
    main_specs = [s for s in specs if s not in guard_specs]
    loaded: dict[str, tuple] = {}

    def model_for(side: str) -> tuple:
        if side not in loaded:
            loaded.clear()  # one model in memory at a time
            loaded[side] = load_model(refs[side], policy.model.dtype)
        return loaded[side]

    def score(spec: Spec) -> None:
        folder = ctx.shard_dir(STEP, spec.folder)
        if is_complete(folder) or (spec.side == "candidate" and stopped_early(ctx)):
            return
        cache = None
        if spec.side == "champion":
            cache = ctx.workspace.eval_cache / cache_key(policy, ctx.champion, spec)
            if is_complete(cache):
                _copy_sealed(cache, folder, {"cached": True})
                return
        if spec.name == "candidate" and policy.evaluation.early_stop is not None:
            candidate_in_two_looks(
                ctx, spec, refs["candidate"], lambda: model_for("candidate"), folder
            )
            return
        stopping.check()
        started = time.perf_counter()
        result = _evaluate(spec, refs[spec.side], policy, model_for(spec.side))
        seal(folder, rows_of(result), {"seconds": time.perf_counter() - started, "cached": False})
        if cache is not None:
            _copy_sealed(folder, cache)
        fault_point(STEP, "after_shard")

    skipped_guards = None
    for spec in main_specs if deferred else specs:
        score(spec)
    if deferred and guard_specs:
        skipped_guards = (
            "stopped early" if stopped_early(ctx) else _main_test_rejects(ctx, main_specs)
        )
        for spec in guard_specs if skipped_guards is None else []:
            score(spec)
    summary: dict = {"task": policy.evaluation.task, "results": {}, "guards": {}}
    stop = stopped_early(ctx)
    if stop:
        summary["stopped_early"] = stop
        specs = [s for s in specs if s.side == "champion" or s.name == "candidate"]
    if skipped_guards is not None:
        summary["guards_not_scored"] = skipped_guards
        specs = main_specs
    saved = 0.0
    with atomic_dir(ctx.step_dir(STEP)) as out:
        for spec in specs:
            folder = ctx.shard_dir(STEP, spec.folder)
            rows = read_jsonl(folder / "items.jsonl")
            write_jsonl(out / f"{spec.folder}.jsonl", rows)
            stats = read_stats(folder)
            shown = {
                **describe(eval_result(spec.task, rows)),
                "seconds": round(stats["seconds"], 2),
                "cached": bool(stats.get("cached")),
            }
            summary["results"][spec.name] = spec.task
            saved += stats["seconds"] if shown["cached"] else 0.0
            if spec.name.startswith("guard/"):
                summary["guards"].setdefault(spec.task, {})[spec.side] = shown
            else:
                summary[spec.name] = shown
        summary["eval_seconds_saved_by_cache"] = round(saved, 2)
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def load_results(folder: Path, summary: dict) -> dict[str, EvalResult]:
    """Every evaluation a sealed `evaluate/` folder holds, by name (`champion`, `uq_ttc`, ...)."""
    results = summary.get("results") or {n: summary["task"] for n in ("champion", "candidate")}
    return {
        name: eval_result(task, read_jsonl(folder / f"{name.replace('/', '--')}.jsonl"))
        for name, task in results.items()
    }
