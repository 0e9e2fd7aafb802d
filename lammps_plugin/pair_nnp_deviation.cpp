// Pair style `nnp` with a committee (several potential files): the members'
// forces, energies and virials and their deviation (nnp/committee.h for the
// definitions; docs/lammps.md, "Committees and deviation").
#include "pair_nnp.h"

#include "atom.h"
#include "comm.h"
#include "memory.h"
#include "update.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "nnp_lammps_error.h"

using namespace LAMMPS_NS;

std::string PairNNP::model_files() const
{
  if (drive_ == Drive::First || filenames_.size() < 2) return filenames_.empty() ? "" : filenames_[0];
  std::string out;
  for (const auto &name : filenames_) out += (out.empty() ? "" : ", ") + name;
  return out;
}

// The members beyond the driving one cost a descriptor-sharing pass each:
// evaluate them on the deviation file's steps and where LAMMPS asks for
// energies (thermo, compute pair, compute nnp/atom, ...), which is where
// the deviations can be read.
bool PairNNP::deviation_wanted(int eflag) const
{
  if (drive_ == Drive::Mean || eflag) return true;
  const bigint step = update->ntimestep;
  return !deviation_file_.empty() && step % deviation_every_ == 0 && step != last_written_step_;
}

void PairNNP::grow_member_forces(int K)
{
  const int cols = 3 * K;
  if (atom->nmax > max_member_f_ || !member_f_ || member_virial_.size() != 9 * static_cast<std::size_t>(K)) {
    max_member_f_ = std::max(max_member_f_, atom->nmax);
    memory->destroy(member_f_);
    memory->destroy(deviation_atom_);
    memory->create(member_f_, max_member_f_, cols, "pair:nnp:member_f");
    memory->create(deviation_atom_, max_member_f_, 2, "pair:nnp:deviation_atom");
  }
  const int nall = atom->nlocal + atom->nghost;
  if (nall > 0) std::fill_n(&member_f_[0][0], static_cast<std::size_t>(nall) * cols, 0.0);
  if (atom->nlocal > 0) std::fill_n(&deviation_atom_[0][0], 2 * static_cast<std::size_t>(atom->nlocal), 0.0);
  member_energy_sum_.assign(K, 0.0);
  member_virial_.assign(9 * static_cast<std::size_t>(K), 0.0);
}

// Centre i with its n gathered neighbours: every member's forces (local and
// ghost atoms; ghosts reverse-communicated by finish_deviation), virial
// W^k = -sum r_ij (x) dE_i^k/dr_ij, energy, and sigma_i of E_i^k.
void PairNNP::tally_member_forces(int K, int i, int n)
{
  const std::size_t stride = 3 * static_cast<std::size_t>(n);
  for (int k = 0; k < K; k++) {
    const double *g = member_dE_dr_.data() + k * stride;
    double *w = member_virial_.data() + 9 * k;
    double *fi = member_f_[i] + 3 * k;
    for (int m = 0; m < n; m++) {
      double *fj = member_f_[neighbor_index_[m]] + 3 * k;
      const double r[3] = {dx_[m], dy_[m], dz_[m]};
      for (int a = 0; a < 3; a++) {
        fj[a] -= g[3 * m + a];
        fi[a] += g[3 * m + a];
        for (int b = 0; b < 3; b++) w[3 * a + b] -= r[a] * g[3 * m + b];
      }
    }
    member_energy_sum_[k] += member_energy_[k];
  }
  deviation_atom_[i][1] = nnp::member_deviation(K, member_energy_.data(), 1, 1);
}

// Collective: reverse-communicates the members' ghost forces, computes eps_i
// of the local atoms and reduces everything over ranks.
void PairNNP::finish_deviation(int K)
{
  for (comm_member_ = 0; comm_member_ < K; comm_member_++) {
#ifdef NNP_LAMMPS_HAS_REVERSE_COMM_PAIR
    comm->reverse_comm_pair(this);
#else
    comm->reverse_comm(this);
#endif
  }
  comm_member_ = -1;

  const int *type = atom->type;
  double max_f = 0.0, min_f = HUGE_VAL;
  // sums: [0] sum of eps_i, [1] atoms, [2, 2 + K) energies, then K x 9 virials
  std::vector<double> local(2 + 10 * static_cast<std::size_t>(K), 0.0), global(local.size());
  for (int i = 0; i < atom->nlocal; i++) {
    if (type_element_[type[i]] < 0) continue;
    const double eps = nnp::member_deviation(K, member_f_[i], 3, 3);
    deviation_atom_[i][0] = eps;
    max_f = std::max(max_f, eps);
    min_f = std::min(min_f, eps);
    local[0] += eps;
    local[1] += 1.0;
  }
  std::copy(member_energy_sum_.begin(), member_energy_sum_.end(), local.begin() + 2);
  std::copy(member_virial_.begin(), member_virial_.end(), local.begin() + 2 + K);
  MPI_Allreduce(local.data(), global.data(), static_cast<int>(local.size()), MPI_DOUBLE, MPI_SUM, world);
  double max_all = 0.0, min_all = 0.0;
  MPI_Allreduce(&max_f, &max_all, 1, MPI_DOUBLE, MPI_MAX, world);
  MPI_Allreduce(&min_f, &min_all, 1, MPI_DOUBLE, MPI_MIN, world);
  deviation_ = nnp::summarize_deviation(K, max_all, min_all, global[0], global[1], global.data() + 2,
                                        global.data() + 2 + K);
  const double values[7] = {deviation_.max_f, deviation_.min_f, deviation_.avg_f, deviation_.devi_e,
                            deviation_.max_v, deviation_.min_v, deviation_.avg_v};
  for (int c = 0; c < 7; c++) pvector_[2 + c] = comm->me == 0 ? values[c] : 0.0;
  deviation_step_ = update->ntimestep;

  const bigint step = update->ntimestep;
  if (!deviation_file_.empty() && step % deviation_every_ == 0 && step != last_written_step_) {
    write_deviation();
    last_written_step_ = step;
  }
}

// One model_devi line (rank 0), flushed so that a killed run keeps it.
void PairNNP::write_deviation()
{
  if (comm->me != 0 || !deviation_fp_) return;
  const nnp::DeviationSummary &d = deviation_;
  fprintf(deviation_fp_, "%12lld %18.10e %18.10e %18.10e %18.10e %18.10e %18.10e %18.10e\n",
          static_cast<long long>(update->ntimestep), d.max_v, d.min_v, d.avg_v, d.max_f, d.min_f, d.avg_f,
          d.devi_e);
  fflush(deviation_fp_);
}
