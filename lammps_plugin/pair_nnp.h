/* Pair style `nnp`: Behler-Parrinello neural network potential.

     pair_style nnp [keyword value ...]
     pair_coeff * * FILE E1 E2 ... EN     (one chemical symbol per atom type,
                                           or NULL for a type nnp leaves to
                                           another style of pair_style hybrid)
   FILE is looked up in $LAMMPS_POTENTIALS when not found as given.

   Keywords (all optional):
     extrapolation warn [every N]   count atoms whose descriptors leave the
                                    training range [min, max] of the file; warn
                                    on rank 0, at most once every N steps
                                    (default: warn every 1000)
     extrapolation error N          stop with an error when more than N atoms
                                    extrapolate in one force evaluation
     extrapolation ignore           count only (no message)
     min_distance D                 stop with an error naming both atom IDs
                                    when two atoms are closer than D Angstrom
                                    (default 0.1; 0 disables the check)
   A non-finite energy or force always stops with an error naming the atom.

   Extrapolation count for thermo output: `compute ID all pair nnp` gives a
   vector (summed over MPI ranks):
     c_ID[1]  atoms extrapolating in the last force evaluation
     c_ID[2]  atom-evaluations extrapolating since pair_coeff (cumulative)
   and `extract("extrapolating_atoms")` (Python: lmp.extract_pair) returns
   c_ID[1] on every rank.

   A thin adaptor: the nnp core (cpp/) computes E_i and dE_i/dr_ij of every
   local atom from its neighbours in a LAMMPS full list; this class only
   gathers neighbours, scatters forces and tallies energy and virial.

   Conventions (see cpp/include/nnp/structure.h): r_ij = x_j - x_i,
   F_j -= dE_i/dr_ij, F_i += sum_j dE_i/dr_ij, virial W = -sum r_ij (x) dE_i/dr_ij,
   per-atom energy and virial of E_i both attributed to the centre atom i.
   Works with newton_pair on (ghost forces reverse-communicated by LAMMPS) and
   off (ghost forces reverse-communicated here, comm_reverse = 3). Requires
   units metal and dimension 3. */
#ifndef NNP_PAIR_NNP_H
#define NNP_PAIR_NNP_H

#include "pair.h"

#include <string>
#include <vector>

#include "nnp/potential.h"

namespace LAMMPS_NS {

class PairNNP : public Pair {
 public:
  PairNNP(class LAMMPS *);
  ~PairNNP() override;

  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;

  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;

  double memory_usage() override;
  void *extract(const char *, int &) override;

 protected:
  nnp::Potential potential_;
  bool have_potential_ = false;
  std::string filename_;
  std::vector<int> type_element_;  // atom type (1..ntypes) -> element index of potential_
  double cutoff_ = 0.0;

  // Neighbours of the current centre atom (structure of arrays); only grow.
  int max_neighbors_ = 0;
  std::vector<double> dx_, dy_, dz_, dE_dr_;
  std::vector<int> neighbor_element_, neighbor_index_;
  nnp::AtomWorkspace workspace_;

  // newton_pair off: forces on ghost atoms, reverse-communicated by compute().
  double **fghost_ = nullptr;
  int max_fghost_ = 0;

  // Options (pair_style keywords).
  enum class Extrapolation { Warn, Error, Ignore };
  Extrapolation extrapolation_ = Extrapolation::Warn;
  bigint warn_every_ = 1000;       // steps between two warnings
  bigint max_extrapolating_ = 0;   // `error N`: allowed per force evaluation
  double min_distance_ = 0.1;      // Angstrom

  // Extrapolation bookkeeping. pvector_ (this rank's counts, as `compute
  // pair` sums pvector over ranks): [0] last evaluation, [1] cumulative.
  double pvector_[2] = {0.0, 0.0};
  double extrapolating_global_ = 0.0;  // [0] summed over ranks (extract())
  bigint last_warning_step_ = -1;
  bool warned_ = false;
  bool zbl_warned_ = false;  // double ZBL core (hybrid/overlay ... zbl) reported

  void allocate();
  void warn_double_core();
  void check_units();
  void grow_neighbors(int n);
  void report_extrapolation(bigint local, tagint first_tag);
};

}  // namespace LAMMPS_NS

#endif
