"""Units and conventions used across the package.

Everything is in LAMMPS metal units (eV, Å, ps, amu, bar); these are the
conversions to what reports print. Element data (symbols, atomic numbers,
masses) comes from `ase.data`, not from tables of our own.
"""

from __future__ import annotations

from ase import units as _ase_units

# 1 eV/Å³ in GPa (exactly 1/ase.units.GPa, CODATA 2014 as ASE).
EV_PER_A3_IN_GPA = 1.0 / _ase_units.GPa
BAR_IN_GPA = 1e-4
KBAR_IN_GPA = 0.1
ATM_IN_BAR = 1.01325
BOLTZMANN_EV = 8.617333262e-5  # eV/K (CODATA 2018, as LAMMPS metal units)
AMU_IN_G = 1.66053906660e-24

# Voigt order xx, yy, zz, yz, xz, xy (ASE's stress order): the 3 × 3
# indices of the six components that training and reports compare. LAMMPS
# orders its six as xx, yy, zz, xy, xz, yz (lammps_plugin/pair_nnp.cpp).
VOIGT_I = (0, 1, 2, 1, 0, 0)
VOIGT_J = (0, 1, 2, 2, 2, 1)
