"""Benchmark: a consumer's time from `models:/<name>@champion` to the first generated token.

Registers one version built on the embedded model (a LoRA adapter trained for one step on two
rows: what matters here is the loading path, not the adapter's quality) in a scratch MLflow
store, then, in a fresh process as a consumer would, times `mlflow.pyfunc.load_model(...)` and
a one-token `predict`. Writes bench/out/consumer-<timestamp>.json.

    python bench/consumer.py
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONSUMER = """
import json, sys, time
t0 = time.perf_counter()
import mlflow
uri = sys.argv[1]
mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)
t1 = time.perf_counter()
model = mlflow.pyfunc.load_model("models:/bench-consumer@champion")
t2 = time.perf_counter()
out = model.predict(["What is 2 + 3?"], params={"max_new_tokens": 1})
t3 = time.perf_counter()
print(json.dumps({"import_mlflow_s": t1 - t0, "load_model_s": t2 - t1,
                  "first_token_s": t3 - t2, "alias_to_first_token_s": t3 - t0,
                  "output": out}))
"""


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from autoimprove.champion import Registry
    from autoimprove.consumer import save_pyfunc
    from autoimprove.embedded import embedded_model_dir
    from autoimprove.policy import parse_policy
    from autoimprove.train import train_adapter
    from autoimprove.types import ModelRef

    scratch = Path(tempfile.mkdtemp(prefix="autoimprove-bench-consumer-"))
    base = embedded_model_dir()
    policy = parse_policy(
        "seeds: {pool: x}\ncascade: {stages: [{type: correctness}]}\n"
        "registry: {model_name: bench-consumer}\n"
        "training: {epochs: 1, batch_size: 2, max_length: 64}\n",
        folder=scratch,
    )
    rows = [
        {"prompt": "What is 2 + 3?", "completion": "2 + 3 = 5. The answer is 5."},
        {"prompt": "What is 4 + 4?", "completion": "4 + 4 = 8. The answer is 8."},
    ]
    adapter = scratch / "adapter"
    train_adapter(ModelRef(str(base)), rows, policy, adapter, scratch / "ck")
    uri = f"sqlite:///{scratch}/mlflow.db"
    registry = Registry(uri, "bench-consumer", artifact_root=scratch / "artifacts")
    run_id = registry.start_round_run(1, {})
    registry.log_artifacts(
        run_id, save_pyfunc(adapter, scratch / "model", "embedded", "auto", None), "model"
    )
    version = registry.register(run_id, 1, {"base_model": "embedded"})
    assert registry.promote(version, expected=None)

    runs = []
    for _ in range(2):  # the second run has the OS file cache warm
        proc = subprocess.run(
            [sys.executable, "-c", CONSUMER, uri], capture_output=True, text=True, check=True
        )
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    result = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/consumer.py",
        "runs": [
            {k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()} for r in runs
        ],
    }
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"consumer-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
