// Symmetry-function kernels; formulas and conventions in nnp/descriptor.h.
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
#include <functional>
#include <map>

#include "kernel_math.h"
#include "nnp/error.h"

namespace nnp {

std::size_t DescriptorWorkspace::bytes() const {
  return sizeof(double) * (x.capacity() + y.capacity() + z.capacity() + r.capacity() + ux.capacity() +
                           uy.capacity() + uz.capacity() + fc.capacity() + dfc.capacity() +
                           radial_exp.capacity() + grad.capacity() + triplet_data.capacity() +
                           moments.capacity() + scratch.capacity() + vectors.capacity() + g.capacity() +
                           w.capacity()) +
         sizeof(int) * (index.capacity() + element_start.capacity() + cursor.capacity() +
                        triplet_pairs.capacity()) +
         sizeof(std::size_t) * (triplet_count.capacity() + triplet_pair_offset.capacity() +
                                triplet_data_offset.capacity());
}

namespace {

constexpr int kMaxIntegerZeta = 64;
// G5 functions with integer ζ up to this are factorised into neighbour
// moments. The number of tensor components grows as ζ³/6 (35 for ζ = 4, 165
// for 8, 969 for 16), so beyond this the triple loop is cheaper for typical
// neighbour counts; and the expansion of (1−cosθ)^ζ cancels terms of size
// up to 2^ζ, whose rounding error would exceed the 1e-12 agreement.
constexpr int kMaxMomentZeta = 8;
// exp(−mηx) is computed as exp(−ηx)^m for integer m up to this; the rounding
// error grows like m·ε, far below the 1e-12 agreement the tests demand.
constexpr int kMaxExpExponent = 64;
// Triplet entries per chunk of the value and force passes (temporaries stay in L1).
constexpr int kChunk = 128;
// Distance between the rows of per-chunk temporaries: not a multiple of
// 512 bytes, so that rows do not alias in the low address bits (a store to
// one row and a load from another 4 KiB away stall the pipeline).
constexpr int kRow = kChunk + 8;
// Fields per triplet entry (cosθ, R_ij, R_ik, R_jk, F and its three partial
// derivatives, r̂_j, r̂_k), followed by one E per key.
enum TripletField { kCos, kRij, kRik, kRjk, kF, kFij, kFik, kFjk, kUjx, kUjy, kUjz, kUkx, kUky, kUkz, kFirstKey };

// If eta == m·base_eta for an integer 2 <= m <= kMaxExpExponent, return m.
int integer_ratio(double eta, double base_eta) {
  if (!(base_eta > 0) || !(eta > base_eta)) return 0;
  const double m = std::round(eta / base_eta);
  if (m < 2 || m > kMaxExpExponent || m * base_eta != eta) return 0;
  return static_cast<int>(m);
}

double* grow(std::vector<double>& v, std::size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// dst[t] = src[t]^e for t < n (e >= 0), by left-to-right binary powering in
// passes over the arrays (one per bit of e after the first), each of which
// vectorises.
inline __attribute__((always_inline)) void power_array(double* __restrict dst, const double* __restrict src,
                                                       int e, int n) {
  if (e == 0) {
    for (int t = 0; t < n; ++t) dst[t] = 1.0;
    return;
  }
  int bit = 31 - __builtin_clz(static_cast<unsigned>(e));
  if (bit == 0) {
    for (int t = 0; t < n; ++t) dst[t] = src[t];
    return;
  }
  --bit;
  if (e >> bit & 1) {
    for (int t = 0; t < n; ++t) dst[t] = src[t] * src[t] * src[t];
  } else {
    for (int t = 0; t < n; ++t) dst[t] = src[t] * src[t];
  }
  while (bit-- > 0) {
    if (e >> bit & 1) {
      for (int t = 0; t < n; ++t) dst[t] = dst[t] * dst[t] * src[t];
    } else {
      for (int t = 0; t < n; ++t) dst[t] *= dst[t];
    }
  }
}

// Entries of a triplet list are stored with a stride (their upper bound).
std::size_t triplet_stride(const DescriptorWorkspace& ws, std::size_t group) {
  return (ws.triplet_pair_offset[group + 1] - ws.triplet_pair_offset[group]) / 2;
}

// An array of n vectors inside a std::vector<double>, aligned for them.
template <class V>
V* vector_scratch(std::vector<double>& v, std::size_t n) {
  grow(v, (n + 1) * kernel::lanes<V>());
  auto p = reinterpret_cast<std::uintptr_t>(v.data());
  p = (p + sizeof(V) - 1) / sizeof(V) * sizeof(V);
  return reinterpret_cast<V*>(p);
}

double binomial(int n, int k) {
  double c = 1.0;
  for (int i = 1; i <= k; ++i) c = c * (n - k + i) / i;
  return c;
}

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
    if (cutoff_ == CutoffType::Cos) {
      if (kernel::wide_vectors()) {
        kernel::cos_cutoff_array<kernel::V4>(r, f, df, active, rc);
      } else {
        kernel::cos_cutoff_array<kernel::V2>(r, f, df, active, rc);
      }
    } else {
      for (int m = 0; m < active; ++m) cutoff_function(cutoff_, r[m], rc, f[m], df[m]);
    }
  }
  for (std::size_t s = 0; s < ne; ++s) {
    const ExpKey& key = exp_keys_[s];
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
}

std::pair<int, int> Descriptor::range(const DescriptorWorkspace& ws, int element, double rc) const {
  const int begin = ws.element_start[element], end = ws.element_start[element + 1];
  if (!sort_by_distance_ || rc >= max_cutoff_) return {begin, end};
  const double* r = ws.r.data();
  return {begin, static_cast<int>(std::lower_bound(r + begin, r + end, rc) - r)};
}

NNP_KERNEL
void Descriptor::build_triplets(int gi, DescriptorWorkspace& ws) const {
  const AngularGroup& g = angular_groups_[gi];
  const bool narrow = g.type == SymmetryFunctionType::G4;
  const bool same = g.element_a == g.element_b;
  const auto [a0, a1] = range(ws, g.element_a, g.rc);
  const auto [b0, b1] = range(ws, g.element_b, g.rc);
  const std::size_t nA = a1 - a0, nB = b1 - b0;
  // Entries are stored with a stride of at least the number of pairs (an upper
  // bound of their count), so that they can be written while the pairs are
  // enumerated; padded off multiples of 512 bytes (see kRow).
  const std::size_t pairs = (same ? (nA ? nA * (nA - 1) / 2 : 0) : nA * nB) / 8 * 8 + 12;
  const std::size_t K = g.keys.size();
  const std::size_t fields = kFirstKey + K;
  const std::size_t pair_offset = ws.triplet_pair_offset[gi];
  const std::size_t data_offset = ws.triplet_data_offset[gi];
  ws.triplet_pair_offset[gi + 1] = pair_offset + 2 * pairs;
  ws.triplet_data_offset[gi + 1] = data_offset + fields * pairs;
  if (ws.triplet_pairs.size() < pair_offset + 2 * pairs) ws.triplet_pairs.resize(pair_offset + 2 * pairs);
  if (ws.triplet_data.size() < data_offset + fields * pairs) ws.triplet_data.resize(data_offset + fields * pairs);
  int* __restrict tj = ws.triplet_pairs.data() + pair_offset;
  int* __restrict tk = tj + pairs;
  double* data = ws.triplet_data.data() + data_offset;
  auto field = [&](std::size_t f) { return data + f * pairs; };
  double* __restrict d2 = field(kRjk);  // R_jk² until the square root is taken
  double* __restrict dist2 = grow(ws.scratch, std::max<std::size_t>(nA, nB));
  const double* x = ws.x.data();
  const double* y = ws.y.data();
  const double* z = ws.z.data();
  // Pairs of members: k after j within one element, every k for two. Narrow
  // functions keep only R_jk < r_c: the distances of one j to its k range in
  // a vectorised pass, then a branch-free compaction of the indices.
  const double rc2 = g.rc * g.rc;
  const double* __restrict r = ws.r.data();
  const double* __restrict ux = ws.ux.data();
  const double* __restrict uy = ws.uy.data();
  const double* __restrict uz = ws.uz.data();
  const std::size_t active = ws.r.size();
  const double* __restrict fc = ws.fc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
  const double* __restrict dfc = ws.dfc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
  double* __restrict cos = field(kCos);
  double* __restrict ra = field(kRij);
  double* __restrict rb = field(kRik);
  double* __restrict F = field(kF);
  double* __restrict Fa = field(kFij);
  double* __restrict Fb = field(kFik);
  double* __restrict Fc = field(kFjk);
  double* __restrict u[6] = {field(kUjx), field(kUjy), field(kUjz), field(kUkx), field(kUky), field(kUkz)};
  std::size_t count = 0;
  for (int j = a0; j < a1; ++j) {
    const double xj = x[j], yj = y[j], zj = z[j];
    const int k0 = same ? j + 1 : b0, nk = b1 - k0;
    const std::size_t c0 = count;
    if (narrow) {
      const double* __restrict xk = x + k0;
      const double* __restrict yk = y + k0;
      const double* __restrict zk = z + k0;
      for (int i = 0; i < nk; ++i) {
        const double dx = xk[i] - xj, dy = yk[i] - yj, dz = zk[i] - zj;
        dist2[i] = dx * dx + dy * dy + dz * dz;
      }
      for (int i = 0; i < nk; ++i) {
        tk[count] = k0 + i;
        d2[count] = dist2[i];
        count += dist2[i] < rc2;
      }
    } else {
      for (int i = 0; i < nk; ++i) tk[count + i] = k0 + i;
      count += nk;
    }
    for (std::size_t t = c0; t < count; ++t) tj[t] = j;
  }
  ws.triplet_count[gi] = count;
  const int n = static_cast<int>(count);
  // Per-member terms, gathered.
  for (int t = 0; t < n; ++t) {
    const int j = tj[t], k = tk[t];
    const double ujx = ux[j], ujy = uy[j], ujz = uz[j], ukx = ux[k], uky = uy[k], ukz = uz[k];
    u[0][t] = ujx;
    u[1][t] = ujy;
    u[2][t] = ujz;
    u[3][t] = ukx;
    u[4][t] = uky;
    u[5][t] = ukz;
    cos[t] = ujx * ukx + ujy * uky + ujz * ukz;
    ra[t] = r[j];
    rb[t] = r[k];
    F[t] = fc[j] * fc[k];
    Fa[t] = dfc[j] * fc[k];
    Fb[t] = fc[j] * dfc[k];
  }

  // R_jk terms (narrow): distance and cutoff, vectorised, into F.
  if (narrow) {
    double* __restrict c = d2;
    double* __restrict fcc = grow(ws.scratch, 2 * count);
    double* __restrict dfcc = fcc + count;
    kernel::sqrt_array(c, n);
    if (cutoff_ == CutoffType::Cos) {
      if (kernel::wide_vectors()) {
        kernel::cos_cutoff_array<kernel::V4>(c, fcc, dfcc, n, g.rc);
      } else {
        kernel::cos_cutoff_array<kernel::V2>(c, fcc, dfcc, n, g.rc);
      }
    } else {
      for (int t = 0; t < n; ++t) cutoff_function(cutoff_, c[t], g.rc, fcc[t], dfcc[t]);
    }
    for (int t = 0; t < n; ++t) {
      const double f2 = F[t], f3 = fcc[t];
      F[t] = f2 * f3;
      Fa[t] *= f3;
      Fb[t] *= f3;
      Fc[t] = f2 * dfcc[t];
    }
  } else {
    for (int t = 0; t < n; ++t) Fc[t] = 0.0;
  }
  // E_q = exp(−η_q[(R_ij−R_s)² + (R_ik−R_s)² (+ (R_jk−R_s)²)]): one exponential
  // per key and entry (or a power of an earlier key's), vectorised.
  for (std::size_t q = 0; q < K; ++q) {
    const AngularKey& key = g.keys[q];
    double* __restrict e = field(kFirstKey + q);
    if (key.base >= 0) {
      power_array(e, field(kFirstKey + key.base), key.exponent, n);
    } else {
      const double* c = narrow ? field(kRjk) : nullptr;
      if (kernel::wide_vectors()) {
        kernel::gaussian_sum_array<kernel::V4>(ra, rb, c, e, n, key.eta, key.rs);
      } else {
        kernel::gaussian_sum_array<kernel::V2>(ra, rb, c, e, n, key.eta, key.rs);
      }
    }
  }
}

NNP_KERNEL
void Descriptor::build_moments(int gi, DescriptorWorkspace& ws) const {
  if (kernel::wide_vectors()) {
    build_moments_v<kernel::V4>(gi, ws);
  } else {
    build_moments_v<kernel::V2>(gi, ws);
  }
}

template <class V>
NNP_INLINE void Descriptor::build_moments_v(int gi, DescriptorWorkspace& ws) const {
  const AngularGroup& g = angular_groups_[gi];
  const bool same = g.element_a == g.element_b;
  const int K = static_cast<int>(g.keys.size()), N = g.n_components;
  const std::size_t active = ws.r.size();
  const double* fc = ws.fc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
  double* T = ws.moments.data() + g.moment_offset;
  double* D = T + static_cast<std::size_t>(K) * N * (same ? 1 : 2);
  for (int side = 0; side < (same ? 1 : 2); ++side, T += static_cast<std::size_t>(K) * N) {
    const auto [m0, m1] = range(ws, side ? g.element_b : g.element_a, g.rc);
    const int n = m1 - m0;
    if (same && n < 2) {
      // No pair: G is exactly 0, where Σ_n coef S − diag D would leave rounding.
      std::fill(T, T + static_cast<std::size_t>(K) * N, 0.0);
      std::fill(D, D + K, 0.0);
      break;
    }
    // T = W·Monᵀ, W (K × members) the weights w_q, Mon (N × members) the
    // components r̂^α: first both as rows of vectors (padding members have
    // w = 0; rows padded to 4 keys and 2 components with zeros), then a
    // register-blocked product, 4 keys × 2 components at a time.
    using vdouble = V;
    constexpr int L = kernel::lanes<V>();
    const int nb = (n + L - 1) / L;  // vectors per row
    const int K4 = (K + 3) / 4 * 4, N2 = (N + 1) / 2 * 2;
    vdouble* wrow = vector_scratch<V>(ws.vectors, static_cast<std::size_t>(K4 + N2) * nb);
    vdouble* mrow = wrow + static_cast<std::size_t>(K4) * nb;
    const double* ux = ws.ux.data() + m0;
    const double* uy = ws.uy.data() + m0;
    const double* uz = ws.uz.data() + m0;
    const double* fcm = fc + m0;
    for (int q = K; q < K4; ++q)
      for (int i = 0; i < nb; ++i) wrow[static_cast<std::size_t>(q) * nb + i] = vdouble{};
    for (int i = 0; i < nb; ++i) {
      const int b = i * L;
      const vdouble u[3] = {kernel::load_block<V>(ux, b, n, 0.0), kernel::load_block<V>(uy, b, n, 0.0),
                            kernel::load_block<V>(uz, b, n, 0.0)};
      const vdouble f = kernel::load_block<V>(fcm, b, n, 0.0);
      for (int q = 0; q < K; ++q) {
        const double* ex = ws.radial_exp.data() + static_cast<std::size_t>(g.keys[q].exp_slot) * active + m0;
        wrow[static_cast<std::size_t>(q) * nb + i] = kernel::load_block<V>(ex, b, n, 0.0) * f;
      }
      vdouble* m = mrow + i;  // component a at m[a * nb]
      m[0] = kernel::broadcast<V>(1.0);
      for (int a = 1; a < N; ++a)
        m[static_cast<std::size_t>(a) * nb] = m[static_cast<std::size_t>(monomials_[a].parent) * nb] * u[monomials_[a].axis];
      if (N2 > N) m[static_cast<std::size_t>(N) * nb] = vdouble{};
    }
    for (int q0 = 0; q0 < K4; q0 += 4) {
      const vdouble* w0 = wrow + static_cast<std::size_t>(q0) * nb;
      const vdouble* w1 = w0 + nb;
      const vdouble* w2 = w1 + nb;
      const vdouble* w3 = w2 + nb;
      if (same) {
        vdouble d0{}, d1{}, d2{}, d3{};
        for (int i = 0; i < nb; ++i) {
          d0 += w0[i] * w0[i];
          d1 += w1[i] * w1[i];
          d2 += w2[i] * w2[i];
          d3 += w3[i] * w3[i];
        }
        const double d[4] = {kernel::hsum<V>(d0), kernel::hsum<V>(d1), kernel::hsum<V>(d2), kernel::hsum<V>(d3)};
        for (int k = 0; k < 4 && q0 + k < K; ++k) D[q0 + k] = d[k];
      }
      for (int a0 = 0; a0 < N2; a0 += 2) {
        const vdouble* ma = mrow + static_cast<std::size_t>(a0) * nb;
        const vdouble* mb = ma + nb;
        vdouble s00{}, s01{}, s10{}, s11{}, s20{}, s21{}, s30{}, s31{};
        for (int i = 0; i < nb; ++i) {
          const vdouble x = ma[i], y = mb[i];
          s00 += w0[i] * x;
          s01 += w0[i] * y;
          s10 += w1[i] * x;
          s11 += w1[i] * y;
          s20 += w2[i] * x;
          s21 += w2[i] * y;
          s30 += w3[i] * x;
          s31 += w3[i] * y;
        }
        const vdouble sums[4][2] = {{s00, s01}, {s10, s11}, {s20, s21}, {s30, s31}};
        for (int k = 0; k < 4 && q0 + k < K; ++k)
          for (int c = 0; c < 2 && a0 + c < N; ++c)
            T[static_cast<std::size_t>(q0 + k) * N + a0 + c] = kernel::hsum<V>(sums[k][c]);
      }
    }
  }
}

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
}

// ---------------------------------------------------------------- stage 2

namespace {

// Fills the slots (rows, kRow apart) of a power plan for the n <= kChunk
// triplets of one chunk.
template <class Plan, class Power>
inline __attribute__((always_inline)) void run_plan(const Plan& plan, const std::vector<Power>& powers, const double* cos, int n, double* slots) {
  auto row = [slots](int s) { return slots + static_cast<std::size_t>(s) * kRow; };
  for (int t = 0; t < n; ++t) slots[t] = 1.0;
  for (int sign = 0; sign < 2; ++sign) {
    if (plan.base_slot[sign] < 0) continue;
    const double lambda = sign ? -1.0 : 1.0;
    double* __restrict base = row(plan.base_slot[sign]);
    for (int t = 0; t < n; ++t) base[t] = 1.0 + lambda * cos[t];
  }
  for (const auto& op : plan.ops) {
    double* __restrict d = row(op.dst);
    const double* a = row(op.a);
    const double* b = row(op.b);
#pragma GCC unroll 4
    for (int t = 0; t < n; ++t) d[t] = a[t] * b[t];
  }
  for (std::size_t p = 0; p < powers.size(); ++p) {
    if (powers[p].int_zeta) continue;
    // |cosθ| can exceed 1 by rounding: clamp so that pow sees no negative base.
    const double lambda = powers[p].lambda, zm1 = powers[p].zeta - 1.0;
    double* value = row(plan.value_slot[p]);
    double* slope = plan.slope_slot[p] >= 0 ? row(plan.slope_slot[p]) : nullptr;
    for (int t = 0; t < n; ++t) {
      const double b = std::max(1.0 + lambda * cos[t], 0.0);
      const double v = std::pow(b, zm1);
      value[t] = v * b;
      if (slope) slope[t] = v;
    }
  }
}

}  // namespace

NNP_KERNEL
void Descriptor::values(DescriptorWorkspace& ws) const {
  double* G = ws.g.data();
  const std::size_t active = ws.r.size();
  for (const RadialGroup& g : radial_groups_) {
    const auto [m0, m1] = range(ws, g.element, g.rc);
    const double* __restrict fc = ws.fc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
    for (const RadialTerm& t : g.terms) {
      const double* __restrict e = ws.radial_exp.data() + static_cast<std::size_t>(t.exp_slot) * active;
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (int m = m0; m < m1; ++m) s += e[m] * fc[m];
      G[t.internal] += s;
    }
  }
  for (std::size_t gi = 0; gi < angular_groups_.size(); ++gi) {
    const AngularGroup& g = angular_groups_[gi];
    const int P = static_cast<int>(g.powers.size()), K = static_cast<int>(g.keys.size());
    if (g.moments) {
      const bool same = g.element_a == g.element_b;
      const int N = g.n_components, Z = g.max_zeta;
      const double* Ta = ws.moments.data() + g.moment_offset;
      const double* Tb = same ? Ta : Ta + static_cast<std::size_t>(K) * N;
      const double* D = Ta + static_cast<std::size_t>(K) * N * (same ? 1 : 2);
      double S[kMaxMomentZeta + 1];
      for (int q = 0; q < K; ++q) {
        std::fill(S, S + Z + 1, 0.0);
        for (int a = 0; a < N; ++a)
          S[monomials_[a].degree] += monomials_[a].multinomial * Ta[q * N + a] * Tb[q * N + a];
        for (int p = 0; p < P; ++p) {
          double v = 0;
          for (int deg = 0; deg <= Z; ++deg) v += g.coef[p * (Z + 1) + deg] * S[deg];
          if (same) v -= g.diag[p] * D[q];
          G[g.offset + q * P + p] += v;
        }
      }
      continue;
    }
    const std::size_t count = ws.triplet_count[gi];
    const std::size_t stride = triplet_stride(ws, gi);
    const double* data = ws.triplet_data.data() + ws.triplet_data_offset[gi];
    const PowerPlan& plan = g.value_plan;
    double* slots = grow(ws.scratch, static_cast<std::size_t>(plan.n_slots) * kRow + static_cast<std::size_t>(K) * P);
    double* acc = slots + static_cast<std::size_t>(plan.n_slots) * kRow;
    std::fill(acc, acc + K * P, 0.0);
    // acc_qp = Σ_t E_q F (1+λ_p cosθ)^ζ_p, four powers per pass over a chunk.
    for (std::size_t t0 = 0; t0 < count; t0 += kChunk) {
      const int n = static_cast<int>(std::min<std::size_t>(kChunk, count - t0));
      run_plan(plan, g.powers, data + kCos * stride + t0, n, slots);
      const double* __restrict F = data + kF * stride + t0;
      for (int q = 0; q < K; ++q) {
        const double* __restrict E = data + (kFirstKey + q) * stride + t0;
        for (int p0 = 0; p0 < P; p0 += 4) {
          const int* row = plan.value_row.data() + p0;
          const double* __restrict v0 = slots + row[0];
          const double* __restrict v1 = slots + row[1];
          const double* __restrict v2 = slots + row[2];
          const double* __restrict v3 = slots + row[3];
          double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
          for (int t = 0; t < n; ++t) {
            const double ef = E[t] * F[t];
            s0 += ef * v0[t];
            s1 += ef * v1[t];
            s2 += ef * v2[t];
            s3 += ef * v3[t];
          }
          const double sums[4] = {s0, s1, s2, s3};
          for (int i = 0; i < 4 && p0 + i < P; ++i) acc[q * P + p0 + i] += sums[i];
        }
      }
    }
    for (int q = 0; q < K; ++q)
      for (int p = 0; p < P; ++p) G[g.offset + q * P + p] += acc[q * P + p] * g.powers[p].prefactor;
  }
}

// ---------------------------------------------------------------- stage 3

// Radial: dE/dr_m += Σ_t w_t ∂G_t/∂R r̂.
NNP_KERNEL
void Descriptor::radial_gradient(DescriptorWorkspace& ws) const {
  const std::size_t active = ws.r.size();
  double* gx = ws.grad.data();
  double* gy = gx + active;
  double* gz = gy + active;
  for (const RadialGroup& g : radial_groups_) {
    const auto [m0, m1] = range(ws, g.element, g.rc);
    const double* __restrict fc = ws.fc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
    const double* __restrict dfc = ws.dfc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
    const double* __restrict r = ws.r.data();
    double* __restrict s = grow(ws.scratch, active);
    for (int m = m0; m < m1; ++m) s[m] = 0.0;
    for (const RadialTerm& t : g.terms) {
      const double wt = ws.w[t.internal], two_eta = 2.0 * t.eta, rs = t.rs;
      if (wt == 0.0) continue;
      const double* __restrict e = ws.radial_exp.data() + static_cast<std::size_t>(t.exp_slot) * active;
      for (int m = m0; m < m1; ++m) s[m] += wt * e[m] * (dfc[m] - two_eta * (r[m] - rs) * fc[m]);
    }
    for (int m = m0; m < m1; ++m) {
      gx[m] += s[m] * ws.ux[m];
      gy[m] += s[m] * ws.uy[m];
      gz[m] += s[m] * ws.uz[m];
    }
  }
}

NNP_KERNEL
void Descriptor::triplet_gradient(int gi, DescriptorWorkspace& ws) const {
  const AngularGroup& g = angular_groups_[gi];
  const bool narrow = g.type == SymmetryFunctionType::G4;
  const int P = static_cast<int>(g.powers.size()), K = static_cast<int>(g.keys.size());
  const std::size_t count = ws.triplet_count[gi];
  if (!count) return;
  const std::size_t stride = triplet_stride(ws, gi);
  const double* data = ws.triplet_data.data() + ws.triplet_data_offset[gi];
  const int* tj = ws.triplet_pairs.data() + ws.triplet_pair_offset[gi];
  const int* tk = tj + stride;
  const std::size_t active = ws.r.size();
  double* gx = ws.grad.data();
  double* gy = gx + active;
  double* gz = gy + active;
  // dE/dG scaled by each power's prefactors: A_q = Σ_p wv_qp (1+λcos)^ζ and
  // B_q = Σ_p wd_qp (1+λcos)^(ζ−1) are dE/d(E·F) and its cosθ-derivative.
  const PowerPlan& plan = g.gradient_plan;
  const int P4 = (P + 3) / 4 * 4;
  double* slots = grow(ws.scratch, static_cast<std::size_t>(plan.n_slots + 13) * kRow +
                                       2 * static_cast<std::size_t>(K) * P4);
  double* A = slots + static_cast<std::size_t>(plan.n_slots) * kRow;
  double* B = A + kRow;
  double* S0 = B + kRow;
  double* S1 = S0 + kRow;
  double* S2 = S1 + kRow;
  double* Sc = S2 + kRow;
  double* cjj = Sc + kRow;
  double* cjk = cjj + kRow;
  double* ckj = cjk + kRow;
  double* ckk = ckj + kRow;
  double* dj[3] = {ckk + kRow, ckk + 2 * kRow, ckk + 3 * kRow};
  double* dk[3] = {A, B, S0};  // reused once the coefficients are known
  bool any_rs = false;
  for (const AngularKey& key : g.keys) any_rs |= key.rs != 0.0;
  double* wv = ckk + 4 * kRow;
  double* wd = wv + static_cast<std::size_t>(K) * P4;
  const double* w = ws.w.data() + g.offset;
  for (int q = 0; q < K; ++q)
    for (int p = 0; p < P4; ++p) {
      wv[q * P4 + p] = p < P ? w[q * P + p] * g.powers[p].prefactor : 0.0;
      wd[q * P4 + p] = p < P ? w[q * P + p] * g.powers[p].dprefactor : 0.0;
    }
  for (std::size_t t0 = 0; t0 < count; t0 += kChunk) {
    const int n = static_cast<int>(std::min<std::size_t>(kChunk, count - t0));
    const double* __restrict cos = data + kCos * stride + t0;
    run_plan(plan, g.powers, cos, n, slots);
    for (int q = 0; q < K; ++q) {
      // Four powers per pass (padding: weight 0 on the slot of ones).
      for (int p0 = 0; p0 < P; p0 += 4) {
        const double* a = wv + q * P4 + p0;
        const double* b = wd + q * P4 + p0;
        const double a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
        const double b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3];
        const int* vrow = plan.value_row.data() + p0;
        const int* drow = plan.slope_row.data() + p0;
        const double* __restrict v0 = slots + vrow[0];
        const double* __restrict v1 = slots + vrow[1];
        const double* __restrict v2 = slots + vrow[2];
        const double* __restrict v3 = slots + vrow[3];
        const double* __restrict dv0 = slots + drow[0];
        const double* __restrict dv1 = slots + drow[1];
        const double* __restrict dv2 = slots + drow[2];
        const double* __restrict dv3 = slots + drow[3];
        if (p0 == 0) {
          for (int t = 0; t < n; ++t) {
            A[t] = a0 * v0[t] + a1 * v1[t] + a2 * v2[t] + a3 * v3[t];
            B[t] = b0 * dv0[t] + b1 * dv1[t] + b2 * dv2[t] + b3 * dv3[t];
          }
        } else {
          for (int t = 0; t < n; ++t) {
            A[t] += a0 * v0[t] + a1 * v1[t] + a2 * v2[t] + a3 * v3[t];
            B[t] += b0 * dv0[t] + b1 * dv1[t] + b2 * dv2[t] + b3 * dv3[t];
          }
        }
      }
      // The sums over keys (the S2 one only where some R_s != 0).
      const double* __restrict E = data + (kFirstKey + q) * stride + t0;
      const double eta = g.keys[q].eta, eta_rs = g.keys[q].eta * g.keys[q].rs;
      if (q == 0) {
        for (int t = 0; t < n; ++t) {
          const double AE = A[t] * E[t];
          S0[t] = AE;
          S1[t] = eta * AE;
          S2[t] = eta_rs * AE;
          Sc[t] = B[t] * E[t];
        }
      } else if (any_rs) {
        for (int t = 0; t < n; ++t) {
          const double AE = A[t] * E[t];
          S0[t] += AE;
          S1[t] += eta * AE;
          S2[t] += eta_rs * AE;
          Sc[t] += B[t] * E[t];
        }
      } else {
        for (int t = 0; t < n; ++t) {
          const double AE = A[t] * E[t];
          S0[t] += AE;
          S1[t] += eta * AE;
          Sc[t] += B[t] * E[t];
        }
      }
    }
    // Σ_q A_q E_q (∂F/∂R_x − 2η_q(R_x−R_s,q)F) = ∂F/∂R_x S0 − 2F(R_x S1 − S2).
    const double* __restrict ra = data + kRij * stride + t0;
    const double* __restrict rb = data + kRik * stride + t0;
    const double* __restrict rcc = data + kRjk * stride + t0;
    const double* __restrict F = data + kF * stride + t0;
    const double* __restrict Fa = data + kFij * stride + t0;
    const double* __restrict Fb = data + kFik * stride + t0;
    const double* __restrict Fc = data + kFjk * stride + t0;
    if (narrow) {
      for (int t = 0; t < n; ++t) {
        const double Tcos = F[t] * Sc[t];
        const double Ta = Fa[t] * S0[t] - 2.0 * F[t] * (ra[t] * S1[t] - S2[t]);
        const double Tb = Fb[t] * S0[t] - 2.0 * F[t] * (rb[t] * S1[t] - S2[t]);
        const double Tc_c = (Fc[t] * S0[t] - 2.0 * F[t] * (rcc[t] * S1[t] - S2[t])) / rcc[t];
        const double ia = 1.0 / ra[t], ib = 1.0 / rb[t];
        cjj[t] = Ta - Tcos * cos[t] * ia + Tc_c * ra[t];
        cjk[t] = Tcos * ia - Tc_c * rb[t];
        ckj[t] = Tcos * ib - Tc_c * ra[t];
        ckk[t] = Tb - Tcos * cos[t] * ib + Tc_c * rb[t];
      }
    } else {
      for (int t = 0; t < n; ++t) {
        const double Tcos = F[t] * Sc[t];
        const double Ta = Fa[t] * S0[t] - 2.0 * F[t] * (ra[t] * S1[t] - S2[t]);
        const double Tb = Fb[t] * S0[t] - 2.0 * F[t] * (rb[t] * S1[t] - S2[t]);
        const double ia = 1.0 / ra[t], ib = 1.0 / rb[t];
        cjj[t] = Ta - Tcos * cos[t] * ia;
        cjk[t] = Tcos * ia;
        ckj[t] = Tcos * ib;
        ckk[t] = Tb - Tcos * cos[t] * ib;
      }
    }
    // ∂/∂r_ij and ∂/∂r_ik of the entries, then the scatter (entries come in
    // runs of one j, whose sum stays in registers).
    for (int c = 0; c < 3; ++c) {
      const double* __restrict uj = data + (kUjx + c) * stride + t0;
      const double* __restrict uk = data + (kUkx + c) * stride + t0;
      double* __restrict outj = dj[c];
      double* __restrict outk = dk[c];
      for (int t = 0; t < n; ++t) {
        outj[t] = cjj[t] * uj[t] + cjk[t] * uk[t];
        outk[t] = ckj[t] * uj[t] + ckk[t] * uk[t];
      }
    }
    const int* __restrict js = tj + t0;
    const int* __restrict ks = tk + t0;
    int jrun = js[0];
    double sx = 0, sy = 0, sz = 0;
    for (int t = 0; t < n; ++t) {
      if (js[t] != jrun) {
        gx[jrun] += sx;
        gy[jrun] += sy;
        gz[jrun] += sz;
        sx = sy = sz = 0;
        jrun = js[t];
      }
      sx += dj[0][t];
      sy += dj[1][t];
      sz += dj[2][t];
      const int k = ks[t];
      gx[k] += dk[0][t];
      gy[k] += dk[1][t];
      gz[k] += dk[2][t];
    }
    gx[jrun] += sx;
    gy[jrun] += sy;
    gz[jrun] += sz;
  }
}

