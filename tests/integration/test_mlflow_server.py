"""A round against a real `mlflow server` backed by a real PostgreSQL (DESIGN §9, registry/).

`.ci/run` installs and starts Debian's PostgreSQL and sets `AUTOIMPROVE_TEST_POSTGRES` to an
admin URL (`postgresql://user:pass@127.0.0.1:5432/postgres`). Each run gets a fresh database
and a fresh server on a free loopback port, with proxied artifacts in a temp folder: the setup
`registry/compose.yaml` describes, minus Docker.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoimprove.cli import app
from tests.integration.test_round import write_policy
from tests.requires import missing

runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_db():
    admin = os.environ.get("AUTOIMPROVE_TEST_POSTGRES")
    if not admin:
        missing("PostgreSQL", "set AUTOIMPROVE_TEST_POSTGRES=postgresql://user:pass@host/postgres")
    import psycopg

    name = f"autoimprove_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield admin.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def mlflow_server(postgres_db, tmp_path_factory):
    artifacts = tmp_path_factory.mktemp("server-artifacts")
    port = _free_port()
    log = (artifacts.parent / "mlflow-server.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            postgres_db,
            "--artifacts-destination",
            str(artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],  # fmt: skip
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            log.close()
            raise AssertionError(Path(log.name).read_text()[-3000:])
        time.sleep(0.5)
    yield url, artifacts
    server.terminate()
    server.wait(timeout=30)
    log.close()


def invoke(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_round_registers_promotes_and_serves_through_a_postgres_backed_server(
    mlflow_server, postgres_db, answering_model_dir, tmp_path
):
    url, artifacts = mlflow_server
    policy = write_policy(tmp_path, answering_model_dir)
    policy.write_text(
        policy.read_text().replace(
            "registry: {model_name: tiny-test}",
            f"registry: {{model_name: tiny-test, tracking_uri: '{url}'}}",
        )
    )
    ws = tmp_path / "ws"
    first = invoke("round", "--policy", str(policy), "--workspace", str(ws))
    assert first["model_version"] == "1" and first["funnel"]["accepted"] == 3
    assert not (ws / "mlflow").exists()  # nothing went to the local SQLite store

    # The run, its version and the artifacts live in the server's stores.
    import psycopg

    with psycopg.connect(postgres_db) as conn:
        versions = conn.execute(
            "SELECT version, source FROM model_versions WHERE name = 'tiny-test'"
        ).fetchall()
        tags = dict(conn.execute("SELECT key, value FROM tags").fetchall())
    assert [v for v, _ in versions] == [1]
    assert versions[0][1].startswith("runs:/") and versions[0][1].endswith("/model")
    assert tags.get("autoimprove_round") == "1"
    shipped = {p.name for p in artifacts.rglob("*.safetensors")}
    assert shipped == {"adapter_model.safetensors"}
    assert list(artifacts.rglob("report/index.html"))

    # An operator promotes it (CAS over REST); a consumer loads the alias from the server.
    invoke("promote", "1", "--workspace", str(ws), "--reason", "server test")
    status = invoke("status", "--workspace", str(ws))
    assert status["champion"] == {"name": "tiny-test", "version": "1"}

    import mlflow

    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    try:
        model = mlflow.pyfunc.load_model("models:/tiny-test@champion")
        out = model.predict(["Sam has 3 pens and buys 1 more. How many pens now?"])
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    assert len(out) == 1 and isinstance(out[0], str)

    # The next round starts from the promoted champion held by the server.
    second = invoke("round", "--policy", str(policy), "--workspace", str(ws))
    assert second["parent_version"] == "1" and second["model_version"] == "2"
