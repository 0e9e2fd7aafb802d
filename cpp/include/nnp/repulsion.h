// Optional short-range repulsive core: the universal ZBL screened Coulomb
// pair energy, switched off smoothly between r_inner and r_outer, so that MD
// cannot push atoms together where the network was never trained
// (docs/potential-format.md, `repulsion zbl`).
//
//   E_rep(r) = ZBL(r) · S(r),  ZBL(r) = k_e Z_a Z_b / r · φ(r/a),
//   a = 0.8854 · a_0 / (Z_a^0.23 + Z_b^0.23),
//   S = 1 (r ≤ r_inner), 0 (r ≥ r_outer), 1 − (10x³ − 15x⁴ + 6x⁵) between,
//   x = (r − r_inner)/(r_outer − r_inner)  (C2 at both ends).
//
// Potential::atom_energy adds ½ E_rep of every pair to each of its two atoms,
// so every caller (whole-structure evaluation, the LAMMPS pair style with its
// full neighbour list) gets the repulsion, its forces and virial for free.
#pragma once
#include <string>
#include <vector>

namespace nnp {

// Atomic number of a chemical symbol (H..Og), or 0 if it is not one.
int atomic_number(const std::string& symbol);

// Unswitched ZBL energy (eV) of two nuclei Z_a, Z_b at distance r (Å), and
// its derivative dE/dr.
double zbl_energy(double z_a, double z_b, double r, double* dE_dr);

// S(r) and dS/dr.
double repulsion_switch(double r, double r_inner, double r_outer, double* dS_dr);

// One element pair with a core, as in the file (element indices).
struct RepulsionPair {
  int element_a = 0, element_b = 0;
  double r_inner = 0.0, r_outer = 0.0;
};

class Repulsion {
 public:
  Repulsion() = default;
  // `atomic_numbers` per element of the potential; checks the pairs.
  Repulsion(std::vector<RepulsionPair> pairs, const std::vector<int>& atomic_numbers);

  bool empty() const { return pairs_.empty(); }
  const std::vector<RepulsionPair>& pairs() const { return pairs_; }

  // E_rep(r) of elements a and b and dE_rep/dr; 0 beyond r_outer or for a
  // pair without a core.
  double energy(int a, int b, double r, double* dE_dr) const {
    const Entry& t = table_[static_cast<std::size_t>(a) * n_elements_ + b];
    if (!t.active || !(r < t.r_outer)) {
      *dE_dr = 0.0;
      return 0.0;
    }
    return switched(t, r, dE_dr);
  }
  // Squared r_outer of the pair (0 without a core): a cheap pre-test.
  double outer_sq(int a, int b) const { return table_[static_cast<std::size_t>(a) * n_elements_ + b].r_outer_sq; }

 private:
  struct Entry {
    bool active = false;
    double z_a = 0.0, z_b = 0.0, r_inner = 0.0, r_outer = 0.0, r_outer_sq = 0.0;
  };
  static double switched(const Entry& t, double r, double* dE_dr);

  std::vector<RepulsionPair> pairs_;
  std::vector<Entry> table_;
  int n_elements_ = 0;
};

}  // namespace nnp