namespace {

constexpr int kKeyChunk = 6;  // keys whose weights stay in registers (see moment_keys)

// For the keys [q0, q0 + C) of a factorised group, with w_q and w′_q of one
// vector of members: adds Σ_α ψ′_α r̂^α to chi and α_d ψ_α r̂^(α−e_d) to gu_d,
// where ψ_α = Σ_q Φ_qα w_q and ψ′_α = Σ_q Φ_qα w′_q (phiT: Φ, α-major).
template <class V, int C, class Monomials>
NNP_INLINE void moment_keys(const Monomials& monomials, int N, int K, int q0, const double* phiT, const V* wq,
                            const V* dwq, const V* mon, V& chi, V (&gu)[3]) {
  V w[C], dw[C];
  for (int c = 0; c < C; ++c) {
    w[c] = wq[q0 + c];
    dw[c] = dwq[q0 + c];
  }
  for (int a = 0; a < N; ++a) {
    const double* ph = phiT + static_cast<std::size_t>(a) * K + q0;
    V psi = ph[0] * w[0], ypsi = ph[0] * dw[0];
    for (int c = 1; c < C; ++c) {
      psi += ph[c] * w[c];
      ypsi += ph[c] * dw[c];
    }
    chi += ypsi * mon[a];
    const auto& mo = monomials[a];
    for (int d = 0; d < 3; ++d)
      if (mo.lower[d] >= 0) gu[d] += (mo.power[d] * psi) * mon[mo.lower[d]];
  }
}

}  // namespace

