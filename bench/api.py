"""Benchmark: `/status` latency under 50 concurrent local requests (`autoimprove serve`).

Starts `autoimprove serve` on a workspace (default: a fresh one-round workspace must already
exist; pass --workspace), fires 50 concurrent clients x 10 requests each at /status over HTTP,
and reports p50/p99 in ms. Writes bench/out/api-<timestamp>.json.

    python bench/api.py --workspace WS
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--port", type=int, default=8799)
    args = parser.parse_args()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autoimprove",
            "serve",
            "--workspace",
            args.workspace,
            "--port",
            str(args.port),
        ],
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)

        def client(_: int) -> list[float]:
            out = []
            with httpx.Client() as http:
                for _ in range(10):
                    started = time.perf_counter()
                    assert http.get(f"{base}/status").status_code == 200
                    out.append((time.perf_counter() - started) * 1000)
            return out

        started = time.perf_counter()
        with ThreadPoolExecutor(50) as pool:
            latencies = sorted(x for batch in pool.map(client, range(50)) for x in batch)
        wall = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait()
    result = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/api.py --workspace WS",
        "requests": len(latencies),
        "concurrency": 50,
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1),
        "throughput_rps": round(len(latencies) / wall, 1),
    }
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"api-{datetime.now(UTC):%Y%m%dT%H%M%S}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
