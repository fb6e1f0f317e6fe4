"""Seed pools: load, validate row by row, deduplicate, decontaminate and sample without reuse.

A pool is a JSONL file or a folder of them with rows `{"id", "prompt", "domain"?, ...}`. A row
that is not a JSON object with a non-empty string `prompt` is skipped and counted, never fatal:
one bad line must not stop an always-on service. An `answer` field is ignored (the method is
label-free) and counted so the operator is told. Rows whose normalized prompt was already seen
are dropped as duplicates; rows sharing a word n-gram with a held-out item are dropped as
contaminated.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from autoimprove.decontam import normalize_text, word_ngrams
from autoimprove.types import Seed


@dataclass
class PoolReport:
    """What loading a pool found, for the round summary."""

    rows: int = 0
    loaded: int = 0
    bad_rows: int = 0
    duplicates: int = 0
    contaminated: int = 0
    with_answer_field: int = 0
    bad_examples: list[str] = field(default_factory=list)


def _files(pool: Path) -> list[Path]:
    if pool.is_dir():
        return sorted(pool.glob("*.jsonl"))
    if pool.is_file():
        return [pool]
    raise FileNotFoundError(f"seed pool {pool} does not exist (a .jsonl file or a folder of them)")


def load_pool(
    pool: Path, heldout_ngrams: set[tuple[str, ...]] | None = None, ngram: int = 8
) -> tuple[list[Seed], PoolReport]:
    """Every usable seed of a pool, in file order, and a report of what was skipped."""
    report = PoolReport()
    seeds: list[Seed] = []
    seen_text: set[str] = set()
    seen_ids: set[str] = set()
    for path in _files(pool):
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                report.rows += 1
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    row = None
                prompt = row.get("prompt") if isinstance(row, dict) else None
                if not isinstance(prompt, str) or not prompt.strip():
                    report.bad_rows += 1
                    if len(report.bad_examples) < 5:
                        report.bad_examples.append(f"{path.name}:{line_no}")
                    continue
                assert isinstance(row, dict)
                if "answer" in row:
                    report.with_answer_field += 1
                normalized = normalize_text(prompt)
                raw_id = row.get("id")
                seed_id = str(raw_id) if isinstance(raw_id, str | int) and str(raw_id) else ""
                if not seed_id or seed_id in seen_ids:
                    # Ids must be unique; derive a stable one from the text when absent or reused.
                    seed_id = "sha-" + hashlib.sha256(normalized.encode()).hexdigest()[:16]
                if normalized in seen_text:
                    report.duplicates += 1
                    continue
                if heldout_ngrams and word_ngrams(prompt, ngram) & heldout_ngrams:
                    report.contaminated += 1
                    continue
                seen_text.add(normalized)
                seen_ids.add(seed_id)
                domain = row.get("domain")
                seeds.append(
                    Seed(seed_id, prompt.strip(), domain if isinstance(domain, str) else "default")
                )
    report.loaded = len(seeds)
    return seeds, report


def sample_seeds(seeds: list[Seed], used: set[str], k: int, rng_seed: int) -> list[Seed]:
    """k unused seeds, chosen reproducibly from (rng_seed); fewer if fewer remain."""
    unused = [s for s in seeds if s.id not in used]
    rng = random.Random(rng_seed)
    if len(unused) <= k:
        return unused
    return rng.sample(unused, k)
