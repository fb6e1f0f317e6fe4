"""Which rows a round trains on: its own, plus (since_champion) rejected rounds' on its champion,
plus (lineage) the rows that made the champion; and what `training.mode` trains from."""

from pathlib import Path

import pytest

from autoimprove.artifacts import atomic_dir, write_jsonl
from autoimprove.context import RoundContext, Workspace
from autoimprove.policy import Policy
from autoimprove.store import RoundState, Store
from autoimprove.train import training_start
from autoimprove.trainset import capped, training_set
from autoimprove.types import ModelRef

POOL = {"type": "correctness", "mode": "pool", "votes": 2}
GIVENS = {"type": "cycle", "mode": "givens", "votes": 1}
OPERANDS = {"type": "cycle", "mode": "operands", "votes": 1}


def policy(data: str, mode: str = "continue", stages: tuple = (POOL,)) -> Policy:
    return Policy.model_validate(
        {
            "seeds": {"pool": "p.jsonl"},
            "cascade": {"stages": list(stages)},
            "training": {"data": data, "mode": mode},
            "registry": {"model_name": "m"},
        }
    )


def row(prompt: str, completion: str) -> dict:
    return {"prompt": prompt, "completion": completion, "seed_id": prompt}


@pytest.fixture
def history(tmp_path):
    """Rounds 1-5 of a workspace; round 6 is the one training, on champion version '2'.

    1: rejected on the base model        (other champion: not carried)
    2: promoted, made version 2          (not rejected: not carried; its rows made the champion)
    3: rejected on version 2             (carried)
    4: abandoned on version 2            (not rejected: not carried)
    5: rejected on version 2, but its verify folder is unsealed (not carried)
    """
    ws = Workspace(tmp_path / "ws")
    ws.root.mkdir(parents=True)
    store = Store(ws.state_db)
    plan = [
        (None, RoundState.REJECTED, [row("a", "1")]),
        (None, RoundState.PROMOTED, [row("b", "2")]),
        ("2", RoundState.REJECTED, [row("c", "3"), row("d", "4"), row("x", "same")]),
        ("2", RoundState.ABANDONED, [row("e", "5")]),
        ("2", RoundState.REJECTED, [row("f", "6")]),
    ]
    for parent, state, rows in plan:
        rid = store.create_round("h", "{}", parent)
        store.commit_step(rid, state, model_version=str(rid))
        if rid == 5:
            folder = ws.step_dir(rid, "verify")
            folder.mkdir(parents=True)
            write_jsonl(folder / "accepted.jsonl", rows)  # no manifest: never sealed
            continue
        with atomic_dir(ws.step_dir(rid, "verify")) as out:
            write_jsonl(out / "accepted.jsonl", rows)
    current = store.create_round("h", "{}", "2")
    return ws, store, current


def ctx(history, data: str) -> RoundContext:
    ws, store, current = history
    return RoundContext(
        round_id=current,
        policy=policy(data),
        workspace=ws,
        store=store,
        base_dir=Path("unused"),
        champion=ModelRef("unused", "unused-adapter", "2"),
    )


def test_round_mode_trains_on_this_rounds_rows_only(history):
    own = [row("g", "7"), row("x", "same")]
    rows, origin = training_set(ctx(history, "round"), own)
    assert rows == own
    assert origin == {
        "round_rows": 2,
        "carried_rows": 0,
        "carried_from_rounds": [],
        "carried_dropped": 0,
    }


def test_since_champion_adds_rejected_rounds_on_the_same_champion_once(history):
    own = [row("g", "7"), row("x", "same")]
    rows, origin = training_set(ctx(history, "since_champion"), own)
    # Round 3's rows, minus the one this round also accepted; own rows first.
    assert [(r["prompt"], r["completion"]) for r in rows] == [
        ("g", "7"),
        ("x", "same"),
        ("c", "3"),
        ("d", "4"),
    ]
    assert origin == {
        "round_rows": 2,
        "carried_rows": 2,
        "carried_from_rounds": [3],
        "carried_dropped": 0,
    }


