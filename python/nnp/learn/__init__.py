"""Active learning: a committee's deviation in LAMMPS MD picks the frames to
label with pw.x (`nnp learn`; docs/active-learning.md)."""
