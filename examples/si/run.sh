#!/usr/bin/env bash
# The main job: train a Si potential on the bundled DFT data (default model:
# 64 symmetry functions, 2x30 networks and a quadratic term), then run LAMMPS NPT at 300 K, 1 atm,
# 1 fs on 512 atoms and print the lattice constant and density.
# An existing Si.nnp is reused, never overwritten: delete it to retrain.
# An interrupted training (Si.nnp.ckpt or Si.nnp.holdout.ckpt left behind) is resumed.
set -euo pipefail
cd "$(dirname "$0")"
if [ -e Si.nnp ]; then
  echo "Si.nnp exists: using it (delete it to train a new one)"
else
  args=(--data data/train.xyz --output Si.nnp)
  if [ -e Si.nnp.ckpt ] || [ -e Si.nnp.holdout.ckpt ]; then
    args+=(--resume)
  fi
  if [ -e report ] && [ -n "$(ls -A report)" ]; then
    echo "report/ exists: not writing a new training report (delete it to get one)"
  else
    args+=(--report report)
  fi
  python -m nnp.train "${args[@]}"
fi
python npt.py --potential Si.nnp "$@"
