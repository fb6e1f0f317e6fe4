"""Whole rounds through the CLI on tiny local models: real TRL, lm-eval, MLflow and SQLite."""

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoimprove.champion import Registry
from autoimprove.cli import app
from autoimprove.context import Workspace
from autoimprove.policy import load_policy
from autoimprove.rounds import Controller

runner = CliRunner()
POOL_ROWS = [
    {"id": f"s{i}", "prompt": f"Sam has {i + 3} pens and buys {i + 1} more. How many pens now?"}
    for i in range(6)
]


def write_policy(
    folder: Path, base: Path, per_round: int = 3, evaluation: str = "", promotion: str = ""
) -> Path:
    """The tiny-model policy; `evaluation` adds fields to its evaluation mapping (YAML flow
    text), `promotion` sets the promotion mapping."""
    pool = folder / "pool.jsonl"
    lines = [json.dumps(r) for r in POOL_ROWS] + ["{broken", json.dumps({"id": "x", "prompt": ""})]
    pool.write_text("\n".join(lines) + "\n")
    policy = folder / "policy.yaml"
    policy.write_text(
        f"""
model: {{base: {base}, dtype: float32}}
seeds: {{pool: pool.jsonl, per_round: {per_round}}}
generation: {{n: 2, max_new_tokens: 12, batch: 8, temperature: 0.05}}
cascade:
  max_new_tokens: 12
  temperature: 0.05
  stages:
    - {{type: correctness, mode: agreement, votes: 2}}
training: {{epochs: 1, batch_size: 2, lora: {{r: 4, alpha: 8}}, data: since_champion}}
evaluation: {{limit: 8, batch_size: 8, max_new_tokens: 12{", " + evaluation if evaluation else ""}}}
registry: {{model_name: tiny-test}}
{f"promotion: {{{promotion}}}" if promotion else ""}
"""
    )
    return policy


