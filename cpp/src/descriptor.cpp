// Symmetry-function kernels; formulas and conventions in nnp/descriptor.h.
//
// One templated traversal (evaluate) computes, for every pair and triplet, the
// factors of each function and of its partial derivatives with respect to the
// scalar geometry (R_ij, R_ik, R_jk, cosθ). For an angular function
//   T = p 2^(1−ζ) (1+λcosθ)^ζ · E · F,   E = Π exp(−η(R−R_s)²),  F = Π f_c(R)
//   ∂T/∂cosθ = p 2^(1−ζ) ζλ (1+λcosθ)^(ζ−1) · E · F
//   ∂T/∂R_ij = p 2^(1−ζ) (1+λcosθ)^ζ · E · (∂F/∂R_ij − 2η(R_ij−R_s) F)   (same for R_ik, R_jk)
// What is done with them is the Sink's job:
//   ValueSink    G[μ] += T
//   GradientSink dE/dr_ij += Σ_μ w_μ ∂T_μ/∂r_ij, contracting the weights into
//                two sums per (η, R_s) key and four scalars per triplet before
//                touching any vector
//   JacobianSink ∂G_μ/∂r_ij for every μ and neighbour (training features)
// so the maths exists once, and the force pass stores no Jacobian.
//
// Work shared between the value pass (compute) and the force pass
// (accumulate_gradient with prepared = true): per-neighbour distances, cutoffs
// and exponentials (prepare), and per narrow triplet R_jk, f_c(R_jk) and its
// exponentials (the triplet cache), so the force pass calls no libm function.
#include "nnp/descriptor.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "nnp/error.h"

