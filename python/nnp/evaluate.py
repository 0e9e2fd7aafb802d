"""Score a potential file on labelled structures, through the C++ core.

    nnp evaluate --potential Si.nnp --data test.xyz [-o/--report DIR] [--detail PREFIX] [--force]

Reads every frame of each data file (`nnp.data.read_structures`: extxyz and
other ASE formats, n2p2 input.data, mlearn JSON; bad frames are refused with
the file and frame named), predicts energies, forces and stress with the
potential exactly as LAMMPS and NNPCalculator do, and prints energy (meV/atom),
force (eV/Å) and stress (GPa) MAE and RMSE, overall and per config_type
(`nnp.analysis.metrics`); also the energy error per structure (eV) and the
virial per atom (meV/atom). With -o/--report DIR it also writes metrics.json,
parity plots and report.md there (an existing non-empty DIR only with
--force). With --detail PREFIX every prediction is written beside its
reference (PREFIX.e.out, .e_peratom.out, .f.out, .s.out, .v.out,
.v_peratom.out; `nnp.analysis.detail`), as DeePMD-kit's `dp test
--detail-file`; with several data files, PREFIX.<set>.e.out and so on.
All outputs are checked before any work.

Exit status: 0 on success, 2 on an error (message on stderr). torch is not
needed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from nnp.analysis.detail import detail_paths, write_detail
from nnp.analysis.metrics import (Predictions, check_elements, format_per_structure, format_table, load_potential,
                                  metrics, predict_potential)
from nnp.analysis.report import check_report_directory, write_report
from nnp.cli import prepare_output_file
from nnp.data import read_structures


def _set_names(paths: Sequence[str]) -> list[str]:
    """Report set names: the files' stems, made unique."""
    names: list[str] = []
    for p in paths:
        base = Path(p).stem or Path(p).name
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def evaluate(
    potential: str | os.PathLike,
    data: Sequence[str | os.PathLike],
    format: str | None = None,
    report_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    detail: str | os.PathLike | None = None,
) -> dict:
    """Predictions and metrics of `potential` on each data file; with
    `report_dir`, the report is written; with `detail`, the per-structure
    and per-atom files (`nnp.analysis.detail`). Returns {"sets": {name:
    metrics}, "predictions": {name: Predictions}, "detail": [paths]}."""
    paths = [os.fspath(d) for d in data]
    names = _set_names(paths)
    prefixes = _detail_prefixes(detail, names)
    # Fail before the work.
    if report_dir is not None:
        check_report_directory(report_dir, overwrite)
    for prefix in prefixes.values():
        for path in detail_paths(prefix):
            prepare_output_file(path, overwrite)
    pot = load_potential(potential)
    sets: dict[str, Predictions] = {}
    for name, path in zip(names, paths):
        structures = read_structures(path, format=format)
        check_elements(pot.elements, structures, f"{os.fspath(potential)} (used on {path})")
        sets[name] = predict_potential(pot, structures)
    # The report first: --detail files may go into its directory (-o out --detail out/Si).
    result = write_report(report_dir, sets, overwrite=overwrite) if report_dir is not None else None
    written = [path for name, prefix in prefixes.items() for path in write_detail(prefix, sets[name])]
    if result is not None:
        return {"sets": result["sets"], "predictions": sets, "detail": written}
    return {"sets": {name: metrics(p) for name, p in sets.items()}, "predictions": sets, "detail": written}


def _detail_prefixes(detail: str | os.PathLike | None, names: Sequence[str]) -> dict[str, str]:
    """The detail-file prefix of each set: PREFIX for one data file,
    PREFIX.<set> for several."""
    if detail is None:
        return {}
    prefix = os.fspath(detail)
    return {names[0]: prefix} if len(names) == 1 else {name: f"{prefix}.{name}" for name in names}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nnp evaluate",
        description="Energy, force and stress errors (MAE, RMSE; overall and per config_type) of a "
        "potential file on labelled structures, computed by the C++ core (what LAMMPS computes).",
    )
    parser.add_argument("-p", "--potential", metavar="FILE",
                        help="potential file (.nnp); the potential is given this way in every nnp command")
    parser.add_argument("positional_potential", nargs="?", metavar="FILE",
                        help="the same, given without --potential (accepted)")
    parser.add_argument("--data", required=True, nargs="+", metavar="FILE",
                        help="labelled structures: extxyz or any ASE format, n2p2 input.data, mlearn JSON")
    parser.add_argument("--format", help="data format: n2p2, mlearn-json or an ASE format (default: from the content)")
    parser.add_argument("-o", "--output", "--report", dest="report", metavar="DIR",
                        help="write metrics.json, parity plots and report.md to DIR (--report is the same)")
    parser.add_argument("--detail", metavar="PREFIX",
                        help="write every prediction beside its reference: PREFIX.e.out (eV per structure), "
                        ".e_peratom.out, .f.out (eV/Å), .s.out (GPa), .v.out (virial, eV), .v_peratom.out")
    parser.add_argument("--force", action="store_true",
                        help="overwrite existing outputs (the report in a non-empty DIR, --detail files)")
    args = parser.parse_args(argv)
    if (args.potential is None) == (args.positional_potential is None):
        parser.error("give the potential file once: --potential FILE (or as the first argument)")
    args.potential = args.potential or args.positional_potential
    try:
        out = evaluate(args.potential, args.data, args.format, args.report, args.force, args.detail)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    names = list(out["sets"])
    for k, (name, path) in enumerate(zip(names, args.data)):
        p = out["predictions"][name]
        if k:
            print()
        print(f"{path}: {p.n_structures} structures, {int(p.n_atoms.sum())} atoms; potential {args.potential}")
        print(format_table(out["sets"][name]))
        if format_per_structure(out["sets"][name]):
            print(format_per_structure(out["sets"][name]))
        if p.extrapolating_atoms is not None and p.extrapolating_atoms.any():
            n = int((p.extrapolating_atoms > 0).sum())
            print(f"note: {n} of {p.n_structures} structures have atoms outside the descriptor range "
                  f"seen in training ({int(p.extrapolating_atoms.sum())} atoms in all): the model extrapolates there")
    if out["detail"]:
        print(f"\nper-structure and per-atom predictions: {', '.join(map(str, out['detail']))}")
    if args.report:
        print(f"\nreport written to {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
