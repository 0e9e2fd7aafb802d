"""NPT molecular dynamics of diamond Si with `pair_style nnp` in LAMMPS.

Runs the study's protocol (300 K, 1 atm, 1 fs) on an n×n×n supercell of the
8-atom cubic cell (n = 4: 512 atoms) and prints the equilibrium lattice
constant and density, averaged over the production part of the run.

    python npt.py --potential Si.nnp [--cells 4] [--equilibrate 2000] [--steps 8000]
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

import nnp.lammps
from nnp.analysis.properties import SILICON_MASS as SI_MASS
from nnp.constants import AMU_IN_G as AMU_G
from nnp.constants import ATM_IN_BAR  # LAMMPS metal pressure unit is bar


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--potential", default="Si.nnp", help="potential file (default: Si.nnp)")
    p.add_argument("--cells", type=int, default=4, help="supercell of the cubic 8-atom cell (default 4: 512 atoms)")
    p.add_argument("--lattice", type=float, default=5.43, help="starting lattice constant in Å (default 5.43)")
    p.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    p.add_argument("--pressure", type=float, default=1.0, help="atm (default 1)")
    p.add_argument("--timestep", type=float, default=0.001, help="ps (default 0.001 = 1 fs)")
    p.add_argument("--equilibrate", type=int, default=2000, help="equilibration steps (default 2000)")
    p.add_argument("--steps", type=int, default=8000, help="production steps (default 8000)")
    p.add_argument("--sample", type=int, default=10, help="sampling interval in steps (default 10)")
    p.add_argument("--seed", type=int, default=4928459)
    args = p.parse_args(argv)
    if args.cells < 1 or args.steps < args.sample or args.sample < 1 or args.equilibrate < 0:
        p.error("need --cells >= 1, --sample >= 1, --steps >= --sample, --equilibrate >= 0")

    lmp = nnp.lammps.lammps(cmdargs=["-log", "none", "-screen", "none"])
    n = args.cells
    bar = args.pressure * ATM_IN_BAR
    lmp.commands_string(
        f"""
        units metal
        atom_style atomic
        boundary p p p
        lattice diamond {args.lattice}
        region box block 0 {n} 0 {n} 0 {n}
        create_box 1 box
        create_atoms 1 box
        mass 1 {SI_MASS}
        pair_style nnp
        pair_coeff * * {args.potential} Si
        timestep {args.timestep}
        velocity all create {args.temperature} {args.seed} mom yes rot yes dist gaussian
        fix npt all npt temp {args.temperature} {args.temperature} {100 * args.timestep} iso {bar} {bar} {1000 * args.timestep}
        thermo_style custom step temp press vol pe
        """
    )
    natoms = lmp.get_natoms()
    print(f"{natoms} Si atoms, NPT at {args.temperature:g} K and {args.pressure:g} atm, "
          f"timestep {args.timestep * 1000:g} fs, potential {args.potential}")

    t0 = time.perf_counter()
    lmp.command(f"run {args.equilibrate}")
    volumes, temps, presses = [], [], []
    chunk = max(args.sample, args.steps // 20)
    done = 0
    while done < args.steps:
        todo = min(chunk, args.steps - done)
        for _ in range(todo // args.sample):
            lmp.command(f"run {args.sample} pre no post no")
            volumes.append(lmp.get_thermo("vol"))
            temps.append(lmp.get_thermo("temp"))
            presses.append(lmp.get_thermo("press"))
        done += todo - todo % args.sample
        elapsed = time.perf_counter() - t0
        a_now = (np.mean(volumes) / n**3) ** (1 / 3)
        print(f"  step {args.equilibrate + done:7d}  T = {np.mean(temps[-10:]):6.1f} K  "
              f"<a> = {a_now:.4f} Å  ({elapsed:.0f} s)", flush=True)
        if todo < args.sample:
            break
    seconds = time.perf_counter() - t0
    lmp.close()

    v = np.array(volumes)
    a = (v / n**3) ** (1 / 3)
    density = natoms * SI_MASS * AMU_G / (v.mean() * 1e-24)
    # Error of the mean from block averages (10 blocks) of the correlated series.
    blocks = np.array_split(a, 10)
    a_err = np.std([b.mean() for b in blocks], ddof=1) / math.sqrt(len(blocks))
    steps_total = args.equilibrate + args.steps
    print()
    print(f"lattice constant  a = {a.mean():.4f} ± {a_err:.1e} Å   (DFT-PBE 5.469, experiment 5.431)")
    print(f"density           ρ = {density:.4f} g/cm³")
    print(f"temperature      <T> = {np.mean(temps):.1f} K, <P> = {np.mean(presses) / ATM_IN_BAR:.0f} atm")
    print(f"{steps_total} steps in {seconds:.1f} s: "
          f"{seconds / steps_total / natoms * 1e6:.1f} µs/atom/step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
