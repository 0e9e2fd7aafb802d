/* Pair style `nnp`: Behler-Parrinello neural network potential.

     pair_style nnp
     pair_coeff * * FILE E1 E2 ... EN     (one chemical symbol per atom type)

   A thin adaptor: the nnp core (cpp/) computes E_i and dE_i/dr_ij of every
   local atom from its neighbours in a LAMMPS full list; this class only
   gathers neighbours, scatters forces and tallies energy and virial.

   Conventions (see cpp/include/nnp/structure.h): r_ij = x_j - x_i,
   F_j -= dE_i/dr_ij, F_i += sum_j dE_i/dr_ij, virial W = -sum r_ij (x) dE_i/dr_ij,
   per-atom energy and virial of E_i both attributed to the centre atom i.
   Works with newton_pair on (ghost forces reverse-communicated by LAMMPS) and
   off (ghost forces reverse-communicated here, comm_reverse = 3). Requires
   units metal. */
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

  void allocate();
  void check_units();
  void grow_neighbors(int n);
};

}  // namespace LAMMPS_NS

#endif
