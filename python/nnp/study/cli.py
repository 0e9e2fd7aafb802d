"""The command line of the study, `python -m nnp.study` (see `nnp.study`)."""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from ase.data import atomic_masses, atomic_numbers

from nnp.cli import check_output_directory
from nnp.data import data_sha256, read_structures
from nnp.progress import fmt_time
from nnp.study import report as study_report
from nnp.study.config import MODELS, StudyConfig
from nnp.study.directory import StudyDir, StudyError, identity, prepare_directory, read_json
from nnp.study.runner import run_study
from nnp.study.stages import Context


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="nnp study",
        description="The descriptor-length study: train series A and B potentials, measure errors and "
                    "properties in LAMMPS, write DIR/report.md with tables and plots.",
    )
    p.add_argument("--data", help="labelled structures (any format nnp.train reads); not needed with --report-only")
    # --out was the option's first name; kept as an alias, not shown.
    p.add_argument("-o", "--output", "--out", dest="out", required=True, metavar="DIR",
                   help="study directory (results, checkpoints, report)")
    p.add_argument("--quick", action="store_true", help="scaled-down settings: the whole pipeline in minutes")
    p.add_argument("--config", help="YAML file of StudyConfig settings (train: a mapping of TrainConfig settings)")
    p.add_argument("--points", help="comma-separated presets to run now (default: all of the study)")
    p.add_argument("--models", metavar="M[,M]",
                   help=f"regressors to run on every point, comma-separated: {', '.join(MODELS)} "
                        "(the network, the sparse GP of nnp train --model gp); default nn")
    p.add_argument("--epochs", type=int, help="training epochs (sets train.epochs)")
    p.add_argument("--seed", type=int, help="seed of the split, weights and velocities")
    p.add_argument("--crystal-ps", type=float, help="crystal NPT production length in ps (default 1000)")
    p.add_argument("--quench-rate", type=float, help="melt-quench cooling rate in K/ps (default 70)")
    p.add_argument("--checkpoint-minutes", type=float, default=10.0,
                   help="wall time between MD checkpoints (default 10)")
    p.add_argument("--progress-seconds", type=float, default=60.0,
                   help="wall time between progress lines of a running stage (default 60)")
    p.add_argument("--retry-failed", action="store_true", help="run failed stages again")
    p.add_argument("--update", action="store_true",
                   help="settings changed: keep the stored results they do not affect, move the others to "
                        "DIR/superseded/ and run those stages again")
    p.add_argument("--restart", action="store_true", help="discard the stored results of DIR and start again")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty DIR that is not a study directory")
    p.add_argument("--report-only", action="store_true", help="only rewrite the report from stored results")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> StudyConfig:
    config = StudyConfig.quick() if args.quick else StudyConfig()
    if args.config:
        config = config.updated_from_yaml(args.config)
    cli: dict[str, Any] = {}
    if args.seed is not None:
        cli["seed"] = args.seed
    if args.crystal_ps is not None:
        cli["crystal_ps"] = args.crystal_ps
    if args.quench_rate is not None:
        cli["quench_rate"] = args.quench_rate
    if args.epochs is not None:
        cli["train"] = {**config.train, "epochs": args.epochs}
    if args.models is not None:
        cli["models"] = parse_models(args.models)
    config = config.updated(cli, "command line")
    config.check()
    return config


def parse_models(spec: str) -> list[str]:
    """--models nn,gp -> ["nn", "gp"]; StudyError with one line for anything else."""
    chosen = [m.strip() for m in spec.split(",")]
    bad = [m for m in chosen if m not in MODELS]
    if bad or len(set(chosen)) != len(chosen):
        what = f"{', '.join(repr(m) for m in bad)} is not a model" if bad else "a model is named twice"
        raise StudyError(f"--models {spec!r}: {what}; give one or more of {', '.join(MODELS)}, "
                         "comma-separated (e.g. --models nn,gp)")
    return chosen


