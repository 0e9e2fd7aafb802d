"""Where training's progress lines go: standard output, one line at a time."""

from __future__ import annotations

from typing import Callable

Log = Callable[[str], None]


def print_line(line: str) -> None:
    """The default log of `train`: print and flush, so that a redirected run
    shows its progress as it goes."""
    print(line, flush=True)


def labelled(label: str) -> Log:
    """A log that prefixes every line with [label] (the two refit trainings)."""
    return lambda line: print_line(f"[{label}] {line}")