namespace nnp {

std::size_t DescriptorWorkspace::bytes() const {
  return sizeof(double) * (r.capacity() + ux.capacity() + uy.capacity() + uz.capacity() +
                           fc.capacity() + dfc.capacity() + radial_exp.capacity() +
                           triplet_cache.capacity() + power.capacity() + dpower.capacity() +
                           g.capacity() + w.capacity() + exps.capacity()) +
         sizeof(int) * (members.capacity() + member_start.capacity());
}

namespace {

constexpr int kMaxIntegerZeta = 64;
// exp(−mηx) is computed as exp(−ηx)^m for integer m up to this; the rounding
// error grows like m·ε, far below the 1e-12 agreement the tests demand.
constexpr int kMaxExpExponent = 64;

inline double int_power(double x, int n) {
  double result = 1.0;
  while (n > 0) {
    if (n & 1) result *= x;
    x *= x;
    n >>= 1;
  }
  return result;
}

// If eta == m·base_eta for an integer 2 <= m <= kMaxExpExponent, return m.
int integer_ratio(double eta, double base_eta) {
  if (!(base_eta > 0) || !(eta > base_eta)) return 0;
  const double m = std::round(eta / base_eta);
  if (m < 2 || m > kMaxExpExponent || m * base_eta != eta) return 0;
  return static_cast<int>(m);
}

// Per (η, R_s) key of one triplet: E, F and the radial derivative factors
// G_x = ∂F/∂R_x − 2η(R_x−R_s)F; `power`/`dpower` hold p 2^(1−ζ)(1+λcosθ)^ζ and
// its cosθ-derivative for each of the group's (λ, ζ).
struct KeyFactors {
  double E, F, Ga, Gb, Gc;
  const double* power;
  const double* dpower;
};

// Geometry of one triplet (i; j, k), handed to sinks that need vectors.
struct Triplet {
  int j, k;
  double a, b;       // R_ij, R_ik
  double cos;        // r̂_ij·r̂_ik
  const double* uj;  // r̂_ij
  const double* uk;  // r̂_ik
  double ujk[3];     // unit vector from j to k (narrow functions only)
};

// ∂T/∂r_ij and ∂T/∂r_ik from the scalar partials.
inline void triplet_vectors(const Triplet& t, double T_cos, double T_a, double T_b, double T_c,
                            double* d_j, double* d_k) {
  for (int c = 0; c < 3; ++c) {
    const double dcos_dj = (t.uk[c] - t.cos * t.uj[c]) / t.a;
    const double dcos_dk = (t.uj[c] - t.cos * t.uk[c]) / t.b;
    d_j[c] = T_cos * dcos_dj + T_a * t.uj[c] - T_c * t.ujk[c];
    d_k[c] = T_cos * dcos_dk + T_b * t.uk[c] + T_c * t.ujk[c];
  }
}

// Sinks receive internal function indices (see Descriptor's internal layout):
// `block` points at the n_powers functions of one key.
struct ValueSink {
  static constexpr bool kDerivatives = false;
  double* G;
  void radial(int out, double T, double, int, const double*) { G[out] += T; }
  void end_pair(int, const double*) {}
  void angular(int block, int n_powers, const KeyFactors& k, const Triplet&) {
    const double EF = k.E * k.F;
    double* __restrict g = G + block;
    const double* __restrict power = k.power;
#pragma omp simd
    for (int p = 0; p < n_powers; ++p) g[p] += power[p] * EF;
  }
  void end_triplet(const Triplet&) {}
};

struct GradientSink {
  static constexpr bool kDerivatives = true;
  const double* w;  // dE/dG, internal order
  double* dE_dr;
  double s_r = 0, s_cos = 0, s_a = 0, s_b = 0, s_c = 0;
  void radial(int out, double, double T_r, int, const double*) { s_r += w[out] * T_r; }
  void end_pair(int j, const double* u) {
    for (int c = 0; c < 3; ++c) dE_dr[3 * j + c] += s_r * u[c];
    s_r = 0;
  }
  void angular(int block, int n_powers, const KeyFactors& k, const Triplet&) {
    // Σ_μ w_μ p2^(1−ζ)(1+λcos)^ζ and its cos-derivative, over this key.
    const double* __restrict wk = w + block;
    const double* __restrict power = k.power;
    const double* __restrict dpower = k.dpower;
    double A = 0, B = 0;
#pragma omp simd reduction(+ : A, B)
    for (int p = 0; p < n_powers; ++p) {
      A += wk[p] * power[p];
      B += wk[p] * dpower[p];
    }
    s_cos += B * k.E * k.F;
    const double AE = A * k.E;
    s_a += AE * k.Ga;
    s_b += AE * k.Gb;
    s_c += AE * k.Gc;
  }
  void end_triplet(const Triplet& t) {
    double dj[3], dk[3];
    triplet_vectors(t, s_cos, s_a, s_b, s_c, dj, dk);
    for (int c = 0; c < 3; ++c) {
      dE_dr[3 * t.j + c] += dj[c];
      dE_dr[3 * t.k + c] += dk[c];
    }
    s_cos = s_a = s_b = s_c = 0;
  }
};

struct JacobianSink {
  static constexpr bool kDerivatives = true;
  double* G;            // internal order
  double* dG_dr;        // [neighbour][output function][xyz]
  const int* to_output; // internal -> output index, −1 for padding
  int M;                // number of output functions
  void radial(int out, double T, double T_r, int j, const double* u) {
    G[out] += T;
    double* d = dG_dr + (static_cast<std::size_t>(j) * M + to_output[out]) * 3;
    for (int c = 0; c < 3; ++c) d[c] += T_r * u[c];
  }
  void end_pair(int, const double*) {}
  void angular(int block, int n_powers, const KeyFactors& k, const Triplet& t) {
    for (int p = 0; p < n_powers; ++p) {
      const int out = to_output[block + p];
      if (out < 0) continue;
      const double PE = k.power[p] * k.E;
      G[block + p] += PE * k.F;
      double dj[3], dk[3];
      triplet_vectors(t, k.dpower[p] * k.E * k.F, PE * k.Ga, PE * k.Gb, PE * k.Gc, dj, dk);
      double* pj = dG_dr + (static_cast<std::size_t>(t.j) * M + out) * 3;
      double* pk = dG_dr + (static_cast<std::size_t>(t.k) * M + out) * 3;
      for (int c = 0; c < 3; ++c) {
        pj[c] += dj[c];
        pk[c] += dk[c];
      }
    }
  }
  void end_triplet(const Triplet&) {}
};

}  // namespace

Descriptor::Descriptor(std::vector<SymmetryFunction> functions, CutoffType cutoff,
                       bool full_angular_sum, int n_elements)
    : functions_(std::move(functions)),
      cutoff_(cutoff),
      full_angular_sum_(full_angular_sum),
      n_elements_(n_elements) {
  if (functions_.empty()) throw Error("a descriptor needs at least one symmetry function");
  auto cutoff_slot = [&](double rc) {
    auto it = std::find(cutoff_radii_.begin(), cutoff_radii_.end(), rc);
    if (it != cutoff_radii_.end()) return static_cast<int>(it - cutoff_radii_.begin());
    cutoff_radii_.push_back(rc);
    return static_cast<int>(cutoff_radii_.size()) - 1;
  };
  auto exp_slot = [&](double eta, double rs) {
    for (std::size_t s = 0; s < exp_keys_.size(); ++s)
      if (exp_keys_[s].eta == eta && exp_keys_[s].rs == rs) return static_cast<int>(s);
    exp_keys_.push_back({eta, rs});
    return static_cast<int>(exp_keys_.size()) - 1;
  };

  // Pass 1: validate, group, and collect each angular group's powers and keys.
  std::vector<int> angular_group(functions_.size(), -1), angular_power(functions_.size(), -1),
      angular_key(functions_.size(), -1);
  for (std::size_t out = 0; out < functions_.size(); ++out) {
    const SymmetryFunction& f = functions_[out];
    const std::string where = "symmetry function " + std::to_string(out + 1) + ": ";
    if (!(std::isfinite(f.rc) && f.rc > 0)) throw Error(where + "rc must be > 0");
    if (!(std::isfinite(f.eta) && f.eta >= 0)) throw Error(where + "eta must be >= 0");
    if (!(std::isfinite(f.rs) && f.rs >= 0 && f.rs < f.rc)) throw Error(where + "need 0 <= rs < rc");
    if (f.element_a < 0 || f.element_a >= n_elements)
      throw Error(where + "neighbour element index out of range");
    max_cutoff_ = std::max(max_cutoff_, f.rc);
    const int cslot = cutoff_slot(f.rc);
    const int eslot = exp_slot(f.eta, f.rs);
    if (f.type == SymmetryFunctionType::G2) {
      auto it = std::find_if(radial_groups_.begin(), radial_groups_.end(), [&](const RadialGroup& g) {
        return g.element == f.element_a && g.rc == f.rc;
      });
      if (it == radial_groups_.end()) {
        radial_groups_.push_back({f.element_a, f.rc, cslot, {}});
        it = radial_groups_.end() - 1;
      }
      it->terms.push_back({f.eta, f.rs, eslot, static_cast<int>(out)});  // `internal` set below
      continue;
    }
    if (f.element_b < 0 || f.element_b >= n_elements)
      throw Error(where + "second neighbour element index out of range");
    if (f.lambda != 1 && f.lambda != -1) throw Error(where + "lambda must be +1 or -1");
    if (!(std::isfinite(f.zeta) && f.zeta >= 1)) throw Error(where + "zeta must be >= 1");
    const int ea = std::min(f.element_a, f.element_b), eb = std::max(f.element_a, f.element_b);
    auto it = std::find_if(angular_groups_.begin(), angular_groups_.end(), [&](const AngularGroup& g) {
      return g.type == f.type && g.element_a == ea && g.element_b == eb && g.rc == f.rc;
    });
    if (it == angular_groups_.end()) {
      angular_groups_.push_back({f.type, ea, eb, f.rc, cslot, {}, {}});
      it = angular_groups_.end() - 1;
    }
    AngularGroup& g = *it;
    auto pw = std::find_if(g.powers.begin(), g.powers.end(), [&](const AngularPower& q) {
      return q.lambda == f.lambda && q.zeta == f.zeta;
    });
    if (pw == g.powers.end()) {
      const bool is_int = f.zeta == std::floor(f.zeta) && f.zeta <= kMaxIntegerZeta;
      const double prefactor = std::pow(2.0, 1.0 - f.zeta) * (full_angular_sum_ ? 2.0 : 1.0);
      g.powers.push_back({f.lambda, f.zeta, is_int ? static_cast<int>(f.zeta) : 0, prefactor,
                          prefactor * f.zeta * f.lambda});
      pw = g.powers.end() - 1;
    }
    auto key = std::find_if(g.keys.begin(), g.keys.end(), [&](const AngularKey& k) { return k.exp_slot == eslot; });
    if (key == g.keys.end()) {
      g.keys.push_back({f.eta, f.rs, eslot});
      key = g.keys.end() - 1;
    }
    angular_group[out] = static_cast<int>(it - angular_groups_.begin());
    angular_power[out] = static_cast<int>(pw - g.powers.begin());
    angular_key[out] = static_cast<int>(key - g.keys.begin());
  }

  // Keys sorted by (R_s, η), so that an exponential can be obtained from an
  // earlier one, exp(−mη x) = exp(−η x)^m, when η ratios are integers.
  auto by_rs_eta = [](const auto& x, const auto& y) { return x.rs != y.rs ? x.rs < y.rs : x.eta < y.eta; };
  {
    std::vector<int> order(exp_keys_.size()), slot_of(exp_keys_.size());
    for (std::size_t s = 0; s < order.size(); ++s) order[s] = static_cast<int>(s);
    std::sort(order.begin(), order.end(), [&](int x, int y) { return by_rs_eta(exp_keys_[x], exp_keys_[y]); });
    std::vector<ExpKey> sorted;
    for (std::size_t s = 0; s < order.size(); ++s) {
      slot_of[order[s]] = static_cast<int>(s);
      sorted.push_back(exp_keys_[order[s]]);
    }
    exp_keys_ = std::move(sorted);
    for (RadialGroup& g : radial_groups_)
      for (RadialTerm& t : g.terms) t.exp_slot = slot_of[t.exp_slot];
    for (AngularGroup& g : angular_groups_)
      for (AngularKey& k : g.keys) k.exp_slot = slot_of[k.exp_slot];
  }
  auto find_bases = [](auto& keys) {
    for (std::size_t q = 0; q < keys.size(); ++q)
      for (std::size_t b = 0; b < q; ++b) {
        if (keys[b].rs != keys[q].rs || keys[b].base >= 0) continue;
        const int m = integer_ratio(keys[q].eta, keys[b].eta);
        if (m && (keys[q].base < 0 || m < keys[q].exponent)) {
          keys[q].base = static_cast<int>(b);
          keys[q].exponent = m;
        }
      }
  };
  find_bases(exp_keys_);
  for (std::size_t gi = 0; gi < angular_groups_.size(); ++gi) {
    AngularGroup& g = angular_groups_[gi];
    std::vector<int> order(g.keys.size()), position(g.keys.size());
    for (std::size_t q = 0; q < order.size(); ++q) order[q] = static_cast<int>(q);
    std::sort(order.begin(), order.end(), [&](int x, int y) { return by_rs_eta(g.keys[x], g.keys[y]); });
    std::vector<AngularKey> sorted;
    for (std::size_t q = 0; q < order.size(); ++q) {
      position[order[q]] = static_cast<int>(q);
      sorted.push_back(g.keys[order[q]]);
    }
    g.keys = std::move(sorted);
    for (std::size_t out = 0; out < functions_.size(); ++out)
      if (angular_group[out] == static_cast<int>(gi)) angular_key[out] = position[angular_key[out]];
    find_bases(g.keys);
    for (const AngularPower& p : g.powers) {
      g.has_plus |= p.lambda > 0;
      g.has_minus |= p.lambda < 0;
      g.max_int_zeta = std::max(g.max_int_zeta, p.int_zeta);
    }
  }

  // Internal layout: radial terms first, then each angular group's dense
  // keys × powers block (slots without a function are padding).
  int next = 0;
  for (RadialGroup& g : radial_groups_)
    for (RadialTerm& t : g.terms) {
      internal_to_output_.push_back(t.internal);  // still the output index here
      t.internal = next++;
    }
  for (AngularGroup& g : angular_groups_) {
    g.offset = next;
    const int block = static_cast<int>(g.keys.size() * g.powers.size());
    internal_to_output_.insert(internal_to_output_.end(), block, -1);
    next += block;
  }
  for (std::size_t out = 0; out < functions_.size(); ++out) {
    if (angular_group[out] < 0) continue;
    const AngularGroup& g = angular_groups_[angular_group[out]];
    internal_to_output_[g.offset + angular_key[out] * static_cast<int>(g.powers.size()) + angular_power[out]] =
        static_cast<int>(out);
  }
}

void Descriptor::prepare(const NeighborView& nb, DescriptorWorkspace& ws) const {
  const int n = nb.count;
  ws.r.resize(n);
  ws.ux.resize(n);
  ws.uy.resize(n);
  ws.uz.resize(n);
  ws.member_start.assign(n_elements_ + 1, 0);
  for (int j = 0; j < n; ++j) {
    const double d2 = nb.dx[j] * nb.dx[j] + nb.dy[j] * nb.dy[j] + nb.dz[j] * nb.dz[j];
    const double r = std::sqrt(d2);
    if (r < max_cutoff_) {
      const int e = nb.element[j];
      if (e < 0 || e >= n_elements_) throw Error("neighbour element index out of range");
      if (!(r > 0.0)) throw Error("two atoms at the same position (zero distance to a neighbour)");
      ++ws.member_start[e + 1];
    } else if (!(r >= max_cutoff_)) {
      throw Error("non-finite neighbour coordinates");
    }
    ws.r[j] = r;
    ws.ux[j] = nb.dx[j] / r;
    ws.uy[j] = nb.dy[j] / r;
    ws.uz[j] = nb.dz[j] / r;
  }
  for (int e = 0; e < n_elements_; ++e) ws.member_start[e + 1] += ws.member_start[e];
  // Counting sort of the neighbours inside the cutoff by element; the fill
  // pointers advance through member_start, which is shifted back afterwards.
  const int active = ws.member_start[n_elements_];
  ws.members.resize(active);
  for (int j = 0; j < n; ++j)
    if (ws.r[j] < max_cutoff_) ws.members[ws.member_start[nb.element[j]]++] = j;
  for (int e = n_elements_; e > 0; --e) ws.member_start[e] = ws.member_start[e - 1];
  ws.member_start[0] = 0;
  // Cutoff values per distinct cutoff radius, exponentials per distinct (η, R_s).
  const std::size_t nc = cutoff_radii_.size(), ne = exp_keys_.size();
  ws.fc.resize(nc * n);
  ws.dfc.resize(nc * n);
  ws.radial_exp.resize(ne * n);
  for (int m = 0; m < active; ++m) {
    const int j = ws.members[m];
    const double r = ws.r[j];
    for (std::size_t s = 0; s < nc; ++s) cutoff_function(cutoff_, r, cutoff_radii_[s], ws.fc[s * n + j], ws.dfc[s * n + j]);
    for (std::size_t s = 0; s < ne; ++s) {
      const ExpKey& key = exp_keys_[s];
      if (key.base >= 0) {
        ws.radial_exp[s * n + j] = int_power(ws.radial_exp[key.base * n + j], key.exponent);
      } else {
        const double d = r - key.rs;
        ws.radial_exp[s * n + j] = std::exp(-key.eta * d * d);
      }
    }
  }
}

template <Descriptor::Cache cache, class Sink>
void Descriptor::evaluate(const NeighborView& nb, DescriptorWorkspace& ws, Sink& sink) const {
  const int n = nb.count;
  const int* members = ws.members.data();
  const int* start = ws.member_start.data();
  std::size_t cached = 0;  // position in the triplet cache
  if constexpr (cache == Cache::Write) {
    // Upper bound: every neighbour pair of every narrow group.
    std::size_t bound = 0;
    const std::size_t active = ws.members.size();
    for (const AngularGroup& g : angular_groups_)
      if (g.type == SymmetryFunctionType::G4) bound += active * active / 2 * (3 + g.keys.size());
    if (ws.triplet_cache.size() < bound) ws.triplet_cache.resize(bound);
  }
  double* tcache = ws.triplet_cache.data();

  for (const RadialGroup& g : radial_groups_) {
    const double* fc = ws.fc.data() + static_cast<std::size_t>(g.cutoff_slot) * n;
    const double* dfc = ws.dfc.data() + static_cast<std::size_t>(g.cutoff_slot) * n;
    for (int m = start[g.element]; m < start[g.element + 1]; ++m) {
      const int j = members[m];
      const double r = ws.r[j];
      if (r >= g.rc) continue;
      const double u[3] = {ws.ux[j], ws.uy[j], ws.uz[j]};
      for (const RadialTerm& t : g.terms) {
        const double e = ws.radial_exp[static_cast<std::size_t>(t.exp_slot) * n + j];
        const double T = e * fc[j];
        double T_r = 0;
        if constexpr (Sink::kDerivatives) T_r = e * (dfc[j] - 2.0 * t.eta * (r - t.rs) * fc[j]);
        sink.radial(t.internal, T, T_r, j, u);
      }
      if constexpr (Sink::kDerivatives) sink.end_pair(j, u);
    }
  }

  for (const AngularGroup& g : angular_groups_) {
    const bool narrow = g.type == SymmetryFunctionType::G4;
    const double* fc = ws.fc.data() + static_cast<std::size_t>(g.cutoff_slot) * n;
    const double* dfc = ws.dfc.data() + static_cast<std::size_t>(g.cutoff_slot) * n;
    const bool same = g.element_a == g.element_b;
    const int a_begin = start[g.element_a], a_end = start[g.element_a + 1];
    const int b_end = start[g.element_b + 1];
    const int P = static_cast<int>(g.powers.size());
    const std::size_t K = g.keys.size();
    ws.power.resize(P);
    ws.dpower.resize(P);
    double* power = ws.power.data();
    double* dpower = ws.dpower.data();
    // Powers of 1 + cosθ and 1 − cosθ, up to the largest integer ζ.
    double plus[kMaxIntegerZeta + 1], minus[kMaxIntegerZeta + 1];
    ws.exps.assign(2 * K, 1.0);
    double* exps = ws.exps.data();  // R_jk exponentials when not cached
    const double* ones = exps + K;
    for (int ma = a_begin; ma < a_end; ++ma) {
      const int j = members[ma];
      const double a = ws.r[j];
      if (a >= g.rc) continue;
      const double uj[3] = {ws.ux[j], ws.uy[j], ws.uz[j]};
      // Unordered pairs: k after j within one element, every k for two.
      for (int mb = same ? ma + 1 : start[g.element_b]; mb < b_end; ++mb) {
        const int k = members[mb];
        const double b = ws.r[k];
        if (b >= g.rc) continue;
        Triplet t;
        t.j = j;
        t.k = k;
        t.a = a;
        t.b = b;
        const double uk[3] = {ws.ux[k], ws.uy[k], ws.uz[k]};
        t.uj = uj;
        t.uk = uk;
        t.cos = uj[0] * uk[0] + uj[1] * uk[1] + uj[2] * uk[2];
        double c = 0, fc_c = 1, dfc_c = 0;
        t.ujk[0] = t.ujk[1] = t.ujk[2] = 0;
        const double* ejk = ones;  // per key: exp(−η(R_jk−R_s)²) (1 for wide functions)
        if (narrow) {
          const double v[3] = {nb.dx[k] - nb.dx[j], nb.dy[k] - nb.dy[j], nb.dz[k] - nb.dz[j]};
          if constexpr (cache == Cache::Read) {
            c = tcache[cached];
            if (c >= g.rc) {
              ++cached;
              continue;
            }
            fc_c = tcache[cached + 1];
            dfc_c = tcache[cached + 2];
            ejk = tcache + cached + 3;
            cached += 3 + K;
          } else {
            c = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
            if (c >= g.rc) {
              if constexpr (cache == Cache::Write) tcache[cached++] = c;
              continue;
            }
            cutoff_function(cutoff_, c, g.rc, fc_c, dfc_c);
            double* e = exps;
            if constexpr (cache == Cache::Write) {
              tcache[cached] = c;
              tcache[cached + 1] = fc_c;
              tcache[cached + 2] = dfc_c;
              e = tcache + cached + 3;
              cached += 3 + K;
            }
            for (std::size_t q = 0; q < K; ++q) {
              const AngularKey& key = g.keys[q];
              if (key.base >= 0) {
                e[q] = int_power(e[key.base], key.exponent);
              } else {
                const double d = c - key.rs;
                e[q] = std::exp(-key.eta * d * d);
              }
            }
            ejk = e;
          }
          if constexpr (Sink::kDerivatives)
            for (int q = 0; q < 3; ++q) t.ujk[q] = v[q] / c;
        }
        const double F = fc[j] * fc[k] * fc_c;
        const double dF_a = dfc[j] * fc[k] * fc_c;
        const double dF_b = fc[j] * dfc[k] * fc_c;
        const double dF_c = fc[j] * fc[k] * dfc_c;
        // (1+λcos)^ζ by table lookup for integer ζ (pow otherwise).
        plus[0] = minus[0] = 1.0;
        if (g.has_plus) {
          const double bp = 1.0 + t.cos;
          for (int z = 1; z <= g.max_int_zeta; ++z) plus[z] = plus[z - 1] * bp;
        }
        if (g.has_minus) {
          const double bm = 1.0 - t.cos;
          for (int z = 1; z <= g.max_int_zeta; ++z) minus[z] = minus[z - 1] * bm;
        }
        for (int q = 0; q < P; ++q) {
          const AngularPower& pw = g.powers[q];
          double b1, base;
          if (pw.int_zeta) {
            const double* table = pw.lambda > 0 ? plus : minus;
            b1 = table[pw.int_zeta - 1];
            base = table[1];
          } else {
            base = 1.0 + pw.lambda * t.cos;
            b1 = std::pow(base, pw.zeta - 1.0);
          }
          power[q] = pw.prefactor * b1 * base;
          if constexpr (Sink::kDerivatives) dpower[q] = pw.dprefactor * b1;
        }
        KeyFactors kf{0, F, 0, 0, 0, power, dpower};
        for (std::size_t q = 0; q < K; ++q) {
          const AngularKey& key = g.keys[q];
          const std::size_t slot = static_cast<std::size_t>(key.exp_slot) * n;
          kf.E = ws.radial_exp[slot + j] * ws.radial_exp[slot + k] * ejk[q];
          if constexpr (Sink::kDerivatives) {
            const double two_eta = 2.0 * key.eta;
            kf.Ga = dF_a - two_eta * (a - key.rs) * F;
            kf.Gb = dF_b - two_eta * (b - key.rs) * F;
            kf.Gc = narrow ? dF_c - two_eta * (c - key.rs) * F : 0.0;
          }
          sink.angular(g.offset + static_cast<int>(q) * P, P, kf, t);
        }
        if constexpr (Sink::kDerivatives) sink.end_triplet(t);
      }
    }
  }
}

void Descriptor::compute(const NeighborView& nb, double* G, DescriptorWorkspace& ws) const {
  prepare(nb, ws);
  ws.g.assign(internal_to_output_.size(), 0.0);
  ValueSink sink{ws.g.data()};
  evaluate<Cache::Write>(nb, ws, sink);
  for (std::size_t i = 0; i < internal_to_output_.size(); ++i)
    if (internal_to_output_[i] >= 0) G[internal_to_output_[i]] = ws.g[i];
}

void Descriptor::compute_with_jacobian(const NeighborView& nb, double* G, double* dG_dr,
                                       DescriptorWorkspace& ws) const {
  prepare(nb, ws);
  ws.g.assign(internal_to_output_.size(), 0.0);
  std::fill(dG_dr, dG_dr + static_cast<std::size_t>(nb.count) * size() * 3, 0.0);
  JacobianSink sink{ws.g.data(), dG_dr, internal_to_output_.data(), size()};
  evaluate<Cache::None>(nb, ws, sink);
  for (std::size_t i = 0; i < internal_to_output_.size(); ++i)
    if (internal_to_output_[i] >= 0) G[internal_to_output_[i]] = ws.g[i];
}

void Descriptor::accumulate_gradient(const NeighborView& nb, const double* dE_dG, double* dE_dr,
                                     DescriptorWorkspace& ws, bool prepared) const {
  ws.w.resize(internal_to_output_.size());
  for (std::size_t i = 0; i < internal_to_output_.size(); ++i)
    ws.w[i] = internal_to_output_[i] >= 0 ? dE_dG[internal_to_output_[i]] : 0.0;
  GradientSink sink{ws.w.data(), dE_dr};
  if (prepared) {
    evaluate<Cache::Read>(nb, ws, sink);
  } else {
    prepare(nb, ws);
    evaluate<Cache::None>(nb, ws, sink);
  }
}

}  // namespace nnp
