// Symmetry-function kernels; formulas and conventions in nnp/descriptor.h.
// This file: the plan (grouping of functions), stage 1 (per-neighbour data)
// and the public entry points. The kernel families live in
// descriptor_radial.cpp, descriptor_triplet.cpp (triple loop: narrow G4 and
// non-factorised G5), descriptor_moments.cpp (factorised G5) and
// descriptor_jacobian.cpp (dG/dr for training).
//
// Three stages per centre atom, each a sequence of loops over contiguous
// arrays (structure of arrays) or explicit SIMD vectors (kernel_math.h), so
// that the work per neighbour, pair or triplet runs several lanes at a time:
//
// 1. prepare_all: per neighbour inside the largest cutoff ("member", grouped
//    by element) the vector, distance, direction, cutoffs and, for radial and
//    factorised functions, exp(−η(R−R_s)²); then per angular group either
//    - a triplet list (triple-loop groups: narrow G4, and G5 with non-integer
//      or large ζ): every pair of members (j, k) that contributes, R_jk < r_c
//      tested on R_jk² before any other work (a vectorised distance pass and
//      a branch-free compaction), and per entry cosθ, R_ij, R_ik, R_jk, r̂_j,
//      r̂_k, the product F of the cutoffs and its partial derivatives, and per
//      (η, R_s) key E = exp(−η[(R_ij−R_s)² + (R_ik−R_s)² + (R_jk−R_s)²]) (one
//      exponential, or a power of another key's when η ratios are integers).
//      Cutoffs and exponentials use libm-free polynomials (nnp/cutoff.h,
//      kernel_math.h);
//    - or the neighbour moments (factorised G5 with integer ζ): per key q and
//      symmetric tensor component α (degree <= max ζ)
//        T_qα = Σ_j w_qj r̂_j^α,   w_qj = exp(−η_q(R_ij−R_s,q)²) f_c(R_ij),
//      and D_q = Σ_j w_qj². With cosⁿθ_jk = Σ_{|α|=n} (n!/α!) r̂_j^α r̂_k^α,
//        Σ_{j≠k} w_j w_k (1+λcosθ_jk)^ζ = Σ_n C(ζ,n) λⁿ Σ_{|α|=n} (n!/α!) T_α² − (1+λ)^ζ D,
//      linear in the number of neighbours.
// 2. values: G from the triplet lists (per chunk of entries, the powers
//    (1+λcosθ)^ζ from a shared addition chain and a dense keys × powers
//    product) and from the moments.
// 3. gradient (forces) or jacobian (training features), from the same lists
//    and moments. For the force pass dE/dG is contracted into a few scalars
//    per triplet (or into ∂E/∂T per moment) before touching any vector, and
//    no Jacobian is stored.
// The kernels are compiled for the x86-64 baseline and for AVX2 + FMA and
// picked at run time (NNP_KERNEL, kernel_math.h).
//
// For a triplet term T = p 2^(1−ζ) (1+λcosθ)^ζ · E · F:
//   ∂T/∂cosθ = p 2^(1−ζ) ζλ (1+λcosθ)^(ζ−1) · E · F
//   ∂T/∂R_x  = p 2^(1−ζ) (1+λcosθ)^ζ · E · (∂F/∂R_x − 2η(R_x−R_s) F),  x = ij, ik, jk
// and with r_jk = R_ik r̂_k − R_ij r̂_j, ∂cosθ/∂r_ij = (r̂_k − cosθ r̂_j)/R_ij:
//   ∂T/∂r_ij = r̂_j (T_ij − T_cos cosθ/R_ij + T_jk R_ij/R_jk) + r̂_k (T_cos/R_ij − T_jk R_ik/R_jk)
//   ∂T/∂r_ik = r̂_j (T_cos/R_ik − T_jk R_ij/R_jk) + r̂_k (T_ik − T_cos cosθ/R_ik + T_jk R_ik/R_jk)
#include "nnp/descriptor.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "descriptor_internal.h"
#include "kernel_math.h"
#include <functional>
#include <map>

#include "nnp/error.h"
#include "nnp/symmetry_function.h"

