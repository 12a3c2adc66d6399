"""Looking at Airflow's UI as a person would: a headless Chromium screenshot, and
counting the task-state squares of one colour in it; and a logged-in browser
(``ui_session``) that loads any page of the UI, waits for it to render and returns its
DOM, the DOM of its iframes, its text and a screenshot.

The browser is the system's Chromium (Debian's package), driven by Playwright over its
DevTools protocol: Playwright's own browser downloads are never used."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

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


# -- A logged-in browser: Playwright driving the system's Chromium -------------------

#: The cookie in which Airflow's UI keeps the user's JWT (set by its login page; the
#: api-server reads it on every request, the UI's own and its plugins' pages alike).
TOKEN_COOKIE = "_token"


@dataclass(frozen=True)
class Loaded:
    """One page as the browser rendered it."""

    url: str  # where the browser ended (a login page when the session was refused)
    html: str  # the main document's DOM, serialized after its scripts ran
    frames: tuple[str, ...]  # the DOM of each iframe (Airflow shows plugins' views in one)
    text: str  # the visible text of the document and of its frames, in that order
    png: Path | None


def login(url: str, username: str, password: str) -> str:
    """A JWT for ``username`` from the simple auth manager's login endpoint (what the
    UI's login form posts); with every user an admin, any name and password will do."""
    import requests

    body = {"username": username, "password": password}
    response = requests.post(f"{url}/auth/token", json=body, timeout=60)
    if response.status_code != 201:
        raise ServerError(f"login as {username} refused: {response.status_code} {response.text}")
    return response.json()["access_token"]


class Session:
    """A headless Chromium with one browser context: ``open`` loads a page of ``url``."""

    def __init__(self, context: Any, url: str) -> None:
        self._context = context
        self.url = url

    def open(
        self,
        path: str,
        *,
        until_text: str = "",
        png: Path | None = None,
        crop: str = "",
        clip: tuple[int, int, int, int] | None = None,
    ) -> Loaded:
        """Load ``url + path`` and wait until ``until_text`` shows in the page or one of
        its frames (60 s at most), then until the network is quiet. ``png``: a
        screenshot of the window; of the first element matching the CSS selector
        ``crop`` (looked for in the document, then in each frame); or of the window's
        rectangle ``clip`` (x, y, width, height in CSS pixels)."""
        page = self._context.new_page()
        try:
            page.goto(self.url + path, wait_until="load")
            if until_text:
                _wait_for_text(page, until_text)
            with suppress(PlaywrightTimeout):
                page.wait_for_load_state("networkidle", timeout=10_000)
            if png is not None:
                _screenshot(page, png, crop, clip)
            frames = [f for f in page.frames if f is not page.main_frame]
            return Loaded(
                url=page.url,
                html=page.content(),
                frames=tuple(f.content() for f in frames),
                text="\n".join(_text(f) for f in [page.main_frame, *frames]),
                png=png,
            )
        finally:
            page.close()


@contextmanager
def ui_session(
    url: str, token: str | None = None, size: tuple[int, int] = (1600, 1000)
) -> Iterator[Session]:
    """A browser logged in with ``token`` (from ``login``; None: logged out) on the
    Airflow at ``url``, as its login page leaves one: the token in the ``_token``
    cookie for the api-server's origin."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise ServerError("chromium not found: install it (Debian: apt-get install chromium)")
    flags = [flag for flag in _FLAGS if flag != "--headless"]  # Playwright adds its own
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=flags)
        try:
            context = browser.new_context(viewport={"width": size[0], "height": size[1]})
            if token:
                cookie = {"name": TOKEN_COOKIE, "value": token, "url": url + "/"}
                context.add_cookies([{**cookie, "httpOnly": True, "sameSite": "Lax"}])
            yield Session(context, url)
        finally:
            browser.close()


def _wait_for_text(page: Any, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in _text(frame) for frame in page.frames):
        if time.monotonic() > deadline:
            shown = " | ".join(_text(frame)[:300] for frame in page.frames)
            raise ServerError(f"{page.url} never showed {text!r}; it shows: {shown}")
        page.wait_for_timeout(250)


def _text(frame: Any) -> str:
    """A frame's visible text; "" while it has no body (still loading, or replaced)."""
    try:
        return frame.evaluate("() => document.body ? document.body.innerText : ''")
    except PlaywrightError:
        return ""


def _screenshot(page: Any, png: Path, crop: str, clip: tuple[int, int, int, int] | None) -> None:
    if crop:
        _element(page, crop).screenshot(path=str(png))
    elif clip:
        x, y, width, height = clip
        page.screenshot(path=str(png), clip={"x": x, "y": y, "width": width, "height": height})
    else:
        page.screenshot(path=str(png))


def _element(page: Any, selector: str) -> Any:
    for frame in page.frames:
        found = frame.locator(selector)
        if found.count():
            return found.first
    raise ServerError(f"{page.url} has no element {selector!r}")
