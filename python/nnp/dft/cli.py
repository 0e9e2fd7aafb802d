"""The command line of nnp.dft: `nnp dft aimd ...` (also `python -m nnp.dft aimd`)."""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import ase.io
from ase.build import bulk

from nnp.cli import check_output_directory
from nnp.dft.aimd import (
    DEFAULT_PSEUDO_DIR,
    DEFAULT_PSEUDOPOTENTIALS,
    DEFAULT_STEPS,
    PROTOCOLS,
    SI_LATTICE_PBE,
    DFTError,
    MDSettings,
    QESettings,
    _check_output,
    run_aimd,
)


def _diamond(element: str, lattice: float, repeat: Sequence[int]):
    return bulk(element, "diamond", a=lattice, cubic=True).repeat(tuple(repeat))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="nnp dft", description="DFT training data with Quantum Espresso.")
    sub = p.add_subparsers(dest="command_name", required=True, metavar="COMMAND")
    q = sub.add_parser(
        "aimd",
        help="ab-initio MD with pw.x, writing labelled frames to extxyz",
        description="Langevin MD driven by pw.x single points (through ASE); a labelled frame (energy, forces, "
        "stress) is appended to the output every --frame-interval fs. Protocols: crystal (500 K), liquid "
        "(2000 K), melt-quench (2000 K -> 300 K at 70 K/ps).",
    )
    q.add_argument("--protocol", choices=sorted(PROTOCOLS), required=True)
    q.add_argument("--output", "-o", required=True, help="extxyz file of labelled frames")
    s = q.add_argument_group("structure (ignored with --continue)")
    s.add_argument("--structure", help="starting structure (any periodic file ASE reads; last frame)")
    s.add_argument("--element", default="Si", help="diamond crystal of this element if no --structure (default Si)")
    s.add_argument("--lattice", type=float, default=SI_LATTICE_PBE,
                   help=f"cubic lattice constant in Å (default {SI_LATTICE_PBE}, PBE Si)")
    s.add_argument("--repeat", type=int, nargs=3, default=(2, 2, 2), metavar=("NX", "NY", "NZ"),
                   help="conventional cells per direction (default 2 2 2: 64 atoms)")
    m = q.add_argument_group("molecular dynamics")
    m.add_argument("--steps", type=int,
                   help=f"total MD steps (default: {DEFAULT_STEPS}; melt-quench: the whole ramp)")
    m.add_argument("--timestep", type=float, default=2.0, help="fs (default 2)")
    m.add_argument("--frame-interval", type=float, default=20.0, help="fs between written frames (default 20)")
    m.add_argument("--temperature", type=float, help="K: constant temperature instead of the protocol's")
    m.add_argument("--t-start", type=float, help="K: melt-quench start temperature (default 2000)")
    m.add_argument("--t-end", type=float, help="K: melt-quench end temperature (default 300)")
    m.add_argument("--quench-rate", type=float, help="K/ps: melt-quench cooling rate (default 70)")
    m.add_argument("--friction", type=float, default=0.01, help="Langevin friction in 1/fs (default 0.01)")
    m.add_argument("--seed", type=int, default=0, help="random seed (velocities, thermostat)")
    d = q.add_argument_group("DFT (pw.x)")
    d.add_argument("--ecutwfc", type=float, default=30.0, help="plane-wave cutoff in Ry (default 30)")
    d.add_argument("--ecutrho", type=float, help="density cutoff in Ry (default 4 x ecutwfc)")
    k = d.add_mutually_exclusive_group()
    k.add_argument("--kpts", type=int, nargs=3, default=(1, 1, 1), metavar=("K1", "K2", "K3"),
                   help="Monkhorst-Pack mesh (default 1 1 1)")
    k.add_argument("--gamma", action="store_true", help="Γ point only, with pw.x's Γ tricks")
    d.add_argument("--degauss", type=float, default=0.02, help="Marzari-Vanderbilt smearing in Ry (default 0.02)")
    d.add_argument("--pseudo-dir", default=str(DEFAULT_PSEUDO_DIR), help=f"default {DEFAULT_PSEUDO_DIR}")
    d.add_argument("--pseudopotential", action="append", default=[], metavar="EL=FILE",
                   help="UPF file of an element in --pseudo-dir (default Si=Si.pbe-rrkj.UPF); repeatable")
    d.add_argument("--command", default="pw.x", help="how to run pw.x, e.g. 'mpirun -np 4 pw.x' (default pw.x)")
    d.add_argument("--workdir", help="directory for pw.x input/output (default OUTPUT.qe)")
    q.add_argument("--continue", dest="resume", action="store_true",
                   help="extend OUTPUT from its last frame (same settings) up to --steps")
    q.add_argument("--force", action="store_true", help="overwrite an existing OUTPUT")
    return p.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> tuple[MDSettings, QESettings]:
    protocol = PROTOCOLS[args.protocol]
    if args.temperature is not None:
        if protocol.rate:
            raise ValueError("--temperature is for the constant-temperature protocols; "
                             "use --t-start/--t-end/--quench-rate for melt-quench")
        protocol = replace(protocol, t_start=args.temperature, t_end=args.temperature)
    ramp = {k: v for k, v in (("t_start", args.t_start), ("t_end", args.t_end), ("rate", args.quench_rate))
            if v is not None}
    if ramp:
        if not protocol.rate:
            raise ValueError("--t-start, --t-end and --quench-rate are for the melt-quench protocol")
        protocol = replace(protocol, **ramp)
    protocol.check()
    steps = args.steps
    if steps is None:
        steps = math.ceil(protocol.ramp_fs() / args.timestep) if protocol.rate else DEFAULT_STEPS
    md = MDSettings(protocol, steps, args.timestep, args.frame_interval, args.friction, args.seed)
    md.check()
    pseudos = dict(DEFAULT_PSEUDOPOTENTIALS)
    for item in args.pseudopotential:
        element, sep, name = item.partition("=")
        if not sep or not element or not name:
            raise ValueError(f"--pseudopotential expects ELEMENT=FILE, got {item!r}")
        pseudos[element] = name
    qe = QESettings(
        command=args.command,
        pseudo_dir=args.pseudo_dir,
        pseudopotentials=pseudos,
        ecutwfc=args.ecutwfc,
        ecutrho=args.ecutrho,
        kpts=None if args.gamma else tuple(args.kpts),
        degauss=args.degauss,
    )
    return md, qe