namespace nnp {

using namespace detail;

std::size_t DescriptorWorkspace::bytes() const {
  return sizeof(double) * (x.capacity() + y.capacity() + z.capacity() + r.capacity() + ux.capacity() +
                           uy.capacity() + uz.capacity() + fc.capacity() + dfc.capacity() +
                           radial_exp.capacity() + grad.capacity() + triplet_data.capacity() +
                           moments.capacity() + scratch.capacity() + vectors.capacity() + g.capacity() +
                           w.capacity() + term_g.capacity() + term_w.capacity() + term_jacobian.capacity() +
                           compact_radial.capacity() + direction.capacity() + jvp.capacity()) +
         sizeof(int) * (index.capacity() + element_start.capacity() + cursor.capacity() +
                        triplet_pairs.capacity()) +
         sizeof(std::size_t) * (triplet_count.capacity() + triplet_pair_offset.capacity() +
                                triplet_data_offset.capacity());
}

Descriptor::Descriptor(std::vector<SymmetryFunction> functions, CutoffType cutoff,
                       bool full_angular_sum, int n_elements, double cutoff_alpha)
    : functions_(std::move(functions)),
      cutoff_alpha_(cutoff_alpha),
      cutoff_(cutoff),
      full_angular_sum_(full_angular_sum),
      n_elements_(n_elements) {
  if (functions_.empty()) throw Error("a descriptor needs at least one symmetry function");
  if (const std::string bad = cutoff_alpha_error(cutoff_, cutoff_alpha_); !bad.empty()) throw Error(bad);
  for (const SymmetryFunction& f : functions_)
    if (is_weighted(f.type)) {
      plan_weighted(n_elements);
      return;
    }
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
    if (is_compact(f.type)) {
      const std::string bad = parameter_error(f);
      if (!bad.empty()) throw Error(where + bad);
      if (f.element_a < 0 || f.element_a >= n_elements || (!is_radial(f.type) && (f.element_b < 0 || f.element_b >= n_elements)))
        throw Error(where + "neighbour element index out of range");
      max_cutoff_ = std::max(max_cutoff_, f.rc);
      plan_compact(f, static_cast<int>(out));
      continue;
    }
    if (!(std::isfinite(f.rc) && f.rc > 0)) throw Error(where + "rc must be > 0");
    if (!(f.rc <= kMaxCutoff)) throw Error(where + "rc must be <= " + std::to_string(int(kMaxCutoff)) + " Å");
    if (!(std::isfinite(f.eta) && f.eta >= 0)) throw Error(where + "eta must be >= 0");
    if (!(std::isfinite(f.rs) && f.rs >= 0 && f.rs < f.rc)) throw Error(where + "need 0 <= rs < rc");
    if (f.element_a < 0 || f.element_a >= n_elements)
      throw Error(where + "neighbour element index out of range");
    max_cutoff_ = std::max(max_cutoff_, f.rc);
    const int cslot = cutoff_slot(f.rc);
    const bool is_int = f.zeta == std::floor(f.zeta) && f.zeta <= kMaxIntegerZeta;
    const bool moments = f.type == SymmetryFunctionType::G5 && is_int && f.zeta <= kMaxMomentZeta;
    // Per-neighbour exponentials only where they are summed per neighbour;
    // triplet lists take exp(−η Σ(R−R_s)²) per entry instead.
    const int eslot = f.type == SymmetryFunctionType::G2 || moments ? exp_slot(f.eta, f.rs) : -1;
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
      return g.type == f.type && g.element_a == ea && g.element_b == eb && g.rc == f.rc && g.moments == moments;
    });
    if (it == angular_groups_.end()) {
      AngularGroup g;
      g.type = f.type;
      g.element_a = ea;
      g.element_b = eb;
      g.rc = f.rc;
      g.cutoff_slot = cslot;
      g.moments = moments;
      angular_groups_.push_back(std::move(g));
      it = angular_groups_.end() - 1;
    }
    AngularGroup& g = *it;
    auto pw = std::find_if(g.powers.begin(), g.powers.end(), [&](const AngularPower& q) {
      return q.lambda == f.lambda && q.zeta == f.zeta;
    });
    if (pw == g.powers.end()) {
      const double prefactor = std::pow(2.0, 1.0 - f.zeta) * (full_angular_sum_ ? 2.0 : 1.0);
      g.powers.push_back({f.lambda, f.zeta, is_int ? static_cast<int>(f.zeta) : 0, prefactor,
                          prefactor * f.zeta * f.lambda});
      pw = g.powers.end() - 1;
    }
    auto key = std::find_if(g.keys.begin(), g.keys.end(), [&](const AngularKey& k) { return k.eta == f.eta && k.rs == f.rs; });
    if (key == g.keys.end()) {
      g.keys.push_back({f.eta, f.rs, eslot});
      key = g.keys.end() - 1;
    }
    angular_group[out] = static_cast<int>(it - angular_groups_.begin());
    angular_power[out] = static_cast<int>(pw - g.powers.begin());
    angular_key[out] = static_cast<int>(key - g.keys.begin());
  }
  for (const SymmetryFunction& f : functions_) sort_by_distance_ |= f.rc < max_cutoff_;

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
      for (AngularKey& k : g.keys)
        if (k.exp_slot >= 0) k.exp_slot = slot_of[k.exp_slot];
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
  plan_exp_chains();
  int max_moment_zeta = -1;
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
    for (const AngularPower& p : g.powers) g.max_zeta = std::max(g.max_zeta, p.int_zeta);
    if (!g.moments) {
      g.value_plan = plan_powers(g.powers, false);
      g.gradient_plan = plan_powers(g.powers, true);
      continue;
    }
    // Σ_{j<k} = ½ Σ_{j≠k} within one element; every (j, k) once for two.
    const bool same = g.element_a == g.element_b;
    const double h = same ? 0.5 : 1.0;
    const int Z = g.max_zeta, P = static_cast<int>(g.powers.size()), K = static_cast<int>(g.keys.size());
    g.coef.assign(static_cast<std::size_t>(P) * (Z + 1), 0.0);
    g.diag.assign(P, 0.0);
    for (int p = 0; p < P; ++p) {
      const AngularPower& pw = g.powers[p];
      for (int n = 0; n <= pw.int_zeta; ++n)
        g.coef[p * (Z + 1) + n] = pw.prefactor * h * binomial(pw.int_zeta, n) * (n % 2 && pw.lambda < 0 ? -1.0 : 1.0);
      if (same) g.diag[p] = pw.prefactor * h * std::pow(1.0 + pw.lambda, pw.int_zeta);
    }
    g.n_components = (Z + 1) * (Z + 2) * (Z + 3) / 6;
    g.moment_offset = moment_size_;
    moment_size_ += K * g.n_components * (same ? 1 : 2) + K;
    max_moment_zeta = std::max(max_moment_zeta, Z);
  }

  // Symmetric tensor components by degree; within a degree (a, b, c) with a,
  // then b, descending.
  if (max_moment_zeta >= 0) {
    const int Z = max_moment_zeta;
    std::vector<int> where((Z + 1) * (Z + 1) * (Z + 1), -1);
    auto at = [&](int a, int b, int c) -> int& { return where[(a * (Z + 1) + b) * (Z + 1) + c]; };
    std::vector<double> factorial(Z + 1, 1.0);
    for (int n = 1; n <= Z; ++n) factorial[n] = factorial[n - 1] * n;
    for (int n = 0; n <= Z; ++n)
      for (int a = n; a >= 0; --a)
        for (int b = n - a; b >= 0; --b) {
          const int c = n - a - b;
          Monomial m{};
          m.degree = n;
          m.power[0] = a;
          m.power[1] = b;
          m.power[2] = c;
          m.multinomial = factorial[n] / (factorial[a] * factorial[b] * factorial[c]);
          m.lower[0] = a ? at(a - 1, b, c) : -1;
          m.lower[1] = b ? at(a, b - 1, c) : -1;
          m.lower[2] = c ? at(a, b, c - 1) : -1;
          m.parent = -1;
          m.axis = 0;
          for (int d = 0; d < 3; ++d)
            if (m.lower[d] >= 0) {
              m.parent = m.lower[d];
              m.axis = d;
              break;
            }
          at(a, b, c) = static_cast<int>(monomials_.size());
          monomials_.push_back(m);
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
  for (CompactGroup& g : compact_groups_)
    for (CompactFunction& fn : g.functions) {
      internal_to_output_.push_back(fn.internal);  // still the output index here
      fn.internal = next++;
    }
  for (std::size_t out = 0; out < functions_.size(); ++out) {
    if (angular_group[out] < 0) continue;
    const AngularGroup& g = angular_groups_[angular_group[out]];
    internal_to_output_[g.offset + angular_key[out] * static_cast<int>(g.powers.size()) + angular_power[out]] =
        static_cast<int>(out);
  }
}

Descriptor::PowerPlan Descriptor::plan_powers(const std::vector<AngularPower>& powers, bool slopes) {
  PowerPlan plan;
  const int P = static_cast<int>(powers.size());
  plan.value_slot.assign(P, 0);
  plan.slope_slot.assign(P, -1);
  for (int sign = 0; sign < 2; ++sign) {
    const int lambda = sign ? -1 : 1;
    std::map<int, int> needed;  // exponents of this sign, ascending
    for (const AngularPower& pw : powers)
      if (pw.lambda == lambda && pw.int_zeta) {
        needed[pw.int_zeta] = 0;
        if (slopes) needed[pw.int_zeta - 1] = 0;
      }
    if (needed.empty()) continue;
    plan.base_slot[sign] = plan.n_slots++;
    std::map<int, int> slot{{0, 0}, {1, plan.base_slot[sign]}};  // exponent -> slot
    std::function<int(int)> ensure = [&](int e) -> int {
      if (auto it = slot.find(e); it != slot.end()) return it->second;
      int a = -1, b = -1;
      for (const auto& [x, sx] : slot)  // one product of two available powers?
        if (x > 0 && x < e)
          if (auto y = slot.find(e - x); y != slot.end() && y->first > 0) {
            a = sx;
            b = y->second;
            break;
          }
      if (a < 0) {
        a = ensure(e % 2 ? e - 1 : e / 2);
        b = e % 2 ? slot.at(1) : a;
      }
      plan.ops.push_back({plan.n_slots, a, b});
      slot[e] = plan.n_slots;
      return plan.n_slots++;
    };
    for (const auto& entry : needed) ensure(entry.first);
    for (int p = 0; p < P; ++p)
      if (powers[p].lambda == lambda && powers[p].int_zeta) {
        plan.value_slot[p] = slot.at(powers[p].int_zeta);
        if (slopes) plan.slope_slot[p] = slot.at(powers[p].int_zeta - 1);
      }
  }
  for (int p = 0; p < P; ++p)
    if (!powers[p].int_zeta) {
      plan.value_slot[p] = plan.n_slots++;
      if (slopes) plan.slope_slot[p] = plan.n_slots++;
    }
  const int P4 = (P + 3) / 4 * 4;
  plan.value_row.assign(P4, 0);
  plan.slope_row.assign(P4, 0);
  for (int p = 0; p < P; ++p) {
    plan.value_row[p] = plan.value_slot[p] * kRow;
    plan.slope_row[p] = std::max(plan.slope_slot[p], 0) * kRow;
  }
  return plan;
}

// ---------------------------------------------------------------- stage 1

NNP_KERNEL
void Descriptor::prepare(const NeighborView& nb, DescriptorWorkspace& ws) const {
  const int n = nb.count;
  const int E = n_elements_;
  ws.element_start.assign(E + 1, 0);
  double* dist = grow(ws.scratch, n);
  for (int j = 0; j < n; ++j) {
    const double d2 = nb.dx[j] * nb.dx[j] + nb.dy[j] * nb.dy[j] + nb.dz[j] * nb.dz[j];
    const double r = std::sqrt(d2);
    dist[j] = r;
    if (r < max_cutoff_) {
      const int e = nb.element[j];
      if (e < 0 || e >= E) throw Error("neighbour element index out of range");
      if (!(r > 0.0)) throw Error("two atoms at the same position (zero distance to a neighbour)");
      ++ws.element_start[e + 1];
    } else if (!(r >= max_cutoff_)) {
      throw Error("non-finite neighbour coordinates");
    }
  }
  for (int e = 0; e < E; ++e) ws.element_start[e + 1] += ws.element_start[e];
  const int active = ws.element_start[E];
  ws.index.resize(active);
  ws.cursor.assign(ws.element_start.begin(), ws.element_start.end() - 1);
  for (int j = 0; j < n; ++j)
    if (dist[j] < max_cutoff_) ws.index[ws.cursor[nb.element[j]]++] = j;
  if (sort_by_distance_)  // so that each function's neighbours are a prefix of its element's
    for (int e = 0; e < E; ++e) {
      int* first = ws.index.data() + ws.element_start[e];
      std::stable_sort(first, ws.index.data() + ws.element_start[e + 1],
                       [dist](int a, int b) { return dist[a] < dist[b]; });
    }
  ws.x.resize(active);
  ws.y.resize(active);
  ws.z.resize(active);
  ws.r.resize(active);
  ws.ux.resize(active);
  ws.uy.resize(active);
  ws.uz.resize(active);
  for (int m = 0; m < active; ++m) {
    const int j = ws.index[m];
    const double r = dist[j];
    ws.x[m] = nb.dx[j];
    ws.y[m] = nb.dy[j];
    ws.z[m] = nb.dz[j];
    ws.r[m] = r;
    ws.ux[m] = nb.dx[j] / r;
    ws.uy[m] = nb.dy[j] / r;
    ws.uz[m] = nb.dz[j] / r;
  }
  // Cutoff values per distinct cutoff radius, exponentials per distinct (η, R_s).
  const std::size_t nc = cutoff_radii_.size(), ne = exp_keys_.size();
  ws.fc.resize(nc * active);
  ws.dfc.resize(nc * active);
  ws.radial_exp.resize(ne * active);
  const double* __restrict r = ws.r.data();
  for (std::size_t s = 0; s < nc; ++s) {
    const double rc = cutoff_radii_[s];
    double* __restrict f = ws.fc.data() + s * active;
    double* __restrict df = ws.dfc.data() + s * active;
    if (cutoff_ == CutoffType::Cos && cutoff_alpha_ == 0.0) {
      if (kernel::wide_vectors()) {
        kernel::cos_cutoff_array<kernel::V4>(r, f, df, active, rc);
      } else {
        kernel::cos_cutoff_array<kernel::V2>(r, f, df, active, rc);
      }
    } else {
      for (int m = 0; m < active; ++m) cutoff_function(cutoff_, r[m], rc, f[m], df[m], cutoff_alpha_);
    }
  }
  for (std::size_t s = 0; s < ne; ++s) {
    const ExpKey& key = exp_keys_[s];
    if (key.chained) continue;
    double* __restrict e = ws.radial_exp.data() + s * active;
    if (key.base >= 0) {
      power_array(e, ws.radial_exp.data() + key.base * active, key.exponent, active);
    } else {
      if (kernel::wide_vectors()) {
        kernel::gaussian_array<kernel::V4>(r, e, active, key.eta, key.rs);
      } else {
        kernel::gaussian_array<kernel::V2>(r, e, active, key.eta, key.rs);
      }
    }
  }
  if (!exp_chains_.empty()) fill_exp_chains(ws);
}

std::pair<int, int> Descriptor::range(const DescriptorWorkspace& ws, int element, double rc) const {
  const int begin = ws.element_start[element], end = ws.element_start[element + 1];
  if (!sort_by_distance_ || rc >= max_cutoff_) return {begin, end};
  const double* r = ws.r.data();
  return {begin, static_cast<int>(std::lower_bound(r + begin, r + end, rc) - r)};
}

NNP_KERNEL

void Descriptor::prepare_all(const NeighborView& nb, DescriptorWorkspace& ws) const {
  prepare(nb, ws);
  const std::size_t G = angular_groups_.size();
  ws.triplet_count.assign(G, 0);
  ws.triplet_pair_offset.assign(G + 1, 0);
  ws.triplet_data_offset.assign(G + 1, 0);
  grow(ws.moments, moment_size_);
  for (std::size_t gi = 0; gi < G; ++gi) {
    if (angular_groups_[gi].moments) {
      ws.triplet_pair_offset[gi + 1] = ws.triplet_pair_offset[gi];
      ws.triplet_data_offset[gi + 1] = ws.triplet_data_offset[gi];
      build_moments(static_cast<int>(gi), ws);
    } else {
      build_triplets(static_cast<int>(gi), ws);
    }
  }
  if (!compact_groups_.empty()) compact_prepare(ws);
}

void Descriptor::values(DescriptorWorkspace& ws) const {
  radial_values(ws);
  for (std::size_t gi = 0; gi < angular_groups_.size(); ++gi) {
    if (angular_groups_[gi].moments) {
      moment_values(static_cast<int>(gi), ws);
    } else {
      triplet_values(static_cast<int>(gi), ws);
    }
  }
  if (!compact_groups_.empty()) compact_values(ws);
}

// ---------------------------------------------------------------- weighted

// Each weighted function becomes its element-resolved terms (W2: G2 of every
// element e, coefficient g_e; W4/W5: G4/G5 of every unordered element pair
// (a, b), coefficient g_a g_b, see nnp/descriptor.h), plain functions stay one
// term each; equal terms are shared. A term with coefficient 0 is left out.
void Descriptor::plan_weighted(int n_elements) {
  std::vector<SymmetryFunction> terms;
  auto term = [&](const SymmetryFunction& t) {
    for (std::size_t i = 0; i < terms.size(); ++i)
      if (same_term(terms[i], t)) return static_cast<int>(i);
    terms.push_back(t);
    return static_cast<int>(terms.size()) - 1;
  };
  mix_start_.assign(1, 0);
  for (std::size_t out = 0; out < functions_.size(); ++out) {
    const SymmetryFunction& f = functions_[out];
    if (!is_weighted(f.type)) {
      mix_term_.push_back(term(f));
      mix_coef_.push_back(1.0);
    } else {
      const std::string where = "symmetry function " + std::to_string(out + 1) + ": ";
      if (f.weights.size() != static_cast<std::size_t>(n_elements))
        throw Error(where + "needs one element weight per element (" + std::to_string(n_elements) + "), found " +
                    std::to_string(f.weights.size()));
      for (const double g : f.weights)
        if (!std::isfinite(g)) throw Error(where + "element weights must be finite");
      SymmetryFunction t = f;
      t.weights.clear();
      if (is_radial(f.type)) {
        t.type = f.type == SymmetryFunctionType::W2 ? SymmetryFunctionType::G2 : SymmetryFunctionType::C2;
        t.element_b = -1;
        for (int e = 0; e < n_elements; ++e) {
          if (f.weights[e] == 0.0) continue;
          t.element_a = e;
          mix_term_.push_back(term(t));
          mix_coef_.push_back(f.weights[e]);
        }
      } else {
        t.type = f.type == SymmetryFunctionType::W4    ? SymmetryFunctionType::G4
                 : f.type == SymmetryFunctionType::W5  ? SymmetryFunctionType::G5
                 : f.type == SymmetryFunctionType::CW4 ? SymmetryFunctionType::C4
                                                       : SymmetryFunctionType::C5;
        for (int a = 0; a < n_elements; ++a)
          for (int b = a; b < n_elements; ++b) {
            const double c = f.weights[a] * f.weights[b];
            if (c == 0.0) continue;
            t.element_a = a;
            t.element_b = b;
            mix_term_.push_back(term(t));
            mix_coef_.push_back(c);
          }
      }
    }
    mix_start_.push_back(static_cast<int>(mix_term_.size()));
  }
  if (terms.empty()) throw Error("every weighted symmetry function has all element weights 0");
  terms_ = std::make_shared<const Descriptor>(std::move(terms), cutoff_, full_angular_sum_, n_elements, cutoff_alpha_);
  max_cutoff_ = terms_->max_cutoff();
}

// Same element-resolved term: same kind and parameters, same neighbour
// element(s) (angular pairs unordered).
bool Descriptor::same_term(const SymmetryFunction& a, const SymmetryFunction& b) {
  return same_function(a, b);
}

void Descriptor::mix(const double* terms, double* G) const {
  for (int o = 0; o < size(); ++o) {
    double s = 0.0;
    for (int x = mix_start_[o]; x < mix_start_[o + 1]; ++x) s += mix_coef_[x] * terms[mix_term_[x]];
    G[o] = s;
  }
}

// ---------------------------------------------------------------- public

void Descriptor::compute(const NeighborView& nb, double* G, DescriptorWorkspace& ws) const {
  if (terms_) {
    double* t = grow(ws.term_g, terms_->size());
    terms_->compute(nb, t, ws);
    mix(t, G);
    return;
  }
  prepare_all(nb, ws);
  ws.g.assign(internal_to_output_.size(), 0.0);
  values(ws);
  for (std::size_t i = 0; i < internal_to_output_.size(); ++i)
    if (internal_to_output_[i] >= 0) G[internal_to_output_[i]] = ws.g[i];
}

void Descriptor::compute_with_jacobian(const NeighborView& nb, double* G, double* dG_dr,
                                       DescriptorWorkspace& ws) const {
  if (terms_) {
    const std::size_t T = terms_->size(), M = size();
    double* t = grow(ws.term_g, T);
    double* dt = grow(ws.term_jacobian, static_cast<std::size_t>(nb.count) * T * 3);
    terms_->compute_with_jacobian(nb, t, dt, ws);
    mix(t, G);
    std::fill(dG_dr, dG_dr + static_cast<std::size_t>(nb.count) * M * 3, 0.0);
    for (int j = 0; j < nb.count; ++j)
      for (std::size_t o = 0; o < M; ++o) {
        double* d = dG_dr + (j * M + o) * 3;
        for (int x = mix_start_[o]; x < mix_start_[o + 1]; ++x) {
          const double* s = dt + (j * T + mix_term_[x]) * 3;
          for (int c = 0; c < 3; ++c) d[c] += mix_coef_[x] * s[c];
        }
      }
    return;
  }
  compute(nb, G, ws);
  std::fill(dG_dr, dG_dr + static_cast<std::size_t>(nb.count) * size() * 3, 0.0);
  jacobian(ws, dG_dr);
}

void Descriptor::accumulate_gradient(const NeighborView& nb, const double* dE_dG, double* dE_dr,
                                     DescriptorWorkspace& ws, bool prepared) const {
  if (terms_) {
    // dE/dT_t = Σ_o c_ot dE/dG_o (the transpose of the mix).
    ws.term_w.assign(terms_->size(), 0.0);
    for (int o = 0; o < size(); ++o)
      for (int x = mix_start_[o]; x < mix_start_[o + 1]; ++x) ws.term_w[mix_term_[x]] += mix_coef_[x] * dE_dG[o];
    terms_->accumulate_gradient(nb, ws.term_w.data(), dE_dr, ws, prepared);
    return;
  }
  if (!prepared) prepare_all(nb, ws);
  ws.w.resize(internal_to_output_.size());
  for (std::size_t i = 0; i < internal_to_output_.size(); ++i)
    ws.w[i] = internal_to_output_[i] >= 0 ? dE_dG[internal_to_output_[i]] : 0.0;
  const std::size_t active = ws.r.size();
  ws.grad.assign(3 * active, 0.0);
  double* gx = ws.grad.data();
  double* gy = gx + active;
  double* gz = gy + active;
  radial_gradient(ws);
  for (std::size_t gi = 0; gi < angular_groups_.size(); ++gi) {
    if (angular_groups_[gi].moments) {
      moment_gradient(static_cast<int>(gi), ws);
    } else {
      triplet_gradient(static_cast<int>(gi), ws);
    }
  }
  if (!compact_groups_.empty()) compact_gradient(ws);
  for (std::size_t m = 0; m < active; ++m) {
    double* d = dE_dr + 3 * static_cast<std::size_t>(ws.index[m]);
    d[0] += gx[m];
    d[1] += gy[m];
    d[2] += gz[m];
  }
}

}  // namespace nnp
