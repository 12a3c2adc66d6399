"""Looking at Airflow's UI as a person would: a headless Chromium screenshot, and
counting the task-state squares of one colour in it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from loopback.servers import ServerError

#: Airflow 3.3's grid colour for skipped task instances, as Chromium renders it.
SKIPPED = (230, 0, 118)

# Chromium reaches for Google's hosts at start unless told not to; this machine's
# network is closed, so those attempts only slow it down and fill its log.
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def screenshot(url: str, png: Path, size: tuple[int, int] = (1600, 1400)) -> Path:
    """A PNG of ``url`` once its scripts have rendered (20 s of virtual time)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise ServerError("chromium not found: install it (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="alamode-chromium-") as profile:
        args = [chromium, *_FLAGS, f"--user-data-dir={profile}"]
        args += [f"--window-size={size[0]},{size[1]}", "--virtual-time-budget=20000"]
        args += [f"--screenshot={png}", url]
        subprocess.run(args, capture_output=True, timeout=180, check=True)
    if not png.exists():
        raise ServerError(f"chromium wrote no screenshot of {url}")
    return png


def count_squares(png: Path, colour: tuple[int, int, int], reach: int = 2) -> int:
    """How many separate blobs of exactly ``colour`` the picture has, pixels up to
    ``reach`` apart counting as one blob (a state square's icon cuts it in parts;
    squares are 5 px apart): in the grid view, one per task instance in that state."""
    from PIL import Image

    with Image.open(png) as opened:
        image = opened.convert("RGB")
    width = image.size[0]
    left = {
        (i % width, i // width)
        for i, pixel in enumerate(image.get_flattened_data())
        if pixel == colour
    }
    blobs = 0
    while left:
        blobs += 1
        stack = [left.pop()]
        while stack:
            x, y = stack.pop()
            for dx in range(-reach, reach + 1):
                for dy in range(-reach, reach + 1):
                    if (x + dx, y + dy) in left:
                        left.remove((x + dx, y + dy))
                        stack.append((x + dx, y + dy))
    return blobs
