#include "nnp/repulsion.h"

#include <cmath>
#include <utility>

#include "nnp/error.h"

namespace nnp {

namespace {

const char* const kSymbols[] = {
    "H",  "He", "Li", "Be", "B",  "C",  "N",  "O",  "F",  "Ne", "Na", "Mg", "Al", "Si", "P",  "S",  "Cl",
    "Ar", "K",  "Ca", "Sc", "Ti", "V",  "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se",
    "Br", "Kr", "Rb", "Sr", "Y",  "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb",
    "Te", "I",  "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er",
    "Tm", "Yb", "Lu", "Hf", "Ta", "W",  "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At",
    "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U",  "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No",
    "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc", "Lv", "Ts", "Og"};

// Universal ZBL screening function (Ziegler, Biersack, Littmark 1985).
constexpr double kC[4] = {0.18175, 0.50986, 0.28022, 0.02817};
constexpr double kD[4] = {3.19980, 0.94229, 0.40290, 0.20162};
constexpr double kCoulomb = 14.399645;  // e²/(4πε0), eV·Å
constexpr double kBohr = 0.529177;      // Å

}  // namespace

int atomic_number(const std::string& symbol) {
  for (int z = 0; z < static_cast<int>(sizeof(kSymbols) / sizeof(kSymbols[0])); ++z)
    if (symbol == kSymbols[z]) return z + 1;
  return 0;
}

double zbl_energy(double z_a, double z_b, double r, double* dE_dr) {
  const double a = 0.8854 * kBohr / (std::pow(z_a, 0.23) + std::pow(z_b, 0.23));
  const double x = r / a;
  double phi = 0.0, dphi = 0.0;
  for (int k = 0; k < 4; ++k) {
    const double t = kC[k] * std::exp(-kD[k] * x);
    phi += t;
    dphi -= kD[k] * t;
  }
  const double q = kCoulomb * z_a * z_b;
  *dE_dr = q * (dphi / (a * r) - phi / (r * r));
  return q * phi / r;
}

double repulsion_switch(double r, double r_inner, double r_outer, double* dS_dr) {
  if (r <= r_inner) {
    *dS_dr = 0.0;
    return 1.0;
  }
  if (r >= r_outer) {
    *dS_dr = 0.0;
    return 0.0;
  }
  const double h = r_outer - r_inner;
  const double x = (r - r_inner) / h;
  const double x2 = x * x;
  *dS_dr = -30.0 * x2 * (1.0 - x) * (1.0 - x) / h;
  return 1.0 - x2 * x * (10.0 - 15.0 * x + 6.0 * x2);
}

Repulsion::Repulsion(std::vector<RepulsionPair> pairs, const std::vector<int>& atomic_numbers)
    : pairs_(std::move(pairs)), n_elements_(static_cast<int>(atomic_numbers.size())) {
  table_.assign(static_cast<std::size_t>(n_elements_) * n_elements_, Entry{});
  for (const RepulsionPair& p : pairs_) {
    if (p.element_a < 0 || p.element_a >= n_elements_ || p.element_b < 0 || p.element_b >= n_elements_)
      throw Error("repulsion: element index out of range");
    const int za = atomic_numbers[p.element_a], zb = atomic_numbers[p.element_b];
    if (za <= 0 || zb <= 0) throw Error("repulsion: an element of the pair is not a chemical symbol");
    if (!(std::isfinite(p.r_inner) && std::isfinite(p.r_outer) && p.r_inner > 0 && p.r_inner < p.r_outer))
      throw Error("repulsion: need 0 < r_inner < r_outer");
    Entry t;
    t.active = true;
    t.z_a = za;
    t.z_b = zb;
    t.r_inner = p.r_inner;
    t.r_outer = p.r_outer;
    t.r_outer_sq = p.r_outer * p.r_outer;
    const std::size_t ab = static_cast<std::size_t>(p.element_a) * n_elements_ + p.element_b;
    const std::size_t ba = static_cast<std::size_t>(p.element_b) * n_elements_ + p.element_a;
    if (table_[ab].active) throw Error("repulsion: a second core for the same element pair");
    table_[ab] = t;
    std::swap(t.z_a, t.z_b);
    table_[ba] = t;
  }
}

double Repulsion::switched(const Entry& t, double r, double* dE_dr) {
  double dzbl = 0.0, ds = 0.0;
  const double zbl = zbl_energy(t.z_a, t.z_b, r, &dzbl);
  const double s = repulsion_switch(r, t.r_inner, t.r_outer, &ds);
  *dE_dr = dzbl * s + zbl * ds;
  return zbl * s;
}

}  // namespace nnp
