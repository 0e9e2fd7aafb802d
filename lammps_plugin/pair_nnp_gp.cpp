// Pair style `nnp` with a sparse-GP potential: the GP's predictive standard
// deviation of each atomic energy, for compute nnp/atom gp (docs/gp.md,
// "Predictive variance"; the maths is nnp::GaussianProcess::variance).
#include "pair_nnp.h"

#include "atom.h"
#include "error.h"
#include "memory.h"
#include "update.h"

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
  gp_x_.resize(committee_.n_elements());
  gp_atoms_.resize(committee_.n_elements());
  for (auto &x : gp_x_) x.clear();
  for (auto &a : gp_atoms_) a.clear();
}

// Right after the centre's energy: with one potential, workspace_.x holds
// its scaled descriptor (Potential::model_energy), so no second descriptor
// pass; the variances are computed per element at the end of the step.
void PairNNP::tally_gp_std(int i, int element)
{
  gp_x_[element].insert(gp_x_[element].end(), workspace_.x.begin(), workspace_.x.end());
  gp_atoms_[element].push_back(i);
}

void PairNNP::finish_gp_std()
{
  for (int e = 0; e < static_cast<int>(gp_x_.size()); e++) {
    const std::vector<int> &atoms = gp_atoms_[e];
    gp_variance_.resize(atoms.size());
    try {
      committee_.member(0).element(e).gp.variances(gp_x_[e].data(), static_cast<int>(atoms.size()),
                                                   gp_variance_.data(), gp_scratch_);
    } catch (std::exception &err) {
      NNP_ERROR_ONE("Pair style nnp: the GP std of element {}: {}", committee_.elements()[e].symbol, err.what());
    }
    for (std::size_t q = 0; q < atoms.size(); q++) gp_std_atom_[atoms[q]] = std::sqrt(gp_variance_[q]);
  }
  gp_std_step_ = update->ntimestep;
}
