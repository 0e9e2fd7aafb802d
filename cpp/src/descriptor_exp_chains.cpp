// Chains of radial exponentials: the shifted functions of one η with R_s in
// even steps, each from the one before (see Descriptor::ExpChain).
#include <algorithm>
#include <cmath>
#include <vector>

#include "descriptor_internal.h"
#include "kernel_math.h"
#include "nnp/descriptor.h"

namespace nnp {

using namespace detail;

namespace {

constexpr int kMinChain = 4;        // a shorter run saves too little
constexpr int kMaxChainSteps = 2;   // distinct step sizes (R_s rounded in the file: two)
constexpr double kMaxExponent = 700.0;  // |arguments| that stay far from over- and underflow
constexpr double kMaxCorrection = 1e-9; // |g_k R_max|: the first-order correction is exact to rounding

// out[m] = exp(a·x[m]) for a·x[m] <= 0.
template <class V>
NNP_INLINE void exp_linear_array(const double* x, double* out, std::size_t n, double a) {
  constexpr int L = kernel::lanes<V>();
  for (std::size_t t = 0; t < n; t += L) {
    const V e = kernel::exp_nonpositive<V>(a * kernel::load_block<V>(x, t, n, 0.0));
    if (t + L <= n) {
      kernel::store<V>(out + t, e);
    } else {
      for (std::size_t l = 0; t + l < n; ++l) out[t + l] = e[l];
    }
  }
}

}  // namespace

// Runs of keys with one η, computed directly (no integer-power base) and
// no other key's base, in R_s order (exp_keys_ is sorted by R_s, then η).
void Descriptor::plan_exp_chains() {
  exp_chains_.clear();
  const double rmax = max_cutoff_;
  std::vector<bool> is_base(exp_keys_.size(), false);
  for (const ExpKey& k : exp_keys_)
    if (k.base >= 0) is_base[k.base] = true;
  std::vector<double> etas;
  for (std::size_t s = 0; s < exp_keys_.size(); ++s)
    if (exp_keys_[s].base < 0 && !is_base[s] && std::find(etas.begin(), etas.end(), exp_keys_[s].eta) == etas.end())
      etas.push_back(exp_keys_[s].eta);
  for (const double eta : etas) {
    std::vector<int> run;
    for (std::size_t s = 0; s < exp_keys_.size(); ++s)
      if (exp_keys_[s].eta == eta && exp_keys_[s].base < 0 && !is_base[s]) run.push_back(static_cast<int>(s));
    if (static_cast<int>(run.size()) < kMinChain) continue;
    ExpChain c;
    c.eta = eta;
    c.slots.push_back(run[0]);
    bool ok = true;
    for (std::size_t i = 0; ok && i < run.size(); ++i) {
      const double rs = exp_keys_[run[i]].rs;
      ok = eta * std::pow(std::max(rs, rmax - rs), 2) <= kMaxExponent;  // no member underflows
      if (!ok || i == 0) continue;
      const double prev = exp_keys_[run[i - 1]].rs, delta = rs - prev;
      const double tolerance = kMaxCorrection / (2.0 * eta * rmax);
      auto near = std::find_if(c.steps.begin(), c.steps.end(), [&](double d) { return std::abs(d - delta) <= tolerance; });
      if (near == c.steps.end()) {
        if (static_cast<int>(c.steps.size()) == kMaxChainSteps) {
          ok = false;
          break;
        }
        c.steps.push_back(delta);
        near = c.steps.end() - 1;
      }
      const double exponent = eta * delta * (2.0 * rmax - prev - rs);
      ok = delta > 0 && 2.0 * eta * *near * rmax <= kMaxExponent && std::abs(exponent) <= kMaxExponent;
      c.slots.push_back(run[i]);
      c.step.push_back(static_cast<int>(near - c.steps.begin()));
      c.factor.push_back(std::exp(exponent));
      c.slope.push_back(c.factor.back() * 2.0 * eta * (delta - *near));
    }
    if (!ok) continue;
    for (std::size_t i = 1; i < c.slots.size(); ++i) exp_keys_[c.slots[i]].chained = true;
    exp_chains_.push_back(std::move(c));
  }
}

NNP_KERNEL
void Descriptor::fill_exp_chains(DescriptorWorkspace& ws) const {
  const std::size_t active = ws.r.size();
  const double rmax = max_cutoff_;
  for (const ExpChain& c : exp_chains_) {
    // t = R − R_max <= 0, then one exponential per step size: exp(2ηΔ t).
    double* __restrict t = grow(ws.scratch, (1 + c.steps.size()) * active);
    const double* __restrict r = ws.r.data();
    for (std::size_t m = 0; m < active; ++m) t[m] = r[m] - rmax;
    for (std::size_t d = 0; d < c.steps.size(); ++d) {
      const double a = 2.0 * c.eta * c.steps[d];
      double* __restrict b = t + (1 + d) * active;
      if (kernel::wide_vectors()) {
        exp_linear_array<kernel::V4>(t, b, active, a);
      } else {
        exp_linear_array<kernel::V2>(t, b, active, a);
      }
    }
    for (std::size_t i = 1; i < c.slots.size(); ++i) {
      const double* __restrict prev = ws.radial_exp.data() + static_cast<std::size_t>(c.slots[i - 1]) * active;
      double* __restrict e = ws.radial_exp.data() + static_cast<std::size_t>(c.slots[i]) * active;
      const double* __restrict b = t + (1 + c.step[i - 1]) * active;
      const double f = c.factor[i - 1], g = c.slope[i - 1];
#pragma omp simd
      for (std::size_t m = 0; m < active; ++m) e[m] = prev[m] * b[m] * (f + g * t[m]);
    }
  }
}

}  // namespace nnp
