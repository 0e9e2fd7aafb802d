"""DFT training data: ab-initio molecular dynamics with Quantum Espresso.

    python -m nnp.dft aimd --protocol crystal|liquid|melt-quench --output frames.xyz
        [--structure FILE | --lattice A --repeat NX NY NZ] [--steps N] [--timestep FS]
        [--frame-interval FS] [--ecutwfc RY] [--kpts K K K | --gamma] [--continue] [--force]

ASE runs Langevin (NVT) molecular dynamics; every MD step is one single-point
`pw.x` calculation (GGA-PBE with the pseudopotential given, by default
Debian's `/usr/share/espresso/pseudo/Si.pbe-rrkj.UPF`) through
`ase.calculators.espresso`. Every `frame_interval` the structure with its DFT
energy, forces and stress (and the momenta, for continuing) is appended to an
extended-XYZ file and flushed to disk, so a killed run keeps every frame it
finished, and `--continue` resumes the trajectory from the last one.

Protocols (the study's, docs/science.md): crystal at 500 K, liquid at 2000 K,
melt-quench cooling from 2000 K to 300 K at 70 K/ps (the thermostat target
follows the ramp; after it the run stays at 300 K), a frame every 20 fs.

Each frame's `info` records the protocol, step, time and target temperature
and the DFT settings; `--continue` refuses to mix settings in one file.
"""

from nnp.dft.aimd import (
    DEFAULT_PSEUDO_DIR,
    DEFAULT_PSEUDOPOTENTIALS,
    DEFAULT_STEPS,
    INSTALL_HINT,
    PROTOCOLS,
    SI_LATTICE_PBE,
    DFTError,
    MDSettings,
    Protocol,
    QESettings,
    RunSummary,
    _qe_error,
    append_frame,
    complete_frames_length,
    labelled_frame,
    run_aimd,
    thermal_momenta,
)
from nnp.dft.cli import main, parse_args, settings_from_args

__all__ = [
    "DEFAULT_PSEUDO_DIR", "DEFAULT_PSEUDOPOTENTIALS", "DEFAULT_STEPS", "INSTALL_HINT", "PROTOCOLS",
    "SI_LATTICE_PBE", "DFTError", "MDSettings", "Protocol", "QESettings", "RunSummary", "append_frame",
    "complete_frames_length", "labelled_frame", "run_aimd", "thermal_momenta", "main", "parse_args",
    "settings_from_args",
]
