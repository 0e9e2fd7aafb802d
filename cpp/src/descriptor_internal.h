// Internals shared by the descriptor kernels (descriptor*.cpp): tuning
// constants, the layout of triplet entries and small inline helpers. Not part
// of the public header; nothing here is used outside cpp/src/descriptor*.cpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernel_math.h"
#include "nnp/descriptor.h"

namespace nnp::detail {

inline constexpr int kMaxIntegerZeta = 64;
// G5 functions with integer ζ up to this are factorised into neighbour
// moments. The number of tensor components grows as ζ³/6 (35 for ζ = 4, 165
// for 8, 969 for 16), so beyond this the triple loop is cheaper for typical
// neighbour counts; and the expansion of (1−cosθ)^ζ cancels terms of size
// up to 2^ζ, whose rounding error would exceed the 1e-12 agreement.
inline constexpr int kMaxMomentZeta = 8;
// exp(−mηx) is computed as exp(−ηx)^m for integer m up to this; the rounding
// error grows like m·ε, far below the 1e-12 agreement the tests demand.
inline constexpr int kMaxExpExponent = 64;
// Triplet entries per chunk of the value and force passes (temporaries stay in L1).
inline constexpr int kChunk = 128;
// Distance between the rows of per-chunk temporaries: not a multiple of
// 512 bytes, so that rows do not alias in the low address bits (a store to
// one row and a load from another 4 KiB away stall the pipeline).
inline constexpr int kRow = kChunk + 8;
// Fields per triplet entry (cosθ, R_ij, R_ik, R_jk, F and its three partial
// derivatives, r̂_j, r̂_k), followed by one E per key.
enum TripletField { kCos, kRij, kRik, kRjk, kF, kFij, kFik, kFjk, kUjx, kUjy, kUjz, kUkx, kUky, kUkz, kFirstKey };

// If eta == m·base_eta for an integer 2 <= m <= kMaxExpExponent, return m.
inline int integer_ratio(double eta, double base_eta) {
  if (!(base_eta > 0) || !(eta > base_eta)) return 0;
  const double m = std::round(eta / base_eta);
  if (m < 2 || m > kMaxExpExponent || m * base_eta != eta) return 0;
  return static_cast<int>(m);
}

inline double* grow(std::vector<double>& v, std::size_t n) {
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
inline std::size_t triplet_stride(const DescriptorWorkspace& ws, std::size_t group) {
  return (ws.triplet_pair_offset[group + 1] - ws.triplet_pair_offset[group]) / 2;
}

// An array of n vectors inside a std::vector<double>, aligned for them.
template <class V>
inline V* vector_scratch(std::vector<double>& v, std::size_t n) {
  grow(v, (n + 1) * kernel::lanes<V>());
  auto p = reinterpret_cast<std::uintptr_t>(v.data());
  p = (p + sizeof(V) - 1) / sizeof(V) * sizeof(V);
  return reinterpret_cast<V*>(p);
}

inline double binomial(int n, int k) {
  double c = 1.0;
  for (int i = 1; i <= k; ++i) c = c * (n - k + i) / i;
  return c;
}

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

}  // namespace nnp::detail
