// Structure-level operations on whole configurations (finite or periodic):
// energy/forces/virial and the training features. Sign conventions:
//   forces F_k = −∂E/∂r_k;
//   virial W = −Σ_i Σ_j r_ij ⊗ ∂E_i/∂r_ij (eV), the LAMMPS virial; the stress
//   (ASE convention, tension positive) is σ = −W/V;
//   per-atom virial: the terms of E_i are attributed to the centre atom i.
#pragma once
#include <array>
#include <vector>

#include "nnp/neighbor_list.h"
#include "nnp/potential.h"

namespace nnp {

struct Structure {
  int n_atoms = 0;
  const double* positions = nullptr;  // n × 3, Å
  const int* elements = nullptr;      // element index per atom (into the potential's list)
  Cell cell;
};

struct Evaluation {
  double energy = 0.0;
  std::vector<double> atom_energies;  // n
  std::vector<double> forces;         // n × 3
  std::array<double, 9> virial{};     // 3 × 3 row-major
  std::vector<double> atom_virials;   // n × 9 (only if requested)
  int extrapolating_atoms = 0;
};

Evaluation evaluate(const Potential& potential, const Structure& s, bool atom_virials = false);

// The GP's predictive variance of each E_i (eV², Potential::gp_variance);
// throws nnp::Error when the potential has none (Potential::gp_variance_error).
std::vector<double> gp_variances(const Potential& potential, const Structure& s);

// Training features of one structure for one centre element e:
//   G:          n_e × M_e descriptors of the atoms of element e (atom order)
//   atoms:      n_e indices of those atoms in the structure
//   pair_center: row of G (0..n_e−1) of each neighbour entry
//   pair_neighbor: atom index (0..n−1) of that neighbour's image
//   pair_vector: P × 3 vectors r_ij
//   dG_dr:      P × M_e × 3, ∂G_i/∂r_ij
struct ElementFeatures {
  std::vector<double> G;
  std::vector<int> atoms;
  std::vector<int> pair_center, pair_neighbor;
  std::vector<double> pair_vector;
  std::vector<double> dG_dr;
};

// One ElementFeatures per element of `descriptors` (indexed like it).
std::vector<ElementFeatures> featurize(const std::vector<Descriptor>& descriptors,
                                       const Structure& s, bool with_derivatives);

}  // namespace nnp
