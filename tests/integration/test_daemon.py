"""The daemon on a schedule and under policy edits, as real processes on the tiny model."""

from __future__ import annotations

import json
import signal
import sqlite3
import time

from daemon_helpers import paused_pid, release, rows, run, start, wait_for, write_policy


def _rounds(ws):
    # Polled while the daemon starts: the database file appears a moment before its tables.
    if not (ws / "state.db").exists():
        return []
    try:
        return rows(ws, "select id, state, slot, started_at, finished_at, policy_hash from rounds")
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return []
        raise


def _events(ws, kind):
    return [m for (m,) in rows(ws, "select message from events where kind = ?", kind)]


def test_schedule_never_overlaps_rounds_and_catches_up_once_after_downtime(
    tiny_model_dir, tmp_path
):
    # Rounds take far longer than the 2 s interval on purpose.
    policy = write_policy(tmp_path, tiny_model_dir, schedule="{every: 2s, retry_backoff: 0}")
    ws = tmp_path / "ws"
    args = ("run", "--policy", str(policy), "--workspace", str(ws))
    daemon = start(*args)
    wait_for(lambda: len(_rounds(ws)) >= 2, timeout=300, what="a second scheduled round")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=120) == 0
    (r1, r2) = _rounds(ws)
    assert r1[1] == "REJECTED" and r2[1] not in ("PROMOTED", "REJECTED", "ABANDONED")
    assert r1[4] <= r2[3], "round 2 started only after round 1 finished"
    assert _events(ws, "trigger_skipped"), "triggers that fired during round 1 were skipped"
    assert r1[2] < r2[2], "each round belongs to its own trigger slot"

    time.sleep(5)  # the daemon is down across at least two trigger times
    daemon = start(*args)
    wait_for(lambda: len(_rounds(ws)) >= 3, timeout=300, what="the catch-up round")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=120) == 0
    r1, r2, r3 = _rounds(ws)
    assert r2[1] == "REJECTED", "the interrupted round was resumed and finished first"
    assert r2[4] <= r3[3] and r3[2] > r2[2]
    assert len(_events(ws, "catch_up")) == 2  # the fresh start, then once after the downtime
    assert len(_events(ws, "resume")) == 1


def test_policy_edits_between_rounds(tiny_model_dir, tmp_path):
    policy = write_policy(tmp_path, tiny_model_dir)
    good_text = policy.read_text()
    ws, once = tmp_path / "ws", tmp_path / "fired"
    flag = once.parent / f"{once.name}.verify.before"
    daemon = start(
        "run",
        "--policy",
        str(policy),
        "--workspace",
        str(ws),
        "--rounds",
        "3",
        "--json",
        fault="verify:before:pause",
        once=once,
    )
    wait_for(lambda: paused_pid(flag), what="round 1 to reach verification")
    # A broken edit while round 1 runs: round 1 keeps its own policy, round 2 the last good one.
    policy.write_text(good_text.replace("per_round: 2", "per_round: -1") + "bogus: 1\n")
    release(flag)
    wait_for(lambda: len(_rounds(ws)) >= 2, what="round 2")
    status = json.loads(run("status", "--workspace", str(ws), "--json").stdout)
    error = status["daemon"]["policy_error"]
    assert error and "seeds.per_round" in error["message"] and "bogus" in error["message"]

    # A valid edit applies from the next round on.
    policy.write_text(good_text.replace("per_round: 2", "per_round: 1"))
    out, err = daemon.communicate(timeout=300)
    assert daemon.returncode == 0, err[-2000:]
    r1, r2, r3 = _rounds(ws)
    assert r1[5] == r2[5] != r3[5]
    assert all(r[1] == "REJECTED" for r in (r1, r2, r3))
    seeds = dict(rows(ws, "select round_id, count(*) from seed_use group by round_id"))
    assert seeds == {1: 2, 2: 2, 3: 1}
    assert len(_events(ws, "policy_rejected")) == 1 and len(_events(ws, "policy_reloaded")) == 1
    status = json.loads(run("status", "--workspace", str(ws), "--json").stdout)
    assert status["daemon"]["policy_error"] is None and status["daemon"]["pid"] is None
    assert out.count('"state"') == 3, "one summary per finished round"


def test_an_invalid_policy_at_start_exits_2_listing_every_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seeds: {pool: p.jsonl}\ncascade: {stages: []}\nschedule: {every: 5x}\n")
    result = run("run", "--policy", str(bad), "--workspace", str(tmp_path / "ws"))
    assert result.returncode == 2
    for path in ("cascade.stages", "registry", "schedule.every"):
        assert path in result.stderr
    assert not (tmp_path / "ws" / "state.db").exists()


def test_pause_holds_the_daemon_between_steps_until_resume(tiny_model_dir, tmp_path):
    policy = write_policy(tmp_path, tiny_model_dir)
    ws, once = tmp_path / "ws", tmp_path / "fired"
    flag = once.parent / f"{once.name}.generate.before"
    daemon = start(
        "run",
        "--policy",
        str(policy),
        "--workspace",
        str(ws),
        "--rounds",
        "1",
        fault="generate:before:pause",
        once=once,
    )
    wait_for(lambda: paused_pid(flag), what="round 1 to start generating")
    assert run("pause", "--workspace", str(ws), "--reason", "maintenance").returncode == 0
    release(flag)  # generation, already under way, finishes; verification waits
    wait_for(lambda: _events(ws, "paused"), what="the daemon to hold")
    assert "before verify of round 1" in _events(ws, "paused")[0]
    time.sleep(1)
    assert rows(ws, "select step, outcome from step_runs") == [("generate", "ok")]
    status = json.loads(run("status", "--workspace", str(ws), "--json").stdout)
    assert status["daemon"]["paused"] is True and status["daemon"]["pid"]
    assert run("resume", "--workspace", str(ws)).returncode == 0
    assert daemon.wait(timeout=300) == 0
    assert rows(ws, "select state from rounds") == [("REJECTED",)]
    kinds = [k for (k,) in rows(ws, "select kind from events order by id")]
    assert kinds.index("manual_pause") < kinds.index("paused") < kinds.index("manual_resume")
    assert run("resume", "--workspace", str(ws)).returncode == 2  # not paused any more
