"""autoimprove: an always-on service that improves an LLM from unlabeled seed prompts.

It implements Self-Verified Distillation: each round the current champion writes several
candidate solutions per seed prompt, judges them through a three-stage self-verification cascade,
is fine-tuned (LoRA) on the survivors, and the result is promoted in an MLflow registry only if it
beats the champion on held-out pass@1. See DESIGN.md for how the parts fit.
"""

__version__ = "0.2.0"


def load_champion(name: str, tracking_uri: str, version: str = "champion", dtype: str = "auto"):  # noqa: ANN201
    """(model, tokenizer) of a registered version (default: the champion), adapter merged."""
    from autoimprove.consumer import load_champion as _load

    return _load(name, tracking_uri, version, dtype)