// Force pass of a factorised group. With Φ_qα = ∂E/∂T_qα and δ_q = ∂E/∂D_q,
// for every member m
//   ∂E/∂r_m = [Σ_q w′_qm (Σ_α Φ_qα r̂^α + 2δ_q w_qm)] r̂ + (1 − r̂r̂ᵀ) gu / R,
//   gu_d = Σ_α α_d Ψ_α r̂^(α−e_d),  Ψ_α = Σ_q w_qm Φ_qα,
// with w′ = dw/dR = exp(−η(R−R_s)²)(f_c′ − 2η(R−R_s) f_c).
NNP_KERNEL
void Descriptor::moment_gradient(int gi, DescriptorWorkspace& ws) const {
  if (kernel::wide_vectors()) {
    moment_gradient_v<kernel::V4>(gi, ws);
  } else {
    moment_gradient_v<kernel::V2>(gi, ws);
  }
}

template <class V>
NNP_INLINE void Descriptor::moment_gradient_v(int gi, DescriptorWorkspace& ws) const {
  const AngularGroup& g = angular_groups_[gi];
  const bool same = g.element_a == g.element_b;
  const int K = static_cast<int>(g.keys.size()), N = g.n_components, Z = g.max_zeta;
  const int P = static_cast<int>(g.powers.size());
  const std::size_t active = ws.r.size();
  const double* Ta = ws.moments.data() + g.moment_offset;
  const double* Tb = same ? Ta : Ta + static_cast<std::size_t>(K) * N;
  const double* w = ws.w.data() + g.offset;
  // Members of each side; scratch: γ (K×(Z+1)), δ (K), Φ (N×K).
  std::pair<int, int> sides[2] = {range(ws, g.element_a, g.rc), range(ws, g.element_b, g.rc)};
  if (same && sides[0].second - sides[0].first < 2) return;  // G ≡ 0 (see build_moments)
  double* gamma = grow(ws.scratch, static_cast<std::size_t>(K) * (Z + 2 + N));
  double* delta = gamma + static_cast<std::size_t>(K) * (Z + 1);
  double* phiT = delta + K;
  // γ_qn = Σ_p w_qp coef_pn, δ_q = −Σ_p w_qp diag_p.
  for (int q = 0; q < K; ++q) {
    delta[q] = 0;
    for (int deg = 0; deg <= Z; ++deg) {
      double s = 0;
      for (int p = 0; p < P; ++p) s += w[q * P + p] * g.coef[p * (Z + 1) + deg];
      gamma[q * (Z + 1) + deg] = s;
    }
    for (int p = 0; p < P; ++p) delta[q] -= w[q * P + p] * g.diag[p];
  }
  for (int side = 0; side < (same ? 1 : 2); ++side) {
    const auto [m0, m1] = sides[side];
    const int n = m1 - m0;
    if (!n) continue;
    // Φ for this side: ∂/∂T of Σ coef S, S = Σ mult T^a T^b.
    const double* partner = side ? Ta : Tb;
    for (int q = 0; q < K; ++q)
      for (int a = 0; a < N; ++a)
        phiT[a * K + q] = (same ? 2.0 : 1.0) * gamma[q * (Z + 1) + monomials_[a].degree] *
                          monomials_[a].multinomial * partner[q * N + a];
    // One vector of members at a time, everything in registers but r̂^α,
    // w_q, w′_q:
    //   ψ_α = Σ_q Φ_qα w_q,  ψ′_α = Σ_q Φ_qα w′_q,
    //   χ = Σ_α ψ′_α r̂^α + 2 Σ_q δ_q w_q w′_q,  gu_d = Σ_α α_d ψ_α r̂^(α−e_d).
    using vdouble = V;
    vdouble* mon = vector_scratch<V>(ws.vectors, static_cast<std::size_t>(N) + 2 * K);
    vdouble* wq = mon + N;
    vdouble* dwq = wq + K;
    const double* ux = ws.ux.data() + m0;
    const double* uy = ws.uy.data() + m0;
    const double* uz = ws.uz.data() + m0;
    const double* rm = ws.r.data() + m0;
    const double* fcm = ws.fc.data() + static_cast<std::size_t>(g.cutoff_slot) * active + m0;
    const double* dfcm = ws.dfc.data() + static_cast<std::size_t>(g.cutoff_slot) * active + m0;
    double* gx = ws.grad.data() + m0;
    double* gy = gx + active;
    double* gz = gy + active;
    for (int b = 0; b < n; b += kernel::lanes<V>()) {
      // Padding lanes: f_c = f_c′ = 0 (so w = w′ = 0) and R = 1.
      const vdouble u[3] = {kernel::load_block<V>(ux, b, n, 0.0), kernel::load_block<V>(uy, b, n, 0.0),
                            kernel::load_block<V>(uz, b, n, 0.0)};
      const vdouble r = kernel::load_block<V>(rm, b, n, 1.0);
      const vdouble f = kernel::load_block<V>(fcm, b, n, 0.0);
      const vdouble df = kernel::load_block<V>(dfcm, b, n, 0.0);
      vdouble chi{};
      for (int q = 0; q < K; ++q) {
        const AngularKey& key = g.keys[q];
        const double* ex = ws.radial_exp.data() + static_cast<std::size_t>(key.exp_slot) * active + m0;
        const vdouble e = kernel::load_block<V>(ex, b, n, 0.0);
        wq[q] = e * f;
        dwq[q] = e * (df - (2.0 * key.eta) * (r - key.rs) * f);
        chi += (2.0 * delta[q]) * wq[q] * dwq[q];
      }
      mon[0] = kernel::broadcast<V>(1.0);
      for (int a = 1; a < N; ++a) mon[a] = mon[monomials_[a].parent] * u[monomials_[a].axis];
      // Keys in chunks of up to six, each chunk's weights in registers
      // (χ and gu are linear in ψ, so the chunks' shares add up).
      vdouble gu[3] = {};
      for (int q0 = 0; q0 < K; q0 += kKeyChunk) {
        switch (std::min(kKeyChunk, K - q0)) {
          case 1: moment_keys<V, 1>(monomials_, N, K, q0, phiT, wq, dwq, mon, chi, gu); break;
          case 2: moment_keys<V, 2>(monomials_, N, K, q0, phiT, wq, dwq, mon, chi, gu); break;
          case 3: moment_keys<V, 3>(monomials_, N, K, q0, phiT, wq, dwq, mon, chi, gu); break;
          case 4: moment_keys<V, 4>(monomials_, N, K, q0, phiT, wq, dwq, mon, chi, gu); break;
          case 5: moment_keys<V, 5>(monomials_, N, K, q0, phiT, wq, dwq, mon, chi, gu); break;
          default: moment_keys<V, 6>(monomials_, N, K, q0, phiT, wq, dwq, mon, chi, gu); break;
        }
      }
      const vdouble radial = u[0] * gu[0] + u[1] * gu[1] + u[2] * gu[2];
      const vdouble ir = 1.0 / r;
      const vdouble out[3] = {chi * u[0] + (gu[0] - radial * u[0]) * ir, chi * u[1] + (gu[1] - radial * u[1]) * ir,
                              chi * u[2] + (gu[2] - radial * u[2]) * ir};
      for (int l = 0; l < kernel::lanes<V>() && b + l < n; ++l) {
        gx[b + l] += out[0][l];
        gy[b + l] += out[1][l];
        gz[b + l] += out[2][l];
      }
    }
  }
}

