"""Benchmark: a LoRA adapter merged into the weights against the same adapter left unmerged.

Every round after a promotion generates, judges and is evaluated with the champion's adapter.
The backend merges it into the base weights once at load (`backends/hf.py`); a PEFT model left
unmerged adds two small matmuls to every adapted layer at every decode step. This decodes the
same rows (the first `--seeds` pool prompts, greedy, the policy's token budget, stop at the
stated answer) with both, alternating (merged, unmerged, merged, ...) so drift on a shared
machine hits both, and reports tokens per second, their ratio, and how many rows came out
token-identical (bf16 merging rounds the weights once, so a few rows may differ).

    python bench/merged.py --adapter WS/rounds/00001/train/adapter --seeds 16 --batch 16
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", required=True, help="a LoRA adapter folder (safetensors)")
    parser.add_argument("--policy", default=str(ROOT / "policies" / "quickstart.yaml"))
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from peft import PeftModel
    from results import pool_prompts, provenance, save

    from autoimprove.backends.base import user_turn
    from autoimprove.backends.hf import HFBackend, load_model
    from autoimprove.basemodel import resolve_base
    from autoimprove.policy import load_policy
    from autoimprove.types import ModelRef, Sampling

    policy = load_policy(Path(args.policy))
    base = str(resolve_base(policy))
    prompts = [user_turn(p) for p in pool_prompts(args.policy, policy, args.seeds)]
    sampling = Sampling(
        n=1, temperature=0.0, max_new_tokens=policy.generation.max_new_tokens, stop_at_answer=True
    )
    # What the service runs: load_model merges the adapter into the weights.
    merged = HFBackend(ModelRef(base, args.adapter), policy.model.dtype, args.batch)
    plain, tokenizer = load_model(ModelRef(base), policy.model.dtype)
    unmerged_model = PeftModel.from_pretrained(plain, args.adapter).eval()
    unmerged = HFBackend(
        ModelRef(base, args.adapter),
        policy.model.dtype,
        args.batch,
        loaded=(unmerged_model, tokenizer),  # type: ignore[arg-type]
    )

    runs: dict[str, list[dict]] = {"merged": [], "unmerged": []}
    texts: dict[str, list[str]] = {}
    for _ in range(args.repeats):
        for name, backend in (("merged", merged), ("unmerged", unmerged)):
            started = time.perf_counter()
            out = backend.chat(prompts, sampling)
            seconds = time.perf_counter() - started
            tokens = sum(c[0].completion_tokens for c in out)
            texts[name] = [c[0].text for c in out]
            runs[name].append(
                {"seconds": round(seconds, 1), "tokens": tokens, "tok_per_s": tokens / seconds}
            )
            print(name, runs[name][-1], flush=True)

    def rate(name: str) -> float:
        return sum(r["tokens"] for r in runs[name]) / sum(r["seconds"] for r in runs[name])

    result = {
        **provenance(),
        "adapter": args.adapter,
        "rows": len(prompts),
        "batch": args.batch,
        "runs": runs,
        "tok_per_s_ratio_merged_over_unmerged": round(rate("merged") / rate("unmerged"), 3),
        "identical_rows": sum(
            a == b for a, b in zip(texts["merged"], texts["unmerged"], strict=True)
        ),
    }
    print(json.dumps(result, indent=1))
    print("written to", save("merged", result))


if __name__ == "__main__":
    main()
