"""lm-eval on the shipped held-out task (offline, real lm-eval) and the MLflow registry."""

import json
from importlib import resources

from autoimprove.champion import CHALLENGER, Registry
from autoimprove.decontam import word_ngrams
from autoimprove.evaluate import evaluate_model
from autoimprove.heldout import heldout_ngrams
from autoimprove.policy import EvaluationSection
from autoimprove.types import ModelRef

TASK_JSONL = resources.files("autoimprove").joinpath("tasks/arith_heldout/arith_heldout.jsonl")


def _items():
    return [json.loads(line) for line in TASK_JSONL.read_text().splitlines() if line.strip()]


def test_lm_eval_scores_per_item_on_the_local_task(answering_model_dir):
    # The answering model says "The answer is 5." to everything, so pass@1 must equal the share
    # of items whose answer is 5: a check that scoring and item order are right, not just "runs".
    evaluation = EvaluationSection(limit=12, batch_size=12, max_new_tokens=12)
    result = evaluate_model(ModelRef(str(answering_model_dir)), evaluation, "float32", None)
    items = _items()[:12]
    assert result.n == 12
    assert result.item_ids == tuple(sorted(r["id"] for r in items))
    expected = {r["id"]: r["answer"] == "5" for r in items}
    assert result.correct == tuple(expected[i] for i in result.item_ids)
    assert all("answer is 5" in r for r in result.responses)
    assert result.pass_at_1 == sum(expected.values()) / 12


def test_a_window_of_items_is_scored_like_those_items_of_the_whole(answering_model_dir):
    # evaluation.early_stop scores the candidate as items 0..3, then 4..7: the two looks must
    # be exactly the whole evaluation's items, in order.
    evaluation = EvaluationSection(limit=8, batch_size=8, max_new_tokens=12)
    ref = ModelRef(str(answering_model_dir))
    whole = evaluate_model(ref, evaluation, "float32", None)
    looks = [
        evaluate_model(ref, evaluation, "float32", None, items=items)
        for items in (range(0, 4), range(4, 8))
    ]
    assert [r.n for r in looks] == [4, 4]
    assert looks[0].item_ids + looks[1].item_ids == whole.item_ids
    assert looks[0].correct + looks[1].correct == whole.correct
    assert looks[0].responses + looks[1].responses == whole.responses


def test_the_transfer_task_is_a_separate_local_task(answering_model_dir):
    evaluation = EvaluationSection(limit=8, batch_size=8, max_new_tokens=12)
    result = evaluate_model(
        ModelRef(str(answering_model_dir)),
        evaluation,
        "float32",
        None,
        "autoimprove_arith_transfer",
    )
    path = resources.files("autoimprove").joinpath("tasks/arith_heldout/arith_transfer.jsonl")
    items = [json.loads(line) for line in path.read_text().splitlines()][:8]
    assert result.task == "autoimprove_arith_transfer" and result.n == 8
    assert result.item_ids == tuple(sorted(r["id"] for r in items))
    expected = {r["id"]: r["answer"] == "5" for r in items}
    assert result.correct == tuple(expected[i] for i in result.item_ids)


def test_heldout_ngrams_come_from_the_task_file():
    grams = heldout_ngrams(EvaluationSection(), 8)
    assert word_ngrams(_items()[0]["question"], 8) <= grams
    assert word_ngrams(_items()[-1]["question"], 8) <= grams
    assert heldout_ngrams(EvaluationSection(task="not_a_local_task"), 8) == set()


def test_registry_versions_aliases_and_compare_and_set(tmp_path):
    registry = Registry(f"sqlite:///{tmp_path}/mlflow.db", "m", artifact_root=tmp_path / "art")
    assert registry.champion().version is None
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"not really weights")

    run = registry.start_round_run(1, {"a": {"b": 1}})
    assert registry.start_round_run(1, {"a": {"b": 1}}) == run, "one run per round"
    registry.log_artifacts(run, adapter, "model/artifacts/adapter")
    registry.log_metrics(run, {"pass_at_1": 0.5})
    v1 = registry.register(run, 1, {"decision": "promote", "base_model": "tiny"})
    assert registry.register(run, 1, {"decision": "promote"}) == v1, "registration is idempotent"
    mv = registry.client.get_model_version("m", v1)
    assert mv.tags["round"] == "1" and mv.tags["base_model"] == "tiny"
    assert str(registry.client.get_model_version_by_alias("m", CHALLENGER).version) == v1
    assert registry.champion().version is None, "registering does not promote"

    assert registry.promote(v1, expected=None)
    assert registry.champion().version == v1
    run2 = registry.start_round_run(2, {})
    registry.log_artifacts(run2, adapter, "model/artifacts/adapter")
    v2 = registry.register(run2, 2, {})
    # Someone else's view of the champion is stale: the alias does not move.
    assert not registry.promote(v2, expected=None)
    assert registry.champion().version == v1
    # A promotion that already happened (a crash before it was recorded) is recognised.
    assert registry.promote(v1, expected=None)
    downloaded = registry.download_model(v1, tmp_path / "cache")
    weights = downloaded / "artifacts" / "adapter" / "adapter_model.safetensors"
    assert weights.read_bytes() == b"not really weights"