NNP_KERNEL
void Descriptor::jacobian(DescriptorWorkspace& ws, double* dG_dr) const {
  const int M = size();
  const std::size_t active = ws.r.size();
  const int* index = ws.index.data();
  auto at = [&](int member, int out) { return dG_dr + (static_cast<std::size_t>(index[member]) * M + out) * 3; };
  const double* ux = ws.ux.data();
  const double* uy = ws.uy.data();
  const double* uz = ws.uz.data();
  const double* r = ws.r.data();
  for (const RadialGroup& g : radial_groups_) {
    const auto [m0, m1] = range(ws, g.element, g.rc);
    const double* fc = ws.fc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
    const double* dfc = ws.dfc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
    for (const RadialTerm& t : g.terms) {
      const int out = internal_to_output_[t.internal];
      const double* e = ws.radial_exp.data() + static_cast<std::size_t>(t.exp_slot) * active;
      for (int m = m0; m < m1; ++m) {
        const double T_r = e[m] * (dfc[m] - 2.0 * t.eta * (r[m] - t.rs) * fc[m]);
        double* d = at(m, out);
        d[0] += T_r * ux[m];
        d[1] += T_r * uy[m];
        d[2] += T_r * uz[m];
      }
    }
  }
  for (std::size_t gi = 0; gi < angular_groups_.size(); ++gi) {
    const AngularGroup& g = angular_groups_[gi];
    const int P = static_cast<int>(g.powers.size()), K = static_cast<int>(g.keys.size());
    if (g.moments) {
      // Per function: Φ_α = ∂G/∂T_α of its key only, then as moment_gradient.
      const bool same = g.element_a == g.element_b;
      const int N = g.n_components, Z = g.max_zeta;
      const double* Ta = ws.moments.data() + g.moment_offset;
      const double* Tb = same ? Ta : Ta + static_cast<std::size_t>(K) * N;
      double* phi = grow(ws.scratch, N);
      for (int side = 0; side < (same ? 1 : 2); ++side) {
        const auto [m0, m1] = range(ws, side ? g.element_b : g.element_a, g.rc);
        if (same && m1 - m0 < 2) break;  // G ≡ 0 (see build_moments)
        const double* partner = side ? Ta : Tb;
        const double* fc = ws.fc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
        const double* dfc = ws.dfc.data() + static_cast<std::size_t>(g.cutoff_slot) * active;
        for (int q = 0; q < K; ++q) {
          const AngularKey& key = g.keys[q];
          const double* ex = ws.radial_exp.data() + static_cast<std::size_t>(key.exp_slot) * active;
          for (int p = 0; p < P; ++p) {
            const int out = internal_to_output_[g.offset + q * P + p];
            if (out < 0) continue;
            for (int a = 0; a < N; ++a)
              phi[a] = (same ? 2.0 : 1.0) * g.coef[p * (Z + 1) + monomials_[a].degree] * monomials_[a].multinomial *
                       partner[q * N + a];
            const double delta = same ? -g.diag[p] : 0.0;
            for (int m = m0; m < m1; ++m) {
              const double uv[3] = {ux[m], uy[m], uz[m]};
              // r̂^α by the parent recursion, on the fly.
              double mon[165];
              mon[0] = 1.0;
              double Y = phi[0], gu[3] = {0, 0, 0};
              for (int a = 1; a < N; ++a) {
                const Monomial& mo = monomials_[a];
                mon[a] = mon[mo.parent] * uv[mo.axis];
                Y += phi[a] * mon[a];
                for (int d = 0; d < 3; ++d)
                  if (mo.lower[d] >= 0) gu[d] += mo.power[d] * phi[a] * mon[mo.lower[d]];
              }
              const double wv = ex[m] * fc[m];
              const double dv = ex[m] * (dfc[m] - 2.0 * key.eta * (r[m] - key.rs) * fc[m]);
              const double along = dv * (Y + 2.0 * delta * wv);
              const double radial = uv[0] * gu[0] + uv[1] * gu[1] + uv[2] * gu[2];
              double* d = at(m, out);
              for (int c = 0; c < 3; ++c) d[c] += along * uv[c] + wv * (gu[c] - radial * uv[c]) / r[m];
            }
          }
        }
      }
      continue;
    }
    const bool narrow = g.type == SymmetryFunctionType::G4;
    const std::size_t count = ws.triplet_count[gi];
    const double* data = ws.triplet_data.data() + ws.triplet_data_offset[gi];
    const std::size_t stride = triplet_stride(ws, gi);
    const int* tj = ws.triplet_pairs.data() + ws.triplet_pair_offset[gi];
    const int* tk = tj + stride;
    auto field = [&](int f) { return data + f * stride; };
    // Powers per chunk as in the force pass; per entry, the four scalars of
    // each function, then its two vectors.
    const PowerPlan& plan = g.gradient_plan;
    double* slots = grow(ws.scratch, static_cast<std::size_t>(plan.n_slots) * kRow);
    for (std::size_t t0 = 0; t0 < count; t0 += kChunk) {
      const int n = static_cast<int>(std::min<std::size_t>(kChunk, count - t0));
      run_plan(plan, g.powers, field(kCos) + t0, n, slots);
      for (int i = 0; i < n; ++i) {
        const std::size_t t = t0 + i;
        const int j = tj[t], k = tk[t];
        const double cos = field(kCos)[t], a = field(kRij)[t], b = field(kRik)[t], c = field(kRjk)[t];
        const double F = field(kF)[t], Fa = field(kFij)[t], Fb = field(kFik)[t], Fc = field(kFjk)[t];
        const double ia = 1.0 / a, ib = 1.0 / b, ic = narrow ? 1.0 / c : 0.0;
        const double uj[3] = {ux[j], uy[j], uz[j]}, uk[3] = {ux[k], uy[k], uz[k]};
        for (int p = 0; p < P; ++p) {
          const double value = g.powers[p].prefactor * slots[plan.value_row[p] + i];
          const double slope = g.powers[p].dprefactor * slots[plan.slope_row[p] + i];
          for (int q = 0; q < K; ++q) {
            const int out = internal_to_output_[g.offset + q * P + p];
            if (out < 0) continue;
            const AngularKey& key = g.keys[q];
            const double E = field(kFirstKey + q)[t];
            const double PE = value * E;
            const double Tcos = slope * E * F;
            const double two_eta_F = 2.0 * key.eta * F;
            const double Ta = PE * (Fa - two_eta_F * (a - key.rs));
            const double Tb = PE * (Fb - two_eta_F * (b - key.rs));
            const double Tc_c = narrow ? PE * (Fc - two_eta_F * (c - key.rs)) * ic : 0.0;
            const double cjj = Ta - Tcos * cos * ia + Tc_c * a, cjk = Tcos * ia - Tc_c * b;
            const double ckj = Tcos * ib - Tc_c * a, ckk = Tb - Tcos * cos * ib + Tc_c * b;
            double* dj = at(j, out);
            double* dk = at(k, out);
            for (int d = 0; d < 3; ++d) {
              dj[d] += cjj * uj[d] + cjk * uk[d];
              dk[d] += ckj * uj[d] + ckk * uk[d];
            }
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------- public

void Descriptor::compute(const NeighborView& nb, double* G, DescriptorWorkspace& ws) const {
  prepare_all(nb, ws);
  ws.g.assign(internal_to_output_.size(), 0.0);
  values(ws);
  for (std::size_t i = 0; i < internal_to_output_.size(); ++i)
    if (internal_to_output_[i] >= 0) G[internal_to_output_[i]] = ws.g[i];
}

void Descriptor::compute_with_jacobian(const NeighborView& nb, double* G, double* dG_dr,
                                       DescriptorWorkspace& ws) const {
  compute(nb, G, ws);
  std::fill(dG_dr, dG_dr + static_cast<std::size_t>(nb.count) * size() * 3, 0.0);
  jacobian(ws, dG_dr);
}

void Descriptor::accumulate_gradient(const NeighborView& nb, const double* dE_dG, double* dE_dr,
                                     DescriptorWorkspace& ws, bool prepared) const {
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
  for (std::size_t m = 0; m < active; ++m) {
    double* d = dE_dr + 3 * static_cast<std::size_t>(ws.index[m]);
    d[0] += gx[m];
    d[1] += gy[m];
    d[2] += gz[m];
  }
}

}  // namespace nnp