def test_a_new_champion_starts_afresh(history):
    ws, store, _ = history
    later = store.create_round("h", "{}", "7")  # a champion no earlier round started from
    context = ctx((ws, store, later), "since_champion")
    context.champion = ModelRef("unused", "unused-adapter", "7")
    rows, origin = training_set(context, [row("g", "7")])
    assert len(rows) == 1 and origin["carried_from_rounds"] == []


@pytest.mark.parametrize("data", ["since_champion", "lineage"])
def test_the_base_model_as_champion_carries_rounds_on_the_base(history, data):
    ws, store, _ = history
    later = store.create_round("h", "{}", None)
    context = ctx((ws, store, later), data)
    context.champion = ModelRef("unused", None, None)
    rows, origin = training_set(context, [])
    assert [r["prompt"] for r in rows] == ["a"] and origin["carried_from_rounds"] == [1]
    if data == "lineage":  # the base model was trained on nothing: nothing inherited
        assert (origin["champion_rows"], origin["champion_rounds"]) == (0, [])


def test_lineage_adds_the_rows_the_champion_was_trained_on(history):
    ws, store, _ = history
    # Round 2 has no train/rows.jsonl (a round from before the file): its accepted rows count.
    rows, origin = training_set(ctx(history, "lineage"), [row("g", "7")])
    assert [r["prompt"] for r in rows] == ["g", "c", "d", "x", "b"]
    assert origin == {
        "round_rows": 1,
        "carried_rows": 3,
        "carried_from_rounds": [3],
        "carried_dropped": 0,
        "champion_rows": 1,
        "champion_rounds": [2],
    }
    # Where the round that made the champion wrote the rows it trained on (its own lineage
    # included), those are inherited instead, each (prompt, completion) once.
    trained = [row("b", "2"), row("old", "0"), row("g", "7")]
    with atomic_dir(ws.step_dir(2, "train")) as out:
        write_jsonl(out / "rows.jsonl", trained)
    rows, origin = training_set(ctx(history, "lineage"), [row("g", "7")])
    assert [r["prompt"] for r in rows] == ["g", "c", "d", "x", "b", "old"]
    assert origin["champion_rows"] == 2


@pytest.mark.parametrize(
    ("cap", "prompts", "left_out"),
    [
        (None, ["g", "c", "d", "x", "b"], None),
        (5, ["g", "c", "d", "x", "b"], 0),
        # Own row, then the champion's, then carried rows from the newest end.
        (3, ["g", "x", "b"], 2),
        (2, ["g", "b"], 3),
        (1, ["g"], 4),
    ],
)
def test_max_rows_keeps_the_rounds_own_then_the_champions_then_the_newest_carried(
    history, cap, prompts, left_out
):
    context = ctx(history, "lineage")
    context.policy = context.policy.model_copy(
        update={"training": context.policy.training.model_copy(update={"max_rows": cap})}
    )
    rows, origin = training_set(context, [row("g", "7")])
    assert [r["prompt"] for r in rows] == prompts
    assert origin.get("rows_left_out") == left_out
    assert origin["carried_from_rounds"] == ([3] if "x" in prompts else [])
    assert origin["round_rows"] == 1  # this round's rows found, whether or not all trained
    assert origin["champion_rows"] == ("b" in prompts)
    assert origin["carried_rows"] == len(prompts) - 1 - ("b" in prompts)


def test_capped_prefers_newer_carried_rows_and_keeps_the_order():
    tagged = [
        ("round", {"n": "r1"}),
        ("carried", {"n": "c-old"}),
        ("carried", {"n": "c-mid"}),
        ("carried", {"n": "c-new"}),
        ("champion", {"n": "h1"}),
        ("round", {"n": "r2"}),
    ]
    kept, left_out = capped(tagged, 4)
    assert [r["n"] for _, r in kept] == ["r1", "c-new", "h1", "r2"]
    assert left_out == 2
    assert capped(tagged, None) == (tagged, 0)
    assert capped(tagged, 6) == (tagged, 0)
    kept, left_out = capped(tagged, 1)
    assert ([r["n"] for _, r in kept], left_out) == (["r1"], 5)


