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
#include "nnp/descriptor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "nnp/error.h"

namespace nnp {

std::size_t DescriptorWorkspace::bytes() const {
  return sizeof(double) * (r.capacity() + ux.capacity() + uy.capacity() + uz.capacity() +
                           fc.capacity() + dfc.capacity() + radial_exp.capacity() +
                           triplet_cache.capacity()) +
         sizeof(double) * (power.capacity() + dpower.capacity()) +
         sizeof(int) * (members.capacity() + member_start.capacity());
}

namespace {

constexpr int kMaxIntegerZeta = 64;

inline double int_power(double x, int n) {
  double result = 1.0;
  while (n > 0) {
    if (n & 1) result *= x;
    x *= x;
    n >>= 1;
  }
  return result;
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
  double a, b;          // R_ij, R_ik
  double cos;           // r̂_ij·r̂_ik
  const double* uj;     // r̂_ij
  const double* uk;     // r̂_ik
  double ujk[3];        // unit vector from j to k
  bool has_jk;          // G4 (depends on R_jk) or G5
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

struct ValueSink {
  static constexpr bool kDerivatives = false;
  double* G;
  void radial(int out, double T, double, int, const double*) { G[out] += T; }
  void end_pair(int, const double*) {}
  template <class Terms>
  void angular(const Terms& terms, const KeyFactors& k, const Triplet&) {
    const double EF = k.E * k.F;
    for (const auto& [p, out] : terms) G[out] += k.power[p] * EF;
  }
  void end_triplet(const Triplet&) {}
};

struct GradientSink {
  static constexpr bool kDerivatives = true;
  const double* w;  // dE/dG
  double* dE_dr;
  double s_r = 0, s_cos = 0, s_a = 0, s_b = 0, s_c = 0;
  void radial(int out, double, double T_r, int, const double*) { s_r += w[out] * T_r; }
  void end_pair(int j, const double* u) {
    for (int c = 0; c < 3; ++c) dE_dr[3 * j + c] += s_r * u[c];
    s_r = 0;
  }
  template <class Terms>
  void angular(const Terms& terms, const KeyFactors& k, const Triplet&) {
    double A = 0, B = 0;  // Σ w p2^(1−ζ)(1+λcos)^ζ and its cos-derivative
    for (const auto& [p, out] : terms) {
      A += w[out] * k.power[p];
      B += w[out] * k.dpower[p];
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
  double* G;
  double* dG_dr;  // [neighbour][function][xyz]
  int M;
  void radial(int out, double T, double T_r, int j, const double* u) {
    G[out] += T;
    double* d = dG_dr + (static_cast<std::size_t>(j) * M + out) * 3;
    for (int c = 0; c < 3; ++c) d[c] += T_r * u[c];
  }
  void end_pair(int, const double*) {}
  template <class Terms>
  void angular(const Terms& terms, const KeyFactors& k, const Triplet& t) {
    for (const auto& [p, out] : terms) {
      const double PE = k.power[p] * k.E;
      G[out] += PE * k.F;
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
  auto slot_of = [](auto& table, const auto& key) {
    auto it = std::find(table.begin(), table.end(), key);
    if (it != table.end()) return static_cast<int>(it - table.begin());
    table.push_back(key);
    return static_cast<int>(table.size()) - 1;
  };
  for (std::size_t out = 0; out < functions_.size(); ++out) {
    const SymmetryFunction& f = functions_[out];
    const std::string where = "symmetry function " + std::to_string(out + 1) + ": ";
    if (!(std::isfinite(f.rc) && f.rc > 0)) throw Error(where + "rc must be > 0");
    if (!(std::isfinite(f.eta) && f.eta >= 0)) throw Error(where + "eta must be >= 0");
    if (!(std::isfinite(f.rs) && f.rs >= 0 && f.rs < f.rc)) throw Error(where + "need 0 <= rs < rc");
    if (f.element_a < 0 || f.element_a >= n_elements)
      throw Error(where + "neighbour element index out of range");
    max_cutoff_ = std::max(max_cutoff_, f.rc);
    const int cslot = slot_of(cutoff_radii_, f.rc);
    const int eslot = slot_of(exp_keys_, std::make_pair(f.eta, f.rs));
    if (f.type == SymmetryFunctionType::G2) {
      auto it = std::find_if(radial_groups_.begin(), radial_groups_.end(), [&](const RadialGroup& g) {
        return g.element == f.element_a && g.rc == f.rc;
      });
      if (it == radial_groups_.end()) {
        radial_groups_.push_back({f.element_a, f.rc, cslot, {}});
        it = radial_groups_.end() - 1;
      }
      it->terms.push_back({f.eta, f.rs, eslot, static_cast<int>(out)});
    } else {
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
      const bool is_int = f.zeta == std::floor(f.zeta) && f.zeta <= kMaxIntegerZeta;
      const AngularPower power{f.lambda, f.zeta, is_int ? static_cast<int>(f.zeta) : 0,
                               std::pow(2.0, 1.0 - f.zeta) * (full_angular_sum_ ? 2.0 : 1.0)};
      auto pw = std::find_if(it->powers.begin(), it->powers.end(), [&](const AngularPower& q) {
        return q.lambda == power.lambda && q.zeta == power.zeta;
      });
      if (pw == it->powers.end()) {
        it->powers.push_back(power);
        pw = it->powers.end() - 1;
      }
      auto key = std::find_if(it->keys.begin(), it->keys.end(),
                              [&](const AngularKey& k) { return k.exp_slot == eslot; });
      if (key == it->keys.end()) {
        it->keys.push_back({f.eta, f.rs, eslot, {}});
        key = it->keys.end() - 1;
      }
      key->terms.emplace_back(static_cast<int>(pw - it->powers.begin()), static_cast<int>(out));
    }
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
      const double d = r - exp_keys_[s].second;
      ws.radial_exp[s * n + j] = std::exp(-exp_keys_[s].first * d * d);
    }
  }
}

template <Descriptor::Cache cache, class Sink>
void Descriptor::evaluate(const NeighborView& nb, DescriptorWorkspace& ws, Sink& sink) const {
  const int n = nb.count;
  const int* members = ws.members.data();
  const int* start = ws.member_start.data();
  if constexpr (cache == Cache::Write) ws.triplet_cache.clear();
  std::size_t cached = 0;  // read position in the triplet cache

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
        sink.radial(t.output, T, T_r, j, u);
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
    ws.power.resize(g.powers.size());
    ws.dpower.resize(g.powers.size());
    double* power = ws.power.data();
    double* dpower = ws.dpower.data();
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
        t.has_jk = narrow;
        const double uk[3] = {ws.ux[k], ws.uy[k], ws.uz[k]};
        t.uj = uj;
        t.uk = uk;
        t.cos = uj[0] * uk[0] + uj[1] * uk[1] + uj[2] * uk[2];
        double c = 0, fc_c = 1, dfc_c = 0;
        t.ujk[0] = t.ujk[1] = t.ujk[2] = 0;
        const double* exp_jk = nullptr;  // cached R_jk exponentials, per key
        if (narrow) {
          const double v[3] = {nb.dx[k] - nb.dx[j], nb.dy[k] - nb.dy[j], nb.dz[k] - nb.dz[j]};
          if constexpr (cache == Cache::Read) {
            c = ws.triplet_cache[cached];
            if (c >= g.rc) {
              ++cached;
              continue;
            }
            fc_c = ws.triplet_cache[cached + 1];
            dfc_c = ws.triplet_cache[cached + 2];
            exp_jk = &ws.triplet_cache[cached + 3];
            cached += 3 + g.keys.size();
          } else {
            c = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
            if (c >= g.rc) {
              if constexpr (cache == Cache::Write) ws.triplet_cache.push_back(c);
              continue;
            }
            cutoff_function(cutoff_, c, g.rc, fc_c, dfc_c);
            if constexpr (cache == Cache::Write) ws.triplet_cache.insert(ws.triplet_cache.end(), {c, fc_c, dfc_c});
          }
          if constexpr (Sink::kDerivatives)
            for (int q = 0; q < 3; ++q) t.ujk[q] = v[q] / c;
        }
        const double F = fc[j] * fc[k] * fc_c;
        const double dF_a = dfc[j] * fc[k] * fc_c;
        const double dF_b = fc[j] * dfc[k] * fc_c;
        const double dF_c = fc[j] * fc[k] * dfc_c;
        for (std::size_t q = 0; q < g.powers.size(); ++q) {
          const AngularPower& pw = g.powers[q];
          const double base = 1.0 + pw.lambda * t.cos;
          const double b1 = pw.int_zeta ? int_power(base, pw.int_zeta - 1) : std::pow(base, pw.zeta - 1.0);
          power[q] = pw.prefactor * b1 * base;
          dpower[q] = pw.prefactor * pw.zeta * pw.lambda * b1;
        }
        KeyFactors kf{0, F, 0, 0, 0, power, dpower};
        for (std::size_t q = 0; q < g.keys.size(); ++q) {
          const AngularKey& key = g.keys[q];
          const std::size_t slot = static_cast<std::size_t>(key.exp_slot) * n;
          double exp_c = 1.0;
          if (narrow) {
            if constexpr (cache == Cache::Read) {
              exp_c = exp_jk[q];
            } else {
              const double d = c - key.rs;
              exp_c = std::exp(-key.eta * d * d);
              if constexpr (cache == Cache::Write) ws.triplet_cache.push_back(exp_c);
            }
          }
          kf.E = ws.radial_exp[slot + j] * ws.radial_exp[slot + k] * exp_c;
          if constexpr (Sink::kDerivatives) {
            const double two_eta = 2.0 * key.eta;
            kf.Ga = dF_a - two_eta * (a - key.rs) * F;
            kf.Gb = dF_b - two_eta * (b - key.rs) * F;
            kf.Gc = narrow ? dF_c - two_eta * (c - key.rs) * F : 0.0;
          }
          sink.angular(key.terms, kf, t);
        }
        if constexpr (Sink::kDerivatives) sink.end_triplet(t);
      }
    }
  }
}

void Descriptor::compute(const NeighborView& nb, double* G, DescriptorWorkspace& ws) const {
  prepare(nb, ws);
  std::fill(G, G + size(), 0.0);
  ValueSink sink{G};
  evaluate<Cache::Write>(nb, ws, sink);
}

void Descriptor::compute_with_jacobian(const NeighborView& nb, double* G, double* dG_dr,
                                       DescriptorWorkspace& ws) const {
  prepare(nb, ws);
  std::fill(G, G + size(), 0.0);
  std::fill(dG_dr, dG_dr + static_cast<std::size_t>(nb.count) * size() * 3, 0.0);
  JacobianSink sink{G, dG_dr, size()};
  evaluate<Cache::None>(nb, ws, sink);
}

void Descriptor::accumulate_gradient(const NeighborView& nb, const double* dE_dG, double* dE_dr,
                                     DescriptorWorkspace& ws, bool prepared) const {
  GradientSink sink{dE_dG, dE_dr};
  if (prepared) {
    evaluate<Cache::Read>(nb, ws, sink);
  } else {
    prepare(nb, ws);
    evaluate<Cache::None>(nb, ws, sink);
  }
}

}  // namespace nnp