def select_points(config: StudyConfig, spec: str | None) -> list[str]:
    if not spec:
        return config.points
    chosen = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [p for p in chosen if p not in config.points]
    if bad or not chosen:
        raise StudyError(f"--points: {', '.join(bad) or '(none)'} not in this study's points "
                         f"{', '.join(config.points)}")
    return [p for p in config.points if p in chosen]


def load_structures(path: Path, max_structures: int):
    structures = read_structures(path)
    n = len(structures)
    if max_structures and max_structures < n:
        # Evenly spaced, so every kind of frame in the file stays represented.
        idx = np.unique(np.round(np.linspace(0, n - 1, max_structures)).astype(int))
        structures = [structures[i] for i in idx]
    return structures


def _element(structures) -> tuple[str, float]:
    symbols = sorted({s for a in structures for s in a.get_chemical_symbols()})
    if len(symbols) != 1:
        raise StudyError(f"the study's properties are for a one-element diamond crystal; the data has "
                         f"{', '.join(symbols)}")
    return symbols[0], float(atomic_masses[atomic_numbers[symbols[0]]])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return _run(args)
    except (StudyError, ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: finished stages and MD checkpoints are kept; rerun the same command to resume",
              file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    sdir = StudyDir(args.out)
    if args.models is not None:
        parse_models(args.models)  # a bad value is an error even where it is not used
    if args.report_only:
        stored = read_json(sdir.config_file) if sdir.root.is_dir() else None
        if stored is None:
            raise StudyError(f"{sdir.root} is not a study directory (no {StudyDir.CONFIG})")
        config = StudyConfig.from_dict(stored["identity"]["study"], str(sdir.config_file))
        files = study_report.write_outputs(sdir, config, stored)
        print(f"wrote {', '.join(files)} in {sdir.root}")
        return 0
    if not args.data:
        raise StudyError("--data is required (except with --report-only)")
    if args.checkpoint_minutes <= 0 or args.progress_seconds < 0:
        raise StudyError("--checkpoint-minutes must be > 0 and --progress-seconds >= 0")
    config = build_config(args)
    points = select_points(config, args.points)
    data_path = Path(args.data)
    # Check the directory before reading the data, as far as possible.
    check_output_directory(sdir.root)
    structures = load_structures(data_path, config.max_structures)
    element, mass = _element(structures)
    ident = identity(config, data_sha256(data_path), len(structures))
    extra = {"data": str(data_path.resolve()),
             "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    prepare_directory(sdir, ident, extra, args.restart, args.force, args.update)
    stored = read_json(sdir.config_file)
    torch.set_num_threads(1)
    models = " and ".join({"nn": "the network", "gp": "the sparse GP"}[m] for m in config.models)
    print(f"study in {sdir.root}: {len(points)} of {len(config.points)} points ({', '.join(points)}) with "
          f"{models}, {len(structures)} structures of {element} from {data_path}", flush=True)
    print(f"protocol: crystal {8 * config.crystal_cells**3} atoms, {config.crystal_ps:g} ps NPT at "
          f"{config.crystal_temperature:g} K; melt-quench {8 * config.melt_cells**3} atoms, "
          f"{config.liquid_temperature:g} -> {config.quench_end_temperature:g} K at {config.quench_rate:g} K/ps",
          flush=True)
    ctx = Context(config, sdir, structures, element, mass, checkpoint_seconds=60 * args.checkpoint_minutes,
                  log=lambda line: print(line, flush=True), progress_seconds=args.progress_seconds)

    def outputs() -> None:
        files = study_report.write_outputs(sdir, config, stored)
        ctx.log(f"    wrote {', '.join(files)}")

    run_study(ctx, config.runs_of(points), args.retry_failed, outputs)
    outputs()
    print(f"done in {fmt_time(time.perf_counter() - t0)}; report: {sdir.root / 'report.md'}", flush=True)
    return 0
