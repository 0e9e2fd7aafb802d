// Compute style `nnp/atom` (see compute_nnp_atom.h): copies pair nnp's
// per-atom committee deviation, or with `gp` its GP std, of the current step.
#include "compute_nnp_atom.h"

#include "atom.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "update.h"

#include <string>

#include "nnp_lammps_error.h"
#include "pair_nnp.h"

using namespace LAMMPS_NS;

ComputeNNPAtom::ComputeNNPAtom(LAMMPS *lmp, int narg, char **arg) : Compute(lmp, narg, arg)
{
  gp_ = narg == 4 && std::string(arg[3]) == "gp";
  if (narg != 3 && !gp_)
    NNP_ERROR_ALL("Illegal compute nnp/atom command: expected 'compute ID group nnp/atom' (committee "
                  "deviations) or 'compute ID group nnp/atom gp' (the GP's std per atom)");
  peratom_flag = 1;
  size_peratom_cols = gp_ ? 0 : 2;
  // As compute pe/atom: LAMMPS then sets eflag_atom on the steps this compute
  // is invoked, and pair nnp evaluates every member there.
  peatomflag = 1;
  timeflag = 1;
}

ComputeNNPAtom::~ComputeNNPAtom()
{
  memory->destroy(deviation_);
  memory->destroy(gp_std_);
}

void ComputeNNPAtom::init()
{
  pair_ = dynamic_cast<PairNNP *>(force->pair_match("nnp", 1));
  if (!pair_)
    NNP_ERROR_ALL("Compute nnp/atom needs pair style nnp (alone or as one sub-style of pair_style hybrid)");
  if (gp_) {
    const std::string bad = pair_->gp_std_error();
    if (!bad.empty()) NNP_ERROR_ALL("Compute nnp/atom gp: {}", bad);
    pair_->request_gp_std();
    return;
  }
  if (pair_->committee_size() < 2)
    NNP_ERROR_ALL("Compute nnp/atom needs a committee: give several potential files in pair_coeff "
                  "(pair_coeff * * A.nnp B.nnp ... E1 ... EN), got {}",
                  pair_->committee_size());
}

void ComputeNNPAtom::compute_peratom()
{
  invoked_peratom = update->ntimestep;
  if (gp_) {
    compute_gp_std();
    return;
  }
  if (pair_->deviation_step() != update->ntimestep)
    NNP_ERROR_ALL("Compute nnp/atom: the committee deviation was not computed on step {} (last on "
                  "step {}); use the compute only in output on steps where it is invoked (dump, "
                  "thermo, fix ave/*), which tells pair nnp to compute it",
                  update->ntimestep, pair_->deviation_step());
  if (atom->nmax > nmax_) {
    memory->destroy(deviation_);
    nmax_ = atom->nmax;
    memory->create(deviation_, nmax_, 2, "nnp/atom:deviation");
    array_atom = deviation_;
  }
  double **source = pair_->deviation_atom();
  const int *mask = atom->mask;
  for (int i = 0; i < atom->nlocal; i++) {
    const bool in = (mask[i] & groupbit) != 0;
    deviation_[i][0] = in ? source[i][0] : 0.0;
    deviation_[i][1] = in ? source[i][1] : 0.0;
  }
}

void ComputeNNPAtom::compute_gp_std()
{
  if (pair_->gp_std_step() != update->ntimestep)
    NNP_ERROR_ALL("Compute nnp/atom gp: the GP std was not computed on step {} (last on step {}); use the "
                  "compute only in output on steps where it is invoked (dump, thermo, fix ave/*), which "
                  "tells pair nnp to compute it",
                  update->ntimestep, pair_->gp_std_step());
  if (atom->nmax > nmax_) {
    memory->destroy(gp_std_);
    nmax_ = atom->nmax;
    memory->create(gp_std_, nmax_, "nnp/atom:gp_std");
    vector_atom = gp_std_;
  }
  const double *source = pair_->gp_std_atom();
  const int *mask = atom->mask;
  for (int i = 0; i < atom->nlocal; i++) gp_std_[i] = (mask[i] & groupbit) ? source[i] : 0.0;
}

double ComputeNNPAtom::memory_usage()
{
  return (gp_ ? 1.0 : 2.0) * sizeof(double) * nmax_;
}
