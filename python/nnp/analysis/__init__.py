"""Scoring potentials.

  metrics     predictions on labelled structures, error metrics and tables
  plots       parity plots and learning curves
  report      a report directory: metrics.json, figures, report.md
  properties  materials properties in LAMMPS (lattice, elastic constants, MD)
"""
