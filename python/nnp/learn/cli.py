"""`nnp learn` (and `python -m nnp.learn`): the active-learning loop.

    nnp learn CONFIG -o DIR [--force]       start a run (settings: nnp.learn.config)
    nnp learn --quick -o DIR                 two tiny iterations (8-atom Si, cheap pw.x): minutes
    nnp learn --continue DIR [--iterations N]  continue a killed or finished run
    nnp learn status DIR                     where a run stands, one line per iteration

docs/active-learning.md describes the loop, the files and the settings.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from nnp.dft import DFTError
from nnp.learn import config as config_mod
from nnp.learn import loop, report


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="nnp learn",
        description="Active learning: train a committee, explore with LAMMPS MD, label the frames where the "
        "members disagree with pw.x, repeat. `nnp learn status DIR` shows a run.")
    p.add_argument("config", nargs="?", metavar="CONFIG", help="YAML settings (docs/active-learning.md)")
    p.add_argument("-o", "--output", metavar="DIR", help="run directory to create")
    p.add_argument("--quick", action="store_true",
                   help="built-in settings: two tiny iterations on 8-atom Si cells with a very cheap pw.x setting")
    p.add_argument("--continue", dest="resume", metavar="DIR", help="continue the run in DIR where it stopped")
    p.add_argument("--iterations", type=int, metavar="N", help="with --continue: raise stop.max_iterations to N")
    p.add_argument("--force", action="store_true", help="start over in an existing run directory")
    return p.parse_args(argv)


def status(argv: Sequence[str]) -> int:
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: nnp learn status DIR", file=sys.stderr)
        return 2
    directory = Path(argv[0])
    try:
        state = loop.State.load(directory)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(report.status_text(directory, state))
    return 0


def _setup(args: argparse.Namespace) -> tuple[Path, config_mod.LearnConfig]:
    if args.resume:
        if args.config or args.output or args.quick or args.force:
            raise ValueError("--continue DIR takes no CONFIG, -o, --quick or --force: the run's own config.yaml holds "
                             "its settings")
        directory = Path(args.resume)
        config = loop.load_config(directory)
        state = loop.State.load(directory)
        if args.iterations is not None:
            if args.iterations < 1:
                raise ValueError("--iterations must be >= 1")
            from dataclasses import replace

            config = replace(config, max_iterations=args.iterations)
            loop.atomic_write_text(directory / "config.yaml", config_mod.yaml_text(config))
            loop.reopen(directory, state, args.iterations)
        return directory, config
    if args.iterations is not None:
        raise ValueError("--iterations is for --continue; set stop.max_iterations in the config")
    if not args.output:
        raise ValueError("give the run directory: -o DIR")
    if args.quick == bool(args.config):
        raise ValueError("give either CONFIG or --quick")
    config = config_mod.quick_config() if args.quick else config_mod.read(args.config)
    directory = Path(args.output)
    loop.start(directory, config, overwrite=args.force)
    return directory, config


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["status"]:
        return status(argv[1:])
    args = parse_args(argv)
    try:
        directory, config = _setup(args)
        state = loop.run(directory, config, _log)
    except (ValueError, FileNotFoundError, FileExistsError, DFTError, RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        where = args.resume or args.output
        if where and (Path(where) / "state.json").exists():
            print(f"the labelled frames so far are in {Path(where) / 'data.xyz'}; after fixing the cause, "
                  f"continue with: nnp learn --continue {where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: nnp learn --continue {args.resume or args.output}", file=sys.stderr)
        return 130
    _log(f"done ({state['stop_reason']}); report: {directory / 'report.md'}")
    return 0
