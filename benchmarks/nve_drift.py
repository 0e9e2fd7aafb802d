"""Energy conservation of `pair_style nnp` in NVE molecular dynamics.

512 diamond Si atoms (4×4×4 cubic cells) started at 300 K (velocities for
2 × 300 K, which equipartition brings to about 300 K), 1 fs timestep, 10 ps
by default. Prints the drift of the total energy (slope of a linear fit) per
atom per ps, the RMS fluctuation around the fit, and the speed.

    python benchmarks/nve_drift.py [--potential examples/si/Si.nnp] [--ps 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import nnp.lammps

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--potential", default=str(REPO / "examples" / "si" / "Si.nnp"))
    p.add_argument("--cells", type=int, default=4, help="n×n×n cubic cells (default 4: 512 atoms)")
    p.add_argument("--temperature", type=float, default=300.0)
    p.add_argument("--ps", type=float, default=10.0, help="simulated time in ps (default 10)")
    p.add_argument("--timestep", type=float, default=0.001, help="ps (default 0.001)")
    p.add_argument("--sample", type=int, default=20, help="steps between energy samples")
    args = p.parse_args(argv)
    if not Path(args.potential).is_file():
        p.error(f"{args.potential} not found: train one first (bash examples/si/run.sh) or pass --potential")

    lmp = nnp.lammps.lammps(cmdargs=["-log", "none", "-screen", "none"])
    n = args.cells
    lmp.commands_string(
        f"""
        units metal
        atom_style atomic
        lattice diamond 5.43
        region box block 0 {n} 0 {n} 0 {n}
        create_box 1 box
        create_atoms 1 box
        mass 1 28.0855
        pair_style nnp
        pair_coeff * * {args.potential} Si
        timestep {args.timestep}
        velocity all create {2 * args.temperature} 8812 mom yes rot yes dist gaussian
        fix nve all nve
        thermo_style custom step temp pe etotal
        run 0
        """
    )
    natoms = lmp.get_natoms()
    steps = int(round(args.ps / args.timestep))
    times, energies, temps = [0.0], [lmp.get_thermo("etotal")], [lmp.get_thermo("temp")]
    t0 = time.perf_counter()
    for k in range(steps // args.sample):
        lmp.command(f"run {args.sample} pre no post no")
        times.append((k + 1) * args.sample * args.timestep)
        energies.append(lmp.get_thermo("etotal"))
        temps.append(lmp.get_thermo("temp"))
    seconds = time.perf_counter() - t0
    lmp.close()

    t, e = np.array(times), np.array(energies) / natoms
    slope, intercept = np.polyfit(t, e, 1)
    rms = np.sqrt(np.mean((e - (slope * t + intercept)) ** 2))
    print(f"NVE, {natoms} Si atoms, {args.ps:g} ps at {args.timestep * 1000:g} fs, potential {args.potential}")
    print(f"mean temperature             {np.mean(temps[len(temps) // 5:]):8.1f} K")
    print(f"energy drift                 {slope * 1e3:+.3e} meV/atom/ps")
    print(f"max |E(t) - E(0)|            {np.abs(e - e[0]).max() * 1e3:.3e} meV/atom")
    print(f"RMS fluctuation around fit   {rms * 1e3:.3e} meV/atom")
    print(f"speed                        {seconds / steps / natoms * 1e6:.1f} µs/atom/step ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
