"""ScriptedBackend: a test double implementing the backend protocol with canned replies.

Only for pure cascade/voting logic. `reply(prompt_text, call_index)` decides each response; the
double records every conversation it was asked, so tests can count calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from autoimprove.types import Completion, Sampling


class ScriptedBackend:
    def __init__(self, reply: Callable[[str, Sampling], str]):
        self.reply = reply
        self.calls: list[str] = []

    def chat(
        self, conversations: Sequence[Sequence[dict]], sampling: Sampling
    ) -> list[list[Completion]]:
        out = []
        for conversation in conversations:
            prompt = conversation[-1]["content"]
            per = []
            for _ in range(sampling.n):
                self.calls.append(prompt)
                text = self.reply(prompt, sampling)
                per.append(Completion(text, len(prompt.split()), len(text.split())))
            out.append(per)
        return out

    def close(self) -> None:
        pass
