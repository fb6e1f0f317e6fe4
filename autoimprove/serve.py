"""`autoimprove serve`: a read-only HTTP API over a workspace, and Prometheus metrics.

    GET /healthz        liveness (never needs the token)
    GET /status         champion, daemon (pid, paused, policy error, recent events), rounds
    GET /rounds         one line per round: state, funnel, pass@1s, decision, version, duration
    GET /rounds/{id}    one round in detail, with every step attempt
    GET /metrics        Prometheus text: rounds by outcome, accepted samples, judge calls,
                        pass@1 of the last evaluated round, step durations, last success time

Only GET routes exist. It binds 127.0.0.1 unless told otherwise; any other address needs a
token file readable by its owner only (mode 0600), and then every endpoint but /healthz answers
401 without `Authorization: Bearer <token>` (compared in constant time). The token is never
logged.
"""

from __future__ import annotations

import hmac
import ipaddress
import stat
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import PlainTextResponse

from autoimprove.context import Workspace
from autoimprove.store import RoundState, Store


class ServeConfigError(ValueError):
    """A host/token combination that would expose the API unprotected."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ServeConfigError(
            f"token file {path} is readable by others (mode {mode:o}); chmod 600 it"
        )
    token = path.read_text().strip()
    if len(token) < 16:
        raise ServeConfigError(f"token file {path} holds fewer than 16 characters")
    return token


def check_exposure(host: str, token_file: Path | None) -> str | None:
    """The token to require, or None on loopback without one; refuse an unprotected bind."""
    if token_file is None:
        if not is_loopback(host):
            raise ServeConfigError(
                f"binding {host} exposes the API beyond this machine: give --token-file "
                "(a file with mode 0600 holding the bearer token)"
            )
        return None
    return read_token(token_file)


def metrics_text(store: Store) -> str:
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    rounds = store.list_rounds()
    by_state = Gauge("autoimprove_rounds", "Rounds by state", ["state"], registry=registry)
    for state in (*RoundState.ORDER, RoundState.FAILED, *sorted(RoundState.FINAL)):
        by_state.labels(state).set(sum(1 for r in rounds if r.state == state))
    accepted = Gauge(
        "autoimprove_accepted_samples_total", "Verified rows over all rounds", registry=registry
    )
    calls = Gauge("autoimprove_judge_calls_total", "Judge calls over all rounds", registry=registry)
    pass1 = Gauge(
        "autoimprove_pass_at_1",
        "Held-out pass@1 in the newest evaluated round",
        ["model"],
        registry=registry,
    )
    step_seconds = Gauge(
        "autoimprove_step_seconds",
        "Wall time of each step in the newest round that ran it",
        ["step"],
        registry=registry,
    )
    last_success = Gauge(
        "autoimprove_last_success_timestamp_seconds",
        "When the newest round that ended PROMOTED or REJECTED finished (Unix time)",
        registry=registry,
    )
    total_accepted = total_calls = 0
    seen_eval = False
    seen_steps: set[str] = set()
    for row in rounds:  # newest first
        summary = row.summary
        verify = summary.get("verify", {})
        total_accepted += int(verify.get("funnel", {}).get("accepted", 0) or 0)
        total_calls += int(verify.get("judge_calls", 0) or 0)
        ev = summary.get("eval", {})
        if not seen_eval and ev.get("candidate"):
            seen_eval = True
            for model in ("champion", "candidate", "maj_at_k", "uq_ttc"):
                if ev.get(model):
                    pass1.labels(model).set(ev[model]["pass_at_1"])
        for step, seconds in (summary.get("wall_seconds") or {}).items():
            if step not in seen_steps:
                seen_steps.add(step)
                step_seconds.labels(step).set(seconds)
    accepted.set(total_accepted)
    calls.set(total_calls)
    done = [r for r in rounds if r.state in (RoundState.PROMOTED, RoundState.REJECTED)]
    if done and done[0].finished_at is not None:
        finished = done[0].finished_at
        if finished.tzinfo is None:
            from datetime import UTC

            finished = finished.replace(tzinfo=UTC)
        last_success.set(finished.timestamp())
    return generate_latest(registry).decode()


def create_app(workspace: Path, token: str | None) -> FastAPI:
    from autoimprove.views import rounds_data, show_data, status_data

    ws = Workspace(workspace)
    if not ws.state_db.is_file():
        raise ServeConfigError(f"{workspace} is not an autoimprove workspace (no state.db)")
    store = Store(ws.state_db)
    status_data(workspace, store)  # opens the MLflow client once, before the first request

    def authorized(request: Request) -> None:
        if token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.encode()
        )
        if not ok:
            challenge = {"WWW-Authenticate": "Bearer"}
            raise HTTPException(401, "missing or wrong bearer token", challenge)

    app = FastAPI(title="autoimprove", docs_url=None, redoc_url=None, openapi_url=None)
    guarded = [Depends(authorized)]

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/status", dependencies=guarded)
    def status() -> dict[str, Any]:
        return status_data(workspace, store)

    @app.get("/rounds", dependencies=guarded)
    def rounds() -> list[dict[str, Any]]:
        return rounds_data(store)

    @app.get("/rounds/{round_id}", dependencies=guarded)
    def one_round(round_id: int) -> dict[str, Any]:
        detail = show_data(store, round_id)
        if detail is None:
            raise HTTPException(404, f"no round {round_id}")
        return detail

    @app.get("/metrics", dependencies=guarded, response_class=PlainTextResponse)
    def metrics() -> str:
        return metrics_text(store)

    return app
