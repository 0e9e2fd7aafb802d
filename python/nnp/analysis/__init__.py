"""Scoring potentials: error metrics and reports, materials properties in LAMMPS."""
