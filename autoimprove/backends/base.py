"""The generation backend protocol and the registry of implementations.

A backend turns chat conversations into sampled completions, `n` per conversation, and reports
token counts. Generation, the cascade's judges and (later) test-time baselines all go through
`chat`, so swapping transformers for vLLM changes nothing above this layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from autoimprove.types import Completion, Sampling

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": str}


class Backend(Protocol):
    """What every generation backend provides."""

    def chat(
        self, conversations: Sequence[Sequence[Message]], sampling: Sampling
    ) -> list[list[Completion]]:
        """`sampling.n` completions for each conversation, in input order."""
        ...

    def close(self) -> None:
        """Free the model (memory, GPU)."""
        ...


def user_turn(prompt: str, system_prompt: str | None = None) -> list[Message]:
    """A one-question conversation, with the policy's system prompt if any."""
    messages: list[Message] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": prompt})
    return messages
