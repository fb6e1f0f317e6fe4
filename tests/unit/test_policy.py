"""Policy validation: every shipped policy parses; bad files list every error with its path."""

from pathlib import Path

import pytest

from autoimprove.policy import PolicyError, load_policy, parse_policy

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "policies").glob("*.yaml"))


def test_there_are_shipped_policies():
    assert SHIPPED, "policies/ should ship at least one policy"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_policy_parses(path):
    policy = load_policy(path)
    # Relative paths resolve against the policy's own folder, not the cwd.
    assert Path(policy.seeds.pool).is_absolute()
    assert Path(policy.seeds.pool).exists(), f"{path.name}: seed pool {policy.seeds.pool} missing"


MINIMAL = """
seeds: {pool: pool.jsonl}
cascade: {stages: [{type: correctness, mode: agreement, votes: 2}]}
registry: {model_name: m}
"""


def test_minimal_policy_gets_defaults(tmp_path):
    policy = parse_policy(MINIMAL, folder=tmp_path)
    assert policy.seeds.pool == str(tmp_path / "pool.jsonl")
    assert policy.generation.n == 4
    assert policy.cascade.first_valid is True
    assert policy.digest() == parse_policy(MINIMAL, folder=tmp_path).digest()


def test_every_error_is_listed_with_its_field_path():
    text = """
seeds: {pool: x.jsonl, per_round: 0}
generation: {temperature: 0}
cascade:
  stages:
    - {type: cycle, mode: agreement}
    - {type: bogus}
training: {batch_size: 7, grad_accum: 2}
registry: {model_name: "bad name"}
surprise: 1
"""
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="p.yaml")
    errors = info.value.errors
    paths = [e.split(":")[0] for e in errors]
    assert paths == [
        "seeds.per_round",
        "generation.temperature",
        "cascade.stages[0]",
        "cascade.stages[1].type",
        "training",
        "registry.model_name",
        "surprise",
    ]
    assert "choose one of verdict, quantities, givens" in errors[2]
    assert "divisible" in errors[4]
    assert str(info.value).startswith("p.yaml: 7 error(s)")


def test_python_tags_are_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    text = f'!!python/object/apply:os.system ["touch {marker}"]'
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    assert "python/object/apply" in str(info.value)
    assert not marker.exists()


def test_duplicate_stage_types_are_an_error():
    text = MINIMAL.replace(
        "[{type: correctness, mode: agreement, votes: 2}]",
        "[{type: correctness}, {type: correctness, mode: agreement}]",
    )
    with pytest.raises(PolicyError, match="repeated: correctness"):
        parse_policy(text)


def test_missing_file_is_a_policy_error(tmp_path):
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "nope.yaml")


def test_non_mapping_is_a_policy_error():
    with pytest.raises(PolicyError, match="mapping"):
        parse_policy("- just\n- a list\n")


def test_schedule_errors_are_listed_with_their_paths():
    text = (
        "seeds: {pool: p.jsonl}\ncascade: {stages: [{type: correctness}]}\n"
        "registry: {model_name: m}\n"
        "schedule: {every: 5x, cron: 'not cron', max_attempts: 0, retry_backoff: -1}\n"
    )
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    joined = "\n".join(caught.value.errors)
    for path in (
        "schedule.every",
        "schedule.cron",
        "schedule.max_attempts",
        "schedule.retry_backoff",
    ):
        assert path in joined
    both = text.replace("every: 5x, cron: 'not cron'", "every: 1h, cron: '0 * * * *'")
    both = both.replace("max_attempts: 0, retry_backoff: -1", "max_attempts: 2")
    with pytest.raises(PolicyError, match="either every or cron"):
        parse_policy(both)


def test_pool_mode_needs_fewer_votes_than_candidates():
    from autoimprove.policy import Policy

    base = {
        "seeds": {"pool": "p.jsonl"},
        "generation": {"n": 4},
        "registry": {"model_name": "m"},
    }
    ok = {"stages": [{"type": "correctness", "mode": "pool", "votes": 3}]}
    assert Policy.model_validate({**base, "cascade": ok}).cascade.stages[0].mode == "pool"
    too_many = {"stages": [{"type": "correctness", "mode": "pool", "votes": 4}]}
    with pytest.raises(ValueError, match="pool mode needs votes"):
        Policy.model_validate({**base, "cascade": too_many})
    with pytest.raises(ValueError, match="mode"):
        Policy.model_validate(
            {**base, "cascade": {"stages": [{"type": "cycle", "mode": "pool", "votes": 1}]}}
        )


@pytest.mark.parametrize(
    "kind, mode, why, other",
    [
        ("factuality", "steps", "factuality in steps mode recomputes greedily", "correctness"),
        ("cycle", "givens", "cycle in givens mode is a deterministic check", "factuality"),
        ("cycle", "operands", "cycle in operands mode is a deterministic check", "factuality"),
    ],
)
def test_deterministic_modes_are_one_vote_of_their_own_stage(tmp_path, kind, mode, why, other):
    from autoimprove.policy import PolicyError, parse_policy

    text = f"""
seeds: {{pool: x.jsonl}}
cascade: {{stages: [{{type: {kind}, mode: {mode}, votes: 2}}]}}
registry: {{model_name: t}}
"""
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, folder=tmp_path)
    assert caught.value.errors == [
        f"cascade.stages[0]: Value error, {why}: a second vote would repeat the first; set votes: 1"
    ]
    assert parse_policy(text.replace("votes: 2", "votes: 1"), folder=tmp_path)
    with pytest.raises(PolicyError, match=f"cannot judge in mode '{mode}'"):
        parse_policy(text.replace(kind, other).replace("votes: 2", "votes: 1"), folder=tmp_path)


def test_early_stop_must_leave_items_after_the_first_look(tmp_path):
    from autoimprove.policy import PolicyError, parse_policy

    text = """
seeds: {pool: x.jsonl}
cascade: {stages: [{type: correctness, mode: pool, votes: 2}]}
evaluation: {limit: 48, early_stop: 48}
registry: {model_name: t}
"""
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, folder=tmp_path)
    assert any(e.startswith("evaluation") and "below limit" in e for e in caught.value.errors)
    assert parse_policy(text.replace("limit: 48", "limit: 96"), folder=tmp_path)
