"""Tests that need a system service or program: run under CI, skip with the fix elsewhere.

`.ci/run` installs Debian's chromium and postgresql, starts PostgreSQL and sets
`AUTOIMPROVE_CI=1`; there, anything missing fails the test instead of skipping it.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(what: str, fix: str) -> NoReturn:
    """Fail under CI, skip elsewhere: `what` is not available here; `fix` says how to get it."""
    if os.environ.get("AUTOIMPROVE_CI"):
        pytest.fail(f"{what} is missing under CI: {fix}")
    pytest.skip(f"{what} is not available here ({fix})")
