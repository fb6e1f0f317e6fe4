"""Kill the daemon at every step x point and check that restarting it finishes the round as if
nothing happened: completed steps never re-run, one model version per round, the alias right,
no duplicated rows, and the artifacts equal those of an uninterrupted run.

Real processes throughout: the daemon is `python -m autoimprove run`, killed with SIGKILL by the
fault hook (autoimprove.faults); its steps are child processes on a tiny local model.
"""

from __future__ import annotations

import json
import signal

import pytest
import torch
from daemon_helpers import (
    alive,
    kill,
    paused_pid,
    registry,
    release,
    rows,
    run,
    start,
    step_outcomes,
    versions,
    wait_for,
    write_policy,
)
from safetensors.torch import load_file

HEAVY = ("generate", "verify", "train", "evaluate")
CHAIN = [(step, point) for step in HEAVY for point in ("before", "after_effect", "after_commit")]
CHAIN += [("decide", "before"), ("decide", "after_commit")]
CHAIN += [(step, p) for step in ("register", "promote") for p in ("before", "after_effect")]
CHAIN += [("promote", "after_commit")]  # last: the round is final when this kill lands
SIGKILLED = -signal.SIGKILL


@pytest.fixture(scope="module")
def reference(answering_model_dir, tmp_path_factory):
    """The same round, never interrupted."""
    folder = tmp_path_factory.mktemp("reference")
    policy = write_policy(folder, answering_model_dir)
    result = run("run", "--policy", str(policy), "--workspace", str(folder / "ws"), "--rounds", "1")
    assert result.returncode == 0, result.stderr
    return folder / "ws"


@pytest.fixture(scope="module")
def chain(answering_model_dir, tmp_path_factory):
    """One round killed at every point in CHAIN in turn, restarted after each kill."""
    folder = tmp_path_factory.mktemp("chain")
    policy = write_policy(folder, answering_model_dir)
    ws = folder / "ws"
    states = []
    for step, point in CHAIN:
        result = run(
            "run",
            "--policy",
            str(policy),
            "--workspace",
            str(ws),
            "--rounds",
            "1",
            fault=f"{step}:{point}",
        )
        assert result.returncode == SIGKILLED, (step, point, result.stderr[-2000:])
        states.append((step, point, rows(ws, "select state from rounds")))
    return ws, states


def test_every_kill_point_was_reached_and_the_round_finished(chain):
    ws, states = chain
    assert len(states) == len(CHAIN)
    for _step, _point, round_states in states:
        assert len(round_states) == 1, "a restart never starts a second round"
    assert rows(ws, "select state, decision, model_version from rounds") == [
        ("PROMOTED", "promoted", "1")
    ]


def test_completed_steps_never_ran_twice(chain):
    ws, _ = chain
    outcomes = step_outcomes(ws)
    for step in HEAVY:
        # One child finished the step; after the `after_effect` kill the sealed output was
        # committed without running it again.
        assert outcomes[step].count("ok") == 1, (step, outcomes[step])
        assert outcomes[step].count("reused") == 1, (step, outcomes[step])
        assert "failed" not in outcomes[step]


def test_one_version_and_the_alias_moved_once(chain):
    ws, _ = chain
    assert versions(ws) == ["1"]
    reg = registry(ws)
    assert reg.champion().version == "1"
    mv = reg.client.get_model_version("durable", "1")
    assert mv.tags["round"] == "1" and mv.tags["parent_version"] == "base"
    runs = reg.client.search_runs([reg._experiment_id()])
    assert len(runs) == 1, "one MLflow run per round, found again after each restart"


def test_no_row_was_written_twice(chain, reference):
    ws, _ = chain
    for table in ("seed_use", "candidates", "votes", "eval_items"):
        assert rows(ws, f"select count(*) from {table}") == rows(
            reference, f"select count(*) from {table}"
        ), table
    assert rows(ws, "select count(*) from seed_use") == [(2,)]
    assert rows(ws, "select count(*) from candidates") == [(4,)]


