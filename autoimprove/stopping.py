"""Graceful stop: SIGTERM/SIGINT set a flag that long loops check between shards and steps.

A step that sees the flag finishes (and seals) the shard in hand, then raises `StopRequested`;
the round stays resumable and the process exits cleanly. Nothing is interrupted mid-write.
"""

from __future__ import annotations

import threading

_stop = threading.Event()


class StopRequested(Exception):
    """Raised at a safe point once a stop was requested."""


def request_stop() -> None:
    _stop.set()


def stop_requested() -> bool:
    return _stop.is_set()


def check() -> None:
    """Raise `StopRequested` if a stop was requested (call only at safe points)."""
    if _stop.is_set():
        raise StopRequested("stop requested")


def reset() -> None:
    _stop.clear()
