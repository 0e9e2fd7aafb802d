// A committee: K potentials over the same elements (e.g. the members of
// `python -m nnp.train --ensemble K`) evaluated together, and the spread of
// their predictions (the "model deviation" of DeePMD-kit, used to decide
// which structures to label in active learning).
//
// Sharing: members whose descriptors of an element are identical (functions,
// cutoff function, angular sum; the default for --ensemble members) share one
// descriptor pass per atom: G is computed once, then each member runs its
// regressor (Potential::model_energy: E_i^k and ∂E_i^k/∂G) and the gradient
// pass (Descriptor::accumulate_gradient on the prepared neighbourhood).
// Members with other descriptors get their own pass.
//
// Deviations (K members, averages ⟨·⟩ over members, population variance,
// i.e. divided by K, as DeePMD-kit's model_devi):
//   force, per atom:   ε_i = sqrt(⟨|F_i^k − ⟨F_i⟩|²⟩)                 (eV/Å)
//   atomic energy:     σ_i = sqrt(⟨(E_i^k − ⟨E_i⟩)²⟩)                  (eV)
//   energy per atom:   devi_e = sqrt(⟨(E^k − ⟨E⟩)²⟩) / N, E^k = Σ_i E_i^k (eV)
//   virial:            s_ab = sqrt(⟨(W_ab^k − ⟨W_ab⟩)²⟩) / N over the 9
//                      components of W = −Σ r_ij ⊗ ∂E_i/∂r_ij (eV);
//                      max_devi_v = max_ab s_ab, min_devi_v = min_ab s_ab,
//                      avg_devi_v = sqrt(Σ_ab s_ab²) / 3
// with N the number of atoms the potential handles.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "nnp/potential.h"
#include "nnp/structure.h"

namespace nnp {

class Committee {
 public:
  Committee() = default;
  // Members must have the same elements in the same order (throws nnp::Error
  // naming the first member that differs); `names` (optional, one per
  // member) only serve the messages.
  explicit Committee(std::vector<Potential> members, const std::vector<std::string>& names = {});

  int size() const { return static_cast<int>(members_.size()); }
  const Potential& member(int k) const { return members_[k]; }
  Potential& member(int k) { return members_[k]; }
  const std::vector<ElementModel>& elements() const { return members_.front().elements(); }
  int n_elements() const { return members_.front().n_elements(); }
  int element_index(const std::string& symbol) const { return members_.front().element_index(symbol); }
  double cutoff() const { return cutoff_; }  // largest of the members'
  // Descriptor passes per atom of element `element` for the first n members.
  int descriptor_passes(int element, int n) const;

  // E_i^k of one atom for the first n members (energies[k]), each member's
  // gradient accumulated into dE_dr + k * stride (as Potential::atom_energy:
  // ∂E_i^k/∂r_ij, stride ≥ 3 · nb.count), and extrapolating[k] if given.
  void atom_energies(int element, const NeighborView& nb, int n, double* energies, double* dE_dr,
                     std::size_t stride, AtomWorkspace& ws, bool* extrapolating = nullptr) const;

 private:
  std::vector<Potential> members_;
  // groups_[e]: the members sharing one descriptor of element e, ascending.
  std::vector<std::vector<std::vector<int>>> groups_;
  double cutoff_ = 0.0;
};

// True when two descriptors compute the same values (same functions in the
// same order, cutoff function and angular sum); `symbols`: the elements.
bool same_descriptor(const Descriptor& a, const Descriptor& b, const std::vector<std::string>& symbols);

// ε = sqrt(⟨|v^k − ⟨v⟩|²⟩) of K vectors of `dim` components, v^k at
// values + k * stride.
double member_deviation(int K, const double* values, std::size_t stride, int dim);

// The per-step numbers (docs/lammps.md, "Committees and deviation").
struct DeviationSummary {
  double max_f = 0, min_f = 0, avg_f = 0;  // over atoms of ε_i
  double devi_e = 0;                       // per atom
  double max_v = 0, min_v = 0, avg_v = 0;  // over the 9 virial components, per atom
};

// From the reduced per-atom force deviations (max, min, sum over n_atoms
// atoms), the members' total energies (K) and virials (K × 9, row-major).
DeviationSummary summarize_deviation(int K, double max_f, double min_f, double sum_f, double n_atoms,
                                     const double* energies, const double* virials);

// Every member on one structure (the structure-level evaluation of
// nnp/structure.h, for each member), with the deviations.
struct CommitteeEvaluation {
  int n_members = 0;
  std::vector<double> energies;          // K
  std::vector<double> atom_energies;     // K × n
  std::vector<double> forces;            // K × n × 3
  std::vector<double> virials;           // K × 9
  std::vector<double> atom_virials;      // K × n × 9 (only if requested)
  std::vector<int> extrapolating_atoms;  // K
  std::vector<char> extrapolating;       // K × n: 1 where the member extrapolates
  std::vector<double> force_deviation;   // n: ε_i
  std::vector<double> energy_deviation;  // n: σ_i
  DeviationSummary summary;
};

CommitteeEvaluation evaluate(const Committee& committee, const Structure& s, bool atom_virials = false);

}  // namespace nnp