def invoke(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def two_rounds(answering_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("round")
    policy = write_policy(folder, answering_model_dir)
    ws = folder / "ws"
    # A `round` killed right after creating its round: the next `round` must finish that one, not
    # leave it pending (its drawn seeds with it) and start another.
    Controller(Workspace(ws)).start_round(load_policy(policy))
    first = invoke("round", "--policy", str(policy), "--workspace", str(ws))
    second = invoke("round", "--policy", str(policy), "--workspace", str(ws))
    return ws, first, second


def test_round_resumes_an_unfinished_round_before_starting_a_new_one(two_rounds):
    ws, first, second = two_rounds
    assert (first["id"], second["id"]) == (1, 2)
    states = sqlite3.connect(ws / "state.db").execute("select id, state from rounds").fetchall()
    assert [i for i, _ in states] == [1, 2]
    assert all(state in {"PROMOTED", "REJECTED"} for _, state in states), states
    resumed = sqlite3.connect(ws / "state.db").execute(
        "select message from events where kind = 'resume'"
    )
    assert [m for (m,) in resumed] == ["round 1 from PENDING"]


def test_round_trains_evaluates_and_registers(two_rounds):
    ws, first, _ = two_rounds
    assert first["seeds"] == 3
    assert first["pool"]["bad_rows"] == 2 and first["pool"]["loaded"] == 6
    funnel = first["funnel"]
    assert funnel["candidates"] == 6
    # The model always answers 5 and so do its re-solves: every seed gets its first candidate.
    assert funnel["accepted"] == 3 and funnel["seeds_with_accepted"] == 3
    assert first["judge_calls"] == 6  # 2 shared re-solves per seed, not per candidate
    assert first["train"]["train_rows"] == 3
    ev = first["eval"]
    assert ev["champion"]["n"] == ev["candidate"]["n"] == 8
    assert first["decision"] in {"rejected", "promoted"}
    assert first["model_version"] == "1"
    assert "on 8 items" in first["reason"]


def test_each_step_sealed_its_artifacts(two_rounds):
    ws, first, _ = two_rounds
    round_dir = ws / "rounds" / "00001"
    for step in ("generate", "verify", "train", "evaluate"):
        manifest = json.loads((round_dir / step / "MANIFEST.json").read_text())
        assert manifest["files"], step
    accepted = [
        json.loads(x) for x in (round_dir / "verify" / "accepted.jsonl").read_text().splitlines()
    ]
    assert {r["seed_id"] for r in accepted} <= {r["id"] for r in POOL_ROWS}
    assert all(r["round"] == 1 and r["stages_passed"] == ["correctness"] for r in accepted)
    trained = (round_dir / "train" / "rows.jsonl").read_text().splitlines()
    assert [json.loads(x)["completion"] for x in trained] == [r["completion"] for r in accepted]


def test_seeds_are_not_reused_and_everything_is_stored(two_rounds):
    ws, first, second = two_rounds
    db = sqlite3.connect(ws / "state.db")
    uses = db.execute("select seed_id, round_id from seed_use").fetchall()
    assert len(uses) == 6 and len({s for s, _ in uses}) == 6
    assert {r for _, r in uses} == {1, 2}
    votes = db.execute(
        "select count(*), sum(length(text) > 0) from votes where round_id = 1"
    ).fetchone()
    assert votes[0] >= 6 and votes[1] == votes[0], "every vote keeps its text"
    items = db.execute(
        "select model, count(*) from eval_items where round_id = 1 group by model"
    ).fetchall()
    assert dict(items) == {"candidate": 8, "champion": 8}
    assert second["model_version"] == "2"


def test_a_rejected_rounds_rows_are_carried_into_the_next_round(two_rounds):
    _, first, second = two_rounds
    train = second["train"]
    assert train["train_rows"] == train["round_rows"] + train["carried_rows"]
    if first["decision"] == "rejected":  # round 2 trains on the same champion: carry round 1's
        assert train["carried_from_rounds"] == [1]
        assert train["carried_rows"] == first["funnel"]["accepted"]  # other seeds: no duplicate
    else:  # a new champion starts afresh
        assert train["carried_rows"] == 0 and train["carried_from_rounds"] == []


def test_a_champion_is_evaluated_once(two_rounds):
    _, first, second = two_rounds
    assert first["eval"]["champion"]["cached"] is False
    assert second["eval"]["champion"]["cached"] is True
    # Promoted: round 2's champion is round 1's candidate, whose results were filed at promotion.
    source = "candidate" if first["decision"] == "promoted" else "champion"
    assert second["eval"]["champion"]["pass_at_1"] == first["eval"][source]["pass_at_1"]


def test_status_and_show_report_rounds_and_champion(two_rounds):
    ws, first, second = two_rounds
    status = invoke("status", "--workspace", str(ws))
    assert [r["id"] for r in status["rounds"]] == [2, 1]
    assert status["champion"]["name"] == "tiny-test"
    shown = invoke("show", "1", "--workspace", str(ws))
    for key in ("funnel", "judge_calls", "eval", "decision", "reason", "model_version"):
        assert key in shown
    assert shown["eval"]["candidate"]["pass_at_1"] == first["eval"]["candidate"]["pass_at_1"]


def test_mlflow_run_and_version_carry_the_round(two_rounds):
    ws, first, _ = two_rounds
    registry = Registry(f"sqlite:///{ws}/mlflow/mlflow.db", "tiny-test")
    mv = registry.client.get_model_version("tiny-test", "1")
    assert mv.tags["round"] == "1" and mv.tags["parent_version"] == "base"
    assert mv.tags["decision"] in {"promote", "reject"}
    assert len(mv.tags["policy_hash"]) == 16
    run = registry.client.get_run(mv.run_id)
    assert run.data.metrics["eval.candidate.n"] == 8
    assert run.data.metrics["verify.funnel.accepted"] == 3
    assert run.data.params["registry.model_name"] == "tiny-test"
    artifacts = {a.path for a in registry.client.list_artifacts(mv.run_id)}
    assert {"model", "accepted_data", "eval_items"} <= artifacts
    champion = status_champion(ws)
    # The alias moves only on promotion.
    assert champion == ("1" if first["decision"] == "promoted" else None)


def status_champion(ws):
    return invoke("status", "--workspace", str(ws))["champion"]["version"]


def test_round_with_nothing_accepted_skips_training(tiny_model_dir, tmp_path):
    # The random tiny model never states the same answer twice: nothing passes, nothing trains.
    policy = write_policy(tmp_path, tiny_model_dir, per_round=2)
    shown = invoke("round", "--policy", str(policy), "--workspace", str(tmp_path / "ws"))
    assert shown["state"] == "REJECTED"
    assert shown["funnel"]["accepted"] == 0
    assert "training skipped" in shown["reason"]
    assert shown["model_version"] is None
    assert not (tmp_path / "ws" / "rounds" / "00001" / "train").exists()


def test_policy_validate_cli(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seeds: {pool: p.jsonl, per_round: -1}\ncascade: {stages: []}\nbogus: 1\n")
    result = runner.invoke(app, ["policy", "validate", str(bad)])
    assert result.exit_code == 2
    for path in ("seeds.per_round", "cascade.stages", "registry", "bogus"):
        assert path in result.output
    good = Path(__file__).resolve().parents[2] / "policies" / "quickstart.yaml"
    ok = runner.invoke(app, ["policy", "validate", str(good)])
    assert ok.exit_code == 0 and "ok" in ok.output


def test_show_unknown_round_is_a_clean_error(two_rounds):
    ws, *_ = two_rounds
    result = runner.invoke(app, ["show", "99", "--workspace", str(ws)])
    assert result.exit_code == 2 and "no round 99" in result.output
    result = runner.invoke(app, ["status", "--workspace", str(ws / "nope")])
    assert result.exit_code == 2 and "not an autoimprove workspace" in result.output


def test_each_round_writes_a_report_that_renders_in_a_browser(two_rounds, tmp_path):
    from autoimprove.report import COLORS, PLOTS
    from tests.browser import pixels_near, screenshot

    ws, first, second = two_rounds
    report = ws / "rounds" / "00002" / "report"
    assert (report / "index.html").is_file()
    page = (report / "index.html").read_text()
    for plot in PLOTS:
        assert f'src="{plot}"' in page
    assert f"Round 2: {second['state']}" in page

    shot = screenshot(report / "index.html", tmp_path / "report.png")
    # Each plot's own colour is on screen: the funnel's bars, the candidate's pass@1 line over
    # rounds 1-2, the judge-cost bars. A page whose images fail to load shows none of them.
    names = ("funnel", "candidate", "judge_calls")
    seen = {name: pixels_near(shot, COLORS[name]) for name in names}
    assert all(count > 200 for count in seen.values()), seen

    broken = tmp_path / "broken"
    shutil.copytree(report, broken)
    for plot in PLOTS:
        (broken / plot).unlink()
    blank = screenshot(broken / "index.html", tmp_path / "broken.png")
    assert all(pixels_near(blank, COLORS[n]) == 0 for n in seen), "the check cannot tell"


def test_report_is_logged_to_the_round_run_and_rerendered_on_demand(two_rounds):
    ws, first, _ = two_rounds
    registry = Registry(f"sqlite:///{ws / 'mlflow' / 'mlflow.db'}", "tiny-test")
    run_id = registry.find_round_run(1)
    assert run_id is not None
    logged = {a.path for a in registry.client.list_artifacts(run_id, "report")}
    assert logged >= {"report/index.html", "report/funnel.png", "report/pass_at_1.png"}

    page = ws / "rounds" / "00001" / "report" / "index.html"
    page.unlink()
    out = invoke("report", "1", "--workspace", str(ws))
    assert out == {"round": 1, "html": str(page.resolve())}
    assert page.is_file()
    result = runner.invoke(app, ["report", "9", "--workspace", str(ws)])
    assert result.exit_code == 2 and "no round 9" in result.output


def test_audit_scores_the_cascade_against_labels(answering_model_dir, tmp_path):
    # The answering model says 5 to everything and its re-solves agree: the cascade accepts
    # every candidate, so precision is the share of problems whose label is 5, recall is 1.
    policy = write_policy(tmp_path, answering_model_dir)
    labeled = tmp_path / "labeled.jsonl"
    labels = ["5", "5", "7", "5"]
    labeled.write_text(
        "\n".join(
            json.dumps({"id": f"l{i}", "prompt": POOL_ROWS[i]["prompt"], "answer": a})
            for i, a in enumerate(labels)
        )
        + "\n{bad\n"
    )
    out = invoke(
        "audit",
        "--policy",
        str(policy),
        "--labeled",
        str(labeled),
        "--variant",
        "correctness:pool:1",
        "--variant",
        "correctness:agreement:1",
    )
    assert out["problems"] == 4 and out["bad_rows"] == 1 and out["candidates"] == 8
    assert out["correct_candidates"] == 6 and out["base_precision"] == 0.75
    whole = out["cascade"]
    assert whole["accepted"] == 8 and whole["precision"] == 0.75 and whole["recall"] == 1.0
    assert whole["judge_calls"] > 0 and whole["calls_per_accepted"] == whole["judge_calls"] / 8
    assert [s["stage"] for s in out["stages"]] == ["correctness"]
    pool, one = out["variants"]
    assert pool["variant"] == "correctness:pool:1:unanimous" and one["variant"].startswith(
        "correctness:agreement:1"
    )
    # Both judge the same candidates: same labels, same precision; pool spends no judge call.
    assert pool["cascade"]["accepted"] == 8 and pool["cascade"]["judge_calls"] == 0
    assert one["cascade"]["precision"] == 0.75 and one["cascade"]["judge_calls"] > 0
    assert one["cascade"]["judge_calls"] < whole["judge_calls"], "1 re-solve per seed, not 2"
    assert not (tmp_path / "ws").exists(), "an audit touches no workspace"
    missing = runner.invoke(app, ["audit", "--policy", str(policy), "--labeled", "nope.jsonl"])
    assert missing.exit_code == 2 and "no labeled file" in missing.output


def test_audit_of_an_adapter_judges_that_models_candidates(answering_model_dir, tmp_path):
    # A LoRA with large random A and B on the answering model: it no longer says 5, so the
    # audit of the adapter must count fewer right candidates than the base's 6 (3 problems x 2).
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(answering_model_dir)
    tuned_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    for name, weights in tuned_model.named_parameters():
        if "lora_" in name:  # (PEFT starts B at zero: a no-op adapter)
            torch.nn.init.normal_(weights, std=1.0)
    adapter = tmp_path / "adapter"
    tuned_model.save_pretrained(adapter)
    policy = write_policy(tmp_path, answering_model_dir)
    labeled = tmp_path / "labeled.jsonl"
    labeled.write_text(
        "".join(
            json.dumps({"id": f"l{i}", "prompt": POOL_ROWS[i]["prompt"], "answer": "5"}) + "\n"
            for i in range(3)
        )
    )
    args = ["audit", "--policy", str(policy), "--labeled", str(labeled)]
    plain = invoke(*args)
    tuned = invoke(*args, "--adapter", str(adapter))
    assert plain["model"]["adapter"] is None and plain["correct_candidates"] == 6
    assert tuned["model"]["adapter"] == str(adapter)
    assert tuned["candidates"] == 6 and tuned["correct_candidates"] < 6
    wrong = runner.invoke(app, [*args, "--adapter", str(tmp_path)])
    assert wrong.exit_code == 2 and "adapter_config.json" in wrong.output


def test_builtin_task_without_data_fails_before_any_compute(answering_model_dir, tmp_path):
    policy = write_policy(
        tmp_path, answering_model_dir, evaluation="task: gsm8k, guard_tasks: [no_such_task_xyz]"
    )
    checked = runner.invoke(app, ["policy", "validate", str(policy)])
    assert checked.exit_code == 2
    text = " ".join(checked.output.split())
    assert "evaluation.task: 'gsm8k' is built into lm-eval but its data cannot be loaded" in text
    assert "evaluation.guard_tasks[0]: unknown lm-eval task 'no_such_task_xyz'" in text
    ran = runner.invoke(
        app, ["round", "--policy", str(policy), "--workspace", str(tmp_path / "ws")]
    )
    assert ran.exit_code == 2 and "gsm8k" in ran.output
    assert not (tmp_path / "ws").exists(), "nothing was started"
