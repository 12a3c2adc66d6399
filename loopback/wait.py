"""Waiting for a real deployment: one polling loop for every "until"."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def until(check: Callable[[], T], *, timeout: float, every: float, what: str) -> T:
    """Call ``check`` every ``every`` seconds until it returns something true; return
    that. After ``timeout`` seconds raise TimeoutError saying ``what`` did not happen
    (the last call's result is in the message, which is often the reason)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout:.0f} s (last: {result!r})")
        time.sleep(every)
