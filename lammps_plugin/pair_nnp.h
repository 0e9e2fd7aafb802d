/* Pair style `nnp`: Behler-Parrinello neural network potential.

     pair_style nnp [keyword value ...]
     pair_coeff * * FILE [FILE ...] E1 E2 ... EN
                                          (one chemical symbol per atom type,
                                           or NULL for a type nnp leaves to
                                           another style of pair_style hybrid)
   FILE is looked up in $LAMMPS_POTENTIALS when not found as given. Several
   files make a committee (docs/lammps.md, "Committees and deviation"): the
   first file drives the dynamics (or their mean, `committee mean`) and the
   spread of the members' forces, energies and virials is reported.

   Keywords (all optional):
     extrapolation warn [every N]   count atoms whose descriptors leave the
                                    training range [min, max] of the file,
                                    widened by the margin below; warn
                                    on rank 0, at most once every N steps
                                    (default: warn every 1000)
     extrapolation error N          stop with an error when more than N atoms
                                    extrapolate in one force evaluation
     extrapolation ignore           count only (no message)
     extrapolation_margin M         widen each function's range by M times its
                                    width on both sides (default 0.1; 0: the
                                    bare range)
     min_distance D                 stop with an error naming both atom IDs
                                    when two atoms are closer than D Angstrom
                                    (default 0.1; 0 disables the check)
     committee first | mean         committee: the first file's energy and
                                    forces drive the dynamics (default), or
                                    the members' mean
     deviation FILE [every N]       committee: write DeePMD-style model_devi
                                    lines (step, max/min/avg virial deviation,
                                    max/min/avg force deviation, energy
                                    deviation per atom) every N steps (default 1)
   A non-finite energy or force always stops with an error naming the atom.

   Extrapolation count for thermo output: `compute ID all pair nnp` gives a
   vector (summed over MPI ranks):
     c_ID[1]  atoms extrapolating in the last force evaluation
     c_ID[2]  atom-evaluations extrapolating since pair_coeff (cumulative)
     c_ID[3..9]  committee deviations of the last evaluation that computed
              them (0 without a committee): max_devi_f min_devi_f avg_devi_f
              devi_e max_devi_v min_devi_v avg_devi_v (nnp/committee.h)
   Per atom, `compute ID all nnp/atom` (compute_nnp_atom.h): the force
   deviation eps_i and the atomic-energy deviation sigma_i.
   With a committee and `committee first`, the other members are evaluated
   only on steps that need the deviations: the deviation file's steps and
   steps where LAMMPS asks for energies (thermo output, compute pair, compute
   nnp/atom and other energy computes).
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

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "nnp/committee.h"

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

  // For compute nnp/atom: committee size, the step of the last evaluation
  // that computed the deviations (-1: none), and per local atom [eps_i, sigma_i].
  int committee_size() const { return have_potential_ ? committee_.size() : 0; }
  bigint deviation_step() const { return deviation_step_; }
  double **deviation_atom() const { return deviation_atom_; }
  // For compute nnp/atom gp (pair_nnp_gp.cpp): "" when the potential gives
  // the GP's predictive std per atom, else why not; once requested, it is
  // computed on the steps LAMMPS asks for per-atom energies (eflag_atom).
  std::string gp_std_error() const;
  void request_gp_std() { gp_std_requested_ = true; }
  bigint gp_std_step() const { return gp_std_step_; }
  const double *gp_std_atom() const { return gp_std_atom_; }

 protected:
  nnp::Committee committee_;  // one member without a committee
  bool have_potential_ = false;
  std::vector<std::string> filenames_;
  std::vector<int> type_element_;  // atom type (1..ntypes) -> element index of the potential
  double cutoff_ = 0.0;

  // Neighbours of the current centre atom (structure of arrays); only grow.
  int max_neighbors_ = 0;
  std::vector<double> dx_, dy_, dz_, dE_dr_;
  std::vector<int> neighbor_element_, neighbor_index_;
  nnp::AtomWorkspace workspace_;
  // Per member of the current centre atom: E_i^k, gradients (K blocks of
  // 3 * max_neighbors_), extrapolation flags.
  std::vector<double> member_energy_, member_dE_dr_;
  std::unique_ptr<bool[]> member_outside_;
  std::vector<double> member_energy_sum_, member_virial_;  // K, K x 9 (this rank's centres)

  // newton_pair off: forces on ghost atoms, reverse-communicated by compute().
  double **fghost_ = nullptr;
  int max_fghost_ = 0;

  // Options (pair_style keywords).
  enum class Extrapolation { Warn, Error, Ignore };
  Extrapolation extrapolation_ = Extrapolation::Warn;
  bigint warn_every_ = 1000;       // steps between two warnings
  bigint max_extrapolating_ = 0;   // `error N`: allowed per force evaluation
  double min_distance_ = 0.1;      // Angstrom
  double extrapolation_margin_ = nnp::kDefaultExtrapolationMargin;  // fraction of the training range

  enum class Drive { First, Mean };
  Drive drive_ = Drive::First;
  std::string deviation_file_;  // empty: no model_devi file
  bigint deviation_every_ = 1;

  // Extrapolation bookkeeping. pvector_ (this rank's counts, as `compute
  // pair` sums pvector over ranks): [0] last evaluation, [1] cumulative;
  // [2..8] the committee's DeviationSummary, on rank 0 only (0 elsewhere),
  // so that the sum over ranks is the value.
  static constexpr int kPvectorSize = 9;
  double pvector_[kPvectorSize] = {0.0};
  double extrapolating_global_ = 0.0;  // [0] summed over ranks (extract())
  bigint last_warning_step_ = -1;
  bool warned_ = false;
  bool zbl_warned_ = false;  // double ZBL core (hybrid/overlay ... zbl) reported

  // Committee deviation: per-member forces of local and ghost atoms
  // ([atom][3k + xyz], reverse-communicated one member at a time:
  // comm_member_ >= 0; -1 for fghost_), per-atom deviations, model_devi file.
  double **member_f_ = nullptr;
  double **deviation_atom_ = nullptr;
  int max_member_f_ = 0;
  int comm_member_ = -1;
  bigint deviation_step_ = -1;
  bigint last_written_step_ = -1;
  FILE *deviation_fp_ = nullptr;  // rank 0
  nnp::DeviationSummary deviation_;

  // GP std per local atom (eV) of the last evaluation that computed it.
  bool gp_std_requested_ = false;
  double *gp_std_atom_ = nullptr;
  int max_gp_std_ = 0;
  bigint gp_std_step_ = -1;
  std::vector<double> gp_scratch_, gp_variance_;
  std::vector<std::vector<double>> gp_x_;  // per element: scaled descriptors of its local atoms
  std::vector<std::vector<int>> gp_atoms_;  // per element: those atoms
  void grow_gp_std();
  void tally_gp_std(int i, int element);
  void finish_gp_std();

  void allocate();
  void warn_double_core();
  void check_units();
  void grow_neighbors(int n);
  void report_extrapolation(bigint local, tagint first_tag);
  std::string model_files() const;  // the file(s) driving the dynamics, for messages
  std::string read_potential_text(const std::string &filename);
  bool deviation_wanted(int eflag) const;
  void grow_member_forces(int K);
  void tally_member_forces(int K, int i, int n);
  void finish_deviation(int K);
  void write_deviation();
};

}  // namespace LAMMPS_NS

#endif
