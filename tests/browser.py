"""Render a local HTML file the way a person would see it: headless Chromium, to a PNG.

Chromium comes from Debian (`apt-get install chromium`; `.ci/run` installs it). Where it is
missing the browser tests skip with that instruction, except under CI (`tests/requires.py`).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.requires import missing

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    missing("headless Chromium", "apt-get install chromium")


def screenshot(page: Path, out: Path, width: int = 1000, height: int = 1800) -> Path:
    """Load `page` in headless Chromium and save what it shows as a PNG."""
    profile = out.parent / f".{out.stem}-profile"
    result = subprocess.run(
        [
            chromium(),
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={out}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and out.is_file(), result.stderr[-2000:]
    return out


def pixels_near(image: Path, hex_color: str, tolerance: int = 12) -> int:
    """How many pixels of `image` are within `tolerance` (per channel) of `hex_color`."""
    import numpy as np
    from PIL import Image

    target = np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)])
    rgb = np.asarray(Image.open(image).convert("RGB")).astype(int)
    return int((np.abs(rgb - target) <= tolerance).all(axis=-1).sum())