def test_artifacts_equal_an_uninterrupted_run(chain, reference):
    ws, _ = chain
    for rel in (
        "generate/candidates.jsonl",
        "verify/accepted.jsonl",
        "verify/votes.jsonl",
        "evaluate/champion.jsonl",
        "evaluate/candidate.jsonl",
    ):
        a = (ws / "rounds" / "00001" / rel).read_text()
        b = (reference / "rounds" / "00001" / rel).read_text()
        assert a == b, rel
    weights = "rounds/00001/train/adapter/adapter_model.safetensors"
    a, b = load_file(str(ws / weights)), load_file(str(reference / weights))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    ref = rows(reference, "select state, decision, model_version from rounds")
    assert ref == [("PROMOTED", "promoted", "1")]


def test_a_crashed_child_is_retried_and_keeps_its_finished_shards(tiny_model_dir, tmp_path):
    # The random tiny model accepts nothing, so the round ends after verification.
    policy = write_policy(tmp_path, tiny_model_dir)
    once = tmp_path / "fired"
    ws = tmp_path / "ws"
    result = run(
        "run",
        "--policy",
        str(policy),
        "--workspace",
        str(ws),
        "--rounds",
        "1",
        "--json",
        fault="generate:after_shard,verify:after_shard",
        once=once,
    )
    assert result.returncode == 0, result.stderr
    assert rows(ws, "select state, attempts from rounds") == [("REJECTED", 2)]
    outcomes = step_outcomes(ws)
    assert outcomes == {"generate": ["failed", "ok"], "verify": ["failed", "ok"]}
    for step in ("generate", "verify"):
        summary = json.loads((ws / "rounds/00001" / step / "summary.json").read_text())
        assert summary["shards"] == 2 and summary["shards_reused"] == 1, step
        log = ws / "rounds/00001/logs" / f"{step}-1.log"
        assert log.is_file()
    error = rows(ws, "select error from step_runs where outcome = 'failed'")[0][0]
    assert "killed by signal 9" in error and "out-of-memory" in error, (
        "SIGKILL names the likely cause"
    )
    shown = json.loads(run("show", "1", "--workspace", str(ws), "--json").stdout)
    assert [(s["step"], s["attempt"], s["outcome"]) for s in shown["steps"]] == [
        ("generate", 1, "failed"),
        ("generate", 2, "ok"),
        ("verify", 1, "failed"),
        ("verify", 2, "ok"),
    ]
    assert shown["attempts"] == 2 and shown["error"] is None


@pytest.mark.parametrize(
    ("command", "exit_code"),
    [(("run", "--rounds", "1"), 0), (("round",), 1)],
    ids=["daemon", "round"],
)
def test_a_step_failing_every_attempt_abandons_the_round(
    tiny_model_dir, tmp_path, command, exit_code
):
    """The daemon logs it and goes on (exit 0); a one-off `round` reports it and exits 1."""
    policy = write_policy(tmp_path, tiny_model_dir, schedule="{retry_backoff: 0, max_attempts: 2}")
    ws = tmp_path / "ws"
    result = run(
        *command,
        "--policy",
        str(policy),
        "--workspace",
        str(ws),
        fault="generate:after_shard",  # no ONCE file: every attempt dies
    )
    assert result.returncode == exit_code, result.stderr
    state, attempts, error = rows(ws, "select state, attempts, error from rounds")[0]
    assert (state, attempts) == ("ABANDONED", 2)
    assert "generate attempt 2 failed" in error and "killed by signal 9" in error
    assert step_outcomes(ws) == {"generate": ["failed", "failed"]}
    [(event,)] = rows(ws, "select message from events where kind = 'abandoned'")
    assert event.startswith("round 1: generate attempt 2 failed")
    if command[0] == "round":
        assert "round 1 abandoned: generate attempt 2 failed" in result.stderr


