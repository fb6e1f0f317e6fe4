"""The read-only API: auth matrix, read-only verbs, Prometheus text that parses."""

from __future__ import annotations

import os

import pytest
from daemon_helpers import run, write_policy
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from autoimprove.serve import ServeConfigError, check_exposure, create_app

TOKEN = "s3cret-token-0123456789"


@pytest.fixture(scope="module")
def workspace(tiny_model_dir, tmp_path_factory):
    # The random tiny model accepts nothing: one quick REJECTED round with a funnel to report.
    folder = tmp_path_factory.mktemp("serve")
    policy = write_policy(folder, tiny_model_dir)
    ws = folder / "ws"
    result = run("run", "--policy", str(policy), "--workspace", str(ws), "--rounds", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    return ws


def test_loopback_without_token_serves_everything(workspace):
    client = TestClient(create_app(workspace, None))
    assert client.get("/healthz").json() == {"ok": True}
    status = client.get("/status").json()
    assert status["champion"]["name"] == "durable" and status["rounds"][0]["state"] == "REJECTED"
    rounds = client.get("/rounds").json()
    assert [(r["id"], r["state"], r["candidates"]) for r in rounds] == [(1, "REJECTED", 4)]
    one = client.get("/rounds/1").json()
    assert one["funnel"]["candidates"] == 4 and [s["step"] for s in one["steps"]] == [
        "generate",
        "verify",
    ]
    assert client.get("/rounds/9").status_code == 404


def test_only_reads_are_allowed(workspace):
    client = TestClient(create_app(workspace, None))
    for path in ("/status", "/rounds", "/rounds/1", "/metrics"):
        for verb in ("post", "put", "delete", "patch"):
            assert getattr(client, verb)(path).status_code == 405, (verb, path)


def test_token_guards_everything_but_healthz(workspace):
    client = TestClient(create_app(workspace, TOKEN))
    assert client.get("/healthz").status_code == 200
    for path in ("/status", "/rounds", "/rounds/1", "/metrics"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": TOKEN}).status_code == 401
        ok = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200, path
        assert TOKEN not in ok.text


def test_non_loopback_needs_a_private_token_file(tmp_path):
    assert check_exposure("127.0.0.1", None) is None and check_exposure("::1", None) is None
    with pytest.raises(ServeConfigError, match="token-file"):
        check_exposure("0.0.0.0", None)
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    os.chmod(token, 0o644)
    with pytest.raises(ServeConfigError, match="chmod 600"):
        check_exposure("0.0.0.0", token)
    os.chmod(token, 0o600)
    assert check_exposure("0.0.0.0", token) == TOKEN
    cli = run("serve", "--workspace", str(tmp_path), "--host", "0.0.0.0")
    assert cli.returncode == 2 and "token-file" in cli.stderr


def test_metrics_are_prometheus_text_with_the_round_figures(workspace):
    text = TestClient(create_app(workspace, None)).get("/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("autoimprove_rounds", (("state", "REJECTED"),))] == 1
    assert samples[("autoimprove_rounds", (("state", "PROMOTED"),))] == 0
    assert samples[("autoimprove_accepted_samples_total", ())] == 0
    assert samples[("autoimprove_judge_calls_total", ())] > 0
    assert samples[("autoimprove_step_seconds", (("step", "generate"),))] > 0
    assert samples[("autoimprove_last_success_timestamp_seconds", ())] > 1.7e9
