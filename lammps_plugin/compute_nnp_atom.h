/* Compute style `nnp/atom`: the committee deviation of pair style nnp per
   atom, or the predictive std of a sparse-GP potential per atom.

     compute ID group nnp/atom
     compute ID group nnp/atom gp

   A per-atom array of two columns for dump custom and friends (c_ID[1],
   c_ID[2]); 0 for atoms outside the group or of a type nnp does not handle:
     [1]  eps_i   = sqrt(<|F_i^k - <F_i>|^2>)  force deviation (eV/Angstrom)
     [2]  sigma_i = sqrt(<(E_i^k - <E_i>)^2>)  atomic-energy deviation (eV)
   (averages over the K members of `pair_coeff * * A.nnp B.nnp ...`;
   nnp/committee.h). Needs pair style nnp (alone or in hybrid) with a
   committee. Declaring itself a per-atom energy compute makes LAMMPS tell
   the pair style on which steps it is wanted (eflag_atom), so those steps
   evaluate every member.
   With `gp`: a per-atom vector (c_ID), the GP's predictive standard
   deviation of E_i in eV (docs/gp.md, "Predictive variance"); needs one
   potential file whose elements all have a GP with a `gp_variance` section
   (format version 7). */
#ifndef NNP_COMPUTE_NNP_ATOM_H
#define NNP_COMPUTE_NNP_ATOM_H

#include "compute.h"

namespace LAMMPS_NS {

class PairNNP;

class ComputeNNPAtom : public Compute {
 public:
  ComputeNNPAtom(class LAMMPS *, int, char **);
  ~ComputeNNPAtom() override;
  void init() override;
  void compute_peratom() override;
  double memory_usage() override;

 private:
  PairNNP *pair_ = nullptr;
  bool gp_ = false;  // `gp`: the GP std, else the committee deviations
  int nmax_ = 0;
  double **deviation_ = nullptr;
  double *gp_std_ = nullptr;
  void compute_gp_std();
};

}  // namespace LAMMPS_NS

#endif
