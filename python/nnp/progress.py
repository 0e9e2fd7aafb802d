"""Progress as a person reads it: durations, and bars on a terminal.

On a terminal, `Bar` draws a tqdm bar and `write_line` prints a line above
the bars drawn; when standard output is a file or a pipe (a CI log, `| cat`),
no bar is drawn and callers print plain lines at their own pace, so a log
holds lines, not carriage-return redraws. `elapsed()` counts from the start
of the command (`restart_clock`), so that the times a run shows include
reading and featurising the data.
"""

from __future__ import annotations

import math
import os
import sys
import time

from tqdm import tqdm

_started = time.perf_counter()


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


def restart_clock() -> None:
    """Start `elapsed()` again: a command calls this when it starts."""
    global _started
    _started = time.perf_counter()


def elapsed() -> float:
    """Seconds since the command started (a forked process shares its clock)."""
    return time.perf_counter() - _started


def on_terminal() -> bool:
    """Whether standard output is a terminal, where bars are drawn."""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced or closed stdout
        return False


def write_line(line: str) -> None:
    """Print `line` (flushed) above any bar drawn on the terminal."""
    tqdm.write(line, file=sys.stdout)
    sys.stdout.flush()


def outside_bars():
    """A context in which lines printed by other means (print, a caller's
    log function) pass above the bars drawn instead of through them."""
    return tqdm.external_write_mode(file=sys.stdout)


def _columns() -> int:
    """The terminal's width; 0 when it reports none (a pseudo-terminal
    never sized, where tqdm would draw nothing)."""
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 0


class Bar:
    """One progress bar on standard output, drawn only on a terminal.

    With `own_eta`, the caller gives the time left (`update(..., eta=...)`)
    and the bar shows it with the time since the command started, instead of
    tqdm's estimate from the average rate, which is wrong when the steps
    differ in cost (Adam and L-BFGS epochs). A bar is cleared when closed:
    the lines printed are what stays on the screen, as in a log."""

    REDRAW = 0.1  # seconds between redraws, the last step always drawn

    def __init__(self, total: int, desc: str, unit: str, position: int = 0, own_eta: bool = False, initial: int = 0):
        self.drawn = on_terminal()
        self.own_eta, self.total, self.last = own_eta, total, -math.inf
        # tqdm puts ", " before the postfix; its own estimate, without the
        # rate (tqdm writes a slow one as '3.51s/ steps').
        fmt = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} " + unit + (
            "{postfix}" if own_eta else " [{elapsed} so far, ETA {remaining}{postfix}]")
        width = _columns() if self.drawn else 0
        self._bar = tqdm(total=total, desc=desc, unit=f" {unit}", position=position, file=sys.stdout,
                         dynamic_ncols=width > 0, ncols=None if width > 0 else 100, disable=not self.drawn,
                         bar_format=fmt, leave=False, mininterval=0.2, initial=initial)

    def update(self, done: int, status: str = "", eta: float | None = None) -> None:
        """`done` steps of the total, `status` after the times."""
        if not self.drawn:
            return
        now = time.perf_counter()
        if now - self.last < self.REDRAW and done < self.total:
            return
        self.last = now
        times = f"{fmt_time(elapsed())}, ETA {fmt_time(eta)}" if self.own_eta and eta is not None else ""
        postfix = ", ".join(s for s in (times, status) if s)
        self._bar.n = done
        self._bar.set_postfix_str(postfix, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()
