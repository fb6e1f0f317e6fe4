"""The eval cache: a promoted candidate's greedy results become its version's champion results."""

import json

from autoimprove.artifacts import atomic_dir, is_complete, write_jsonl
from autoimprove.context import Workspace
from autoimprove.evaluate import Spec, cache_key, plan, seed_cache_from_candidate
from autoimprove.policy import Policy
from autoimprove.types import ModelRef


def policy(guards: list[str]) -> Policy:
    return Policy.model_validate(
        {
            "seeds": {"pool": "p.jsonl"},
            "cascade": {"stages": [{"type": "correctness", "mode": "pool", "votes": 2}]},
            "evaluation": {"guard_tasks": guards, "baselines": {"maj_at_k": 3}},
            "registry": {"model_name": "m"},
        }
    )


def finished_shard(ws: Workspace, round_id: int, folder: str, seconds: float) -> None:
    with atomic_dir(ws.work_dir(round_id, "evaluate") / folder) as out:
        write_jsonl(out / "items.jsonl", [{"item": "1", "correct": True}])
        (out / "stats.json").write_text(json.dumps({"seconds": seconds, "cached": False}))


def test_candidate_results_are_filed_under_the_new_version_once(tmp_path):
    ws = Workspace(tmp_path)
    pol = policy(["autoimprove_arith_transfer"])
    candidate_specs = [s for s in plan(pol) if s.side == "candidate"]
    assert [s.folder for s in candidate_specs] == [
        "candidate",
        "guard--autoimprove_arith_transfer--candidate",
    ]
    for spec in candidate_specs:
        finished_shard(ws, 4, spec.folder, 12.5)

    assert seed_cache_from_candidate(ws, 4, pol, "7") == 2
    for spec in candidate_specs:
        as_champion = Spec(spec.name, spec.task, spec.kind, "champion")
        cache = ws.eval_cache / cache_key(pol, ModelRef("", None, "7"), as_champion)
        assert is_complete(cache)
        assert json.loads((cache / "stats.json").read_text())["seconds"] == 12.5
        # Not filed under the old champion, nor as the maj@k baseline (that needs sampling).
        assert cache_key(pol, ModelRef("", None, "6"), as_champion) != cache.name
    assert len(list(ws.eval_cache.iterdir())) == 2
    assert seed_cache_from_candidate(ws, 4, pol, "7") == 0  # idempotent (a resumed promote)


def test_an_unfinished_candidate_shard_files_nothing(tmp_path):
    ws = Workspace(tmp_path)
    pol = policy([])
    (ws.work_dir(4, "evaluate") / "candidate").mkdir(parents=True)  # no manifest: not sealed
    assert seed_cache_from_candidate(ws, 4, pol, "7") == 0
    assert not ws.eval_cache.exists() or not any(ws.eval_cache.iterdir())
