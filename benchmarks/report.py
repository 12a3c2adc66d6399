"""What every benchmark shares: a timer and the table its figures are printed in,
each figure beside its baseline from the same run."""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable


def timed(step: Callable[[], object]) -> float:
    """Seconds ``step`` takes, once."""
    began = time.perf_counter()
    step()
    return time.perf_counter() - began


def best_time(step: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` runs of ``step`` (a garbage collection before each,
    so one run does not pay for another's garbage)."""
    best = math.inf
    for _ in range(repeats):
        gc.collect()
        best = min(best, timed(step))
    return best


def verdict(ratio: float, target: float) -> str:
    """``ok`` or ``FAIL`` for a ratio ours/baseline against its target."""
    return "ok" if ratio <= target else "FAIL"


def table(header: list[str], rows: list[list[str]]) -> str:
    """Right-aligned columns under a header and a rule."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
