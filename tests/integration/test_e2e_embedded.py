"""One end-to-end round on the embedded Qwen2.5-Coder-0.5B model with a small policy, run by
the daemon as a real process that is killed (SIGKILL, from outside) halfway through generation
and restarted: the finished generation shard is kept, the round completes.

Then checks the figures the round stores against each other and against the raw per-item rows: the
funnel adds up, the judge budget matches the stored votes, pass@1 equals the mean of the stored
per-item correctness, and the decision is what the gate says about those items.
"""

import json
import sqlite3
from pathlib import Path

import pytest
from daemon_helpers import alive, kill, paused_pid, run, start, step_outcomes, wait_for
from typer.testing import CliRunner

from autoimprove.cli import app
from autoimprove.gate import decide
from autoimprove.policy import PromotionSection
from autoimprove.types import EvalResult

ROOT = Path(__file__).resolve().parents[2]

# The quickstart's cascade mode (pool agreement: no judge calls), at a size CI can afford: 4 seeds
# x 4 candidates in two shards of 2 seeds, so the kill lands between them. One agreeing peer is
# enough here (the quickstart asks 2): on these seeds that accepts a few rows, so training and
# evaluation run on the real model too.
POLICY = f"""
model: {{base: embedded}}
seeds: {{pool: {ROOT / "seeds" / "arith_pool.jsonl"}, per_round: 4}}
generation: {{n: 4, temperature: 0.8, max_new_tokens: 320, batch: 16, shard_seeds: 2}}
cascade:
  first_valid: false
  stages:
    - {{type: correctness, mode: pool, votes: 1}}
training: {{epochs: 1, batch_size: 4, grad_accum: 2, max_length: 384}}
evaluation: {{limit: 8, batch_size: 8, max_new_tokens: 320}}
registry: {{model_name: e2e}}
"""


@pytest.mark.slow
def test_round_on_embedded_model(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    ws, once = tmp_path / "ws", tmp_path / "fired"
    args = ("run", "--policy", str(policy), "--workspace", str(ws), "--rounds", "1")
    flag = once.parent / f"{once.name}.generate.after_shard"
    daemon = start(*args, fault="generate:after_shard:pause", once=once)
    child = wait_for(lambda: paused_pid(flag), timeout=1800, what="the first generation shard")
    kill(daemon)
    wait_for(lambda: not alive(child), timeout=30, what="the generation child to die")

    result = run(*args, timeout=3600)
    assert result.returncode == 0, result.stderr[-3000:]
    generated = json.loads((ws / "rounds/00001/generate/summary.json").read_text())
    assert generated["shards"] == 2 and generated["shards_reused"] == 1
    assert step_outcomes(ws)["generate"] == ["killed", "ok"]
    shown = json.loads(
        CliRunner().invoke(app, ["show", "1", "--workspace", str(ws), "--json"]).stdout
    )
    funnel = shown["funnel"]
    assert shown["seeds"] == 4 and funnel["candidates"] == 16
    assert funnel["candidates"] >= funnel["passed_correctness"] == funnel["accepted"]
    assert funnel["seeds_with_accepted"] <= min(4, funnel["accepted"])

    db = sqlite3.connect(ws / "state.db")
    # Pool agreement votes on every candidate (a second wave only where the first accepted) and
    # costs no judge call.
    first_wave, later, calls, tokens = db.execute(
        "select sum(wave = 0), sum(wave > 0), sum(calls), sum(tokens) from votes where round_id = 1"
    ).fetchone()
    assert first_wave == 16 and later <= 16
    assert shown["judge_calls"] == calls == 0 and shown["judge_tokens"] == tokens == 0
    texts = db.execute("select text from candidates where round_id = 1").fetchall()
    assert len(texts) == 16 and sum(len(t) > 20 for (t,) in texts) >= 14, (
        "the model wrote solutions"
    )

    if funnel["accepted"] == 0:
        assert shown["state"] == "REJECTED" and "training skipped" in shown["reason"]
        return
    assert shown["train"]["train_rows"] == funnel["accepted"]
    assert shown["train"]["loss_first"] > 0
    per_model = {}
    for model in ("champion", "candidate"):
        rows = db.execute(
            "select item_id, correct from eval_items "
            "where round_id = 1 and model = ? order by item_id",
            (model,),
        ).fetchall()
        assert len(rows) == 8
        ids, correct = zip(*rows, strict=True)
        pass_at_1 = sum(correct) / 8
        assert shown["eval"][model]["pass_at_1"] == pass_at_1 and shown["eval"][model]["n"] == 8
        per_model[model] = EvalResult("t", 8, pass_at_1, ids, tuple(bool(c) for c in correct))
    # A base 0.5B model solves some of these two-to-four-step problems, not none and not all.
    assert 0 < per_model["champion"].pass_at_1 < 1
    expected = decide(per_model["champion"], per_model["candidate"], PromotionSection())
    assert expected.reason in shown["reason"]
    assert shown["model_version"] == "1"
    assert shown["decision"] == ("promoted" if expected.promote else "rejected")