def test_sigkill_from_outside_during_training_resumes_from_the_checkpoint(
    answering_model_dir, tmp_path
):
    policy = write_policy(tmp_path, answering_model_dir)
    ws, once = tmp_path / "ws", tmp_path / "fired"
    flag = once.parent / f"{once.name}.train.after_checkpoint"
    daemon = start(
        "run",
        "--policy",
        str(policy),
        "--workspace",
        str(ws),
        "--rounds",
        "1",
        fault="train:after_checkpoint:pause",
        once=once,
    )
    child = wait_for(lambda: paused_pid(flag), what="training to seal its first checkpoint")
    assert (ws / "rounds/00001/work/train/checkpoints/checkpoint-1/MANIFEST.json").is_file()
    kill(daemon)
    wait_for(lambda: not alive(child), timeout=30, what="the orphaned trainer to die")

    result = run("run", "--policy", str(policy), "--workspace", str(ws), "--rounds", "1")
    assert result.returncode == 0, result.stderr
    train = json.loads((ws / "rounds/00001/train/summary.json").read_text())
    assert train["resumed_from_step"] == 1 and train["train_steps"] == 2
    assert step_outcomes(ws)["train"] == ["killed", "ok"]
    assert rows(ws, "select state from rounds") == [("PROMOTED",)]
    assert not (ws / "rounds/00001/work/train/checkpoints").exists()


def test_sigterm_mid_generation_stops_cleanly_and_resumes(tiny_model_dir, tmp_path):
    policy = write_policy(tmp_path, tiny_model_dir)
    ws, once = tmp_path / "ws", tmp_path / "fired"
    flag = once.parent / f"{once.name}.generate.after_shard"
    daemon = start(
        "run",
        "--policy",
        str(policy),
        "--workspace",
        str(ws),
        "--rounds",
        "1",
        fault="generate:after_shard:pause",
        once=once,
    )
    wait_for(lambda: paused_pid(flag), what="the first generation shard")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=120) == 0, daemon.stderr.read() if daemon.stderr else ""
    assert rows(ws, "select state, error from rounds") == [("PENDING", None)]
    assert step_outcomes(ws) == {"generate": ["stopped"]}
    assert (ws / "rounds/00001/work/generate/0000/MANIFEST.json").is_file()
    assert not (ws / "rounds/00001/generate").exists()

    result = run("run", "--policy", str(policy), "--workspace", str(ws), "--rounds", "1")
    assert result.returncode == 0, result.stderr
    summary = json.loads((ws / "rounds/00001/generate/summary.json").read_text())
    assert summary["shards_reused"] == 1
    assert rows(ws, "select state from rounds") == [("REJECTED",)]


def test_one_daemon_per_workspace_and_a_stale_lock_does_not_block(tiny_model_dir, tmp_path):
    policy = write_policy(tmp_path, tiny_model_dir, schedule="{every: 1d}")
    ws, once = tmp_path / "ws", tmp_path / "fired"
    flag = once.parent / f"{once.name}.generate.before"
    first = start(
        "run",
        "--policy",
        str(policy),
        "--workspace",
        str(ws),
        fault="generate:before:pause",
        once=once,
    )
    holder = wait_for(lambda: paused_pid(flag), what="the first daemon to start a round")
    second = run("run", "--policy", str(policy), "--workspace", str(ws), "--rounds", "1")
    assert second.returncode == 2
    assert f"pid {holder}" in second.stderr and "in use" in second.stderr
    status = run("status", "--workspace", str(ws), "--json")
    assert json.loads(status.stdout)["daemon"]["pid"] == str(holder)

    kill(first)  # its lock file stays behind, with its pid in it
    assert (ws / "daemon.lock").read_text().strip() == str(holder)
    third = run("run", "--policy", str(policy), "--workspace", str(ws), "--rounds", "1")
    assert third.returncode == 0, third.stderr
    assert rows(ws, "select id, state from rounds") == [(1, "REJECTED")]
    release(flag)
