"""Process-wide settings every entry point applies: offline hub, quiet libraries."""

from __future__ import annotations

import logging
import os


def offline_env() -> None:
    """No hub at run time: the embedded model and every shipped task are local."""
    for key, value in {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "TOKENIZERS_PARALLELISM": "false",
        "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    }.items():
        os.environ.setdefault(key, value)


def quiet_libraries() -> None:
    """Library progress bars and INFO lines would drown the round's own output."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    for name in ("lm_eval", "mlflow", "datasets", "peft", "trl", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)
