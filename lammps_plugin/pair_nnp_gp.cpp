// Pair style `nnp` with a sparse-GP potential: the GP's predictive standard
// deviation of each atomic energy, for compute nnp/atom gp (docs/gp.md,
// "Predictive variance"; the maths is nnp::GaussianProcess::variance).
#include "pair_nnp.h"

#include "atom.h"
#include "error.h"
#include "memory.h"

#include <algorithm>
#include <cmath>
#include <exception>

#include "nnp_lammps_error.h"

using namespace LAMMPS_NS;

std::string PairNNP::gp_std_error() const
{
  if (!have_potential_) return "pair_coeff has not read a potential file yet";
  if (committee_.size() != 1)
    return "the GP's predictive std is one potential's, but pair_coeff gives a committee of " +
           std::to_string(committee_.size()) + " files (its deviation: compute ID group nnp/atom)";
  const std::string bad = committee_.member(0).gp_variance_error();
  return bad.empty() ? "" : filenames_[0] + ": " + bad;
}

void PairNNP::grow_gp_std()
{
  if (atom->nmax > max_gp_std_) {
    max_gp_std_ = atom->nmax;
    memory->destroy(gp_std_atom_);
    memory->create(gp_std_atom_, max_gp_std_, "pair:nnp:gp_std_atom");
  }
  std::fill_n(gp_std_atom_, atom->nlocal, 0.0);
}

// Right after the centre's energy: with one potential, workspace_.x holds
// its scaled descriptor (Potential::model_energy), so no second descriptor pass.
void PairNNP::tally_gp_std(int i, int element, tagint id)
{
  try {
    const nnp::GaussianProcess &gp = committee_.member(0).element(element).gp;
    gp_std_atom_[i] = std::sqrt(gp.variance(workspace_.x.data(), gp_scratch_));
  } catch (std::exception &e) {
    NNP_ERROR_ONE("Pair style nnp: atom {}: {}", id, e.what());
  }
}