@pytest.mark.parametrize(("mode", "adapter"), [("continue", "unused-adapter"), ("fresh", None)])
def test_mode_picks_what_training_starts_from(history, mode, adapter):
    context = ctx(history, "lineage")
    context.policy = policy("lineage", mode)
    start = training_start(context)
    assert (start.base_dir, start.adapter_dir) == ("unused", adapter)


def test_lineage_walks_back_through_the_champions_parents(history):
    ws, store, _ = history
    # A later round trained version 2's adapter further (continue) and made version 6: its
    # adapter carries round 2's training too, so both rounds' rows are behind version 6.
    later = store.create_round("h", "{}", "2")
    store.commit_step(later, RoundState.PROMOTED, model_version="6")
    with atomic_dir(ws.step_dir(later, "train")) as out:
        write_jsonl(out / "rows.jsonl", [row("h", "8"), row("b", "2")])
    current = store.create_round("h", "{}", "6")
    context = ctx((ws, store, current), "lineage")
    context.champion = ModelRef("unused", "unused-adapter", "6")
    rows, origin = training_set(context, [])
    assert [r["prompt"] for r in rows] == ["h", "b"]
    assert origin["champion_rounds"] == [later, 2] and origin["carried_from_rounds"] == []


def test_a_call_free_cycle_check_drops_carried_rows_that_fail_it_and_keeps_the_champions(
    tmp_path,
):
    """Rows carried from a looser cascade are checked again by the call-free cycle check
    (`givens`, or the stricter `operands`)."""
    ws = Workspace(tmp_path / "ws")
    ws.root.mkdir(parents=True)
    store = Store(ws.state_db)
    maker = store.create_round("h", "{}", None)
    store.commit_step(maker, RoundState.PROMOTED, model_version="1")
    dropped_by_champion = row("Has 5, gets 3, spends 2?", "5 - 2 = 3. The answer is 3.")
    with atomic_dir(ws.step_dir(maker, "verify")) as out:
        write_jsonl(out / "accepted.jsonl", [dropped_by_champion])
    loose = store.create_round("h", "{}", "1")
    store.commit_step(loose, RoundState.REJECTED, model_version="2")
    uses_all = row("Buys 4 at 7 each?", "4 x 7 = 28. The answer is 28.")
    drops_one = row("Has 50, earns 98, spends 140?", "140 - 98 = 42. The answer is 42.")
    restates_one = row(
        "Has 12, eats 3, gives 3?", "Eats 3 and gives 3: 12 - 3 = 9. The answer is 9."
    )
    with atomic_dir(ws.step_dir(loose, "verify")) as out:
        write_jsonl(out / "accepted.jsonl", [uses_all, drops_one, restates_one])
    current = store.create_round("h", "{}", "1")
    for stages, kept in (
        ((POOL,), [uses_all, drops_one, restates_one]),
        ((GIVENS, POOL), [uses_all, restates_one]),
        ((OPERANDS, POOL), [uses_all]),
    ):
        context = RoundContext(
            round_id=current,
            policy=policy("lineage", "fresh", stages),
            workspace=ws,
            store=store,
            base_dir=Path("unused"),
            champion=ModelRef("unused", "unused-adapter", "1"),
        )
        rows, origin = training_set(context, [])
        assert (origin["carried_rows"], origin["carried_dropped"]) == (len(kept), 3 - len(kept))
        assert dropped_by_champion in rows, "the champion's own rows are kept as they are"
        assert [r for r in rows if r in (uses_all, drops_one, restates_one)] == kept
