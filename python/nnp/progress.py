"""How long things take, as a person reads it."""

from __future__ import annotations

import math


def fmt_time(seconds: float) -> str:
    """'42s', '3m07s', '2h05m', '1d03h'; '?' for an unknown (non-finite) time."""
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"