def _check_paths(args: argparse.Namespace) -> None:
    """The output file and pw.x's work directory, before anything else."""
    output = Path(args.output)
    _check_output(output, args.resume, args.force)
    workdir = Path(args.workdir) if args.workdir else output.with_name(output.name + ".qe")
    try:
        check_output_directory(workdir)
    except ValueError as err:
        raise ValueError(f"pw.x work directory {workdir}: {err}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        md, qe = settings_from_args(args)
        _check_paths(args)
        if args.resume:
            atoms = None  # the structure comes from the output file
        elif args.structure:
            atoms = ase.io.read(args.structure, index=-1)
        else:
            atoms = _diamond(args.element, args.lattice, args.repeat)
        if atoms is not None:
            qe.check(atoms.get_chemical_symbols())  # before anything is written
        p = md.protocol
        print(f"protocol {p.name}: " + (f"{p.t_start:g} K" if not p.rate else
                                        f"{p.t_start:g} K -> {p.t_end:g} K at {p.rate:g} K/ps") +
              f"; {md.steps} steps of {md.timestep_fs:g} fs, a frame every {md.frame_interval_fs:g} fs; "
              f"pw.x ecutwfc {qe.ecutwfc:g} Ry, k-points {qe.signature()['dft_kpts']}")
        summary = run_aimd(atoms, Path(args.output), md, qe, workdir=args.workdir,
                           resume=args.resume, overwrite=args.force)
    except (ValueError, FileNotFoundError, FileExistsError, DFTError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted; the frames written so far are in {args.output} (extend with --continue)",
              file=sys.stderr)
        return 130
    print(f"wrote {summary.frames_written} frames ({summary.frames_total} in {args.output}), "
          f"{summary.steps_done} steps; wall time {summary.wall_s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
