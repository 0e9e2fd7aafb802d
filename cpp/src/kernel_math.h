// Math helpers of the descriptor kernels, written with the GCC/Clang vector
// extensions: a V (V2: two doubles, V4: four) is one SIMD register. Plain
// loops would not do everywhere: with GCC's default -ftrapping-math, a loop
// containing a floating-point comparison (a clamp, a select) is not
// vectorised at all.
//
// Every element of an array is computed by the same vector code (a partial
// last group of lanes is padded), so a result does not depend on its
// position in the array.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "nnp/cutoff.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

// The vector types never cross a non-inlined call, so GCC's note that their
// ABI differs between SSE and AVX builds does not apply (GCC emits it at the
// end of the translation unit, so it stays off for the includer).
#pragma GCC diagnostic ignored "-Wpsabi"

// Runtime dispatch: the kernels are compiled twice, for the portable x86-64
// baseline (SSE2) and for x86-64-v3 (AVX2 + FMA), and the dynamic loader
// picks the version the CPU supports (GCC's target_clones, an ELF ifunc;
// glibc only). So the default build stays portable and still uses the wide
// units where they exist. Inside a kernel, wide_vectors() selects the vector
// width (V4 in the AVX2 version, V2 in the baseline one, where four lanes
// would be split into pairs and spilled). The versions round differently
// (FMA), at the level of 1e-16 relative. Builds that already target AVX2
// (NNP_NATIVE) need no clones; defining NNP_NO_KERNEL_CLONES builds the
// baseline version only (to test it).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__) && \
    !defined(__AVX2__) && !defined(NNP_NO_KERNEL_CLONES)
#define NNP_KERNEL __attribute__((target_clones("arch=x86-64-v3", "default")))
#define NNP_KERNEL_CLONES 1
#else
#define NNP_KERNEL
#define NNP_KERNEL_CLONES 0
#endif

#define NNP_INLINE inline __attribute__((always_inline))

namespace nnp::kernel {

typedef double V2 __attribute__((vector_size(16)));
typedef double V4 __attribute__((vector_size(32)));

// Whether the running kernel version uses V4 (the CPU has AVX2 and FMA).
inline bool wide_vectors() {
#if defined(__AVX2__) && defined(__FMA__)
  return true;
#elif NNP_KERNEL_CLONES
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return avx2;
#else
  return false;
#endif
}

template <class V>
constexpr int lanes() {
  return sizeof(V) / sizeof(double);
}

// The integer vector of V's comparisons (lanes of all ones or zeros).
template <class V>
using Mask = decltype(V{} < V{});

template <class V>
NNP_INLINE V broadcast(double x) {
  return V{} + x;
}

template <class V>
NNP_INLINE V select(Mask<V> mask, V a, V b) {
  return reinterpret_cast<V>((reinterpret_cast<Mask<V>>(a) & mask) | (reinterpret_cast<Mask<V>>(b) & ~mask));
}

template <class V>
NNP_INLINE V load(const double* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <class V>
NNP_INLINE void store(double* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

// Sum of the lanes, in a fixed order.
template <class V>
NNP_INLINE double hsum(V v) {
  if constexpr (lanes<V>() == 2) {
    return v[0] + v[1];
  } else {
    return (v[0] + v[1]) + (v[2] + v[3]);
  }
}

// Lanes [b, b + lanes) of an array of n values, padded with `pad` past n.
template <class V>
NNP_INLINE V load_block(const double* p, int b, int n, double pad) {
  if (b + lanes<V>() <= n) return load<V>(p + b);
  double tmp[lanes<V>()];
  for (int l = 0; l < lanes<V>(); ++l) tmp[l] = b + l < n ? p[b + l] : pad;
  return load<V>(tmp);
}

// exp(x) for x <= 0 (the kernels only need exp(−η(R−R_s)²)), within 1 ulp.
// x = n ln2 + r with |r| <= ln2/2 (ln2 split in two so that n·ln2_hi is
// exact), exp(r) from its Taylor series to r^13 (truncation error 4e-18
// relative), and 2^n added to the exponent bits. Below −708 (where the result
// would be subnormal, < 2.3e-308) it returns 0.
template <class V>
NNP_INLINE V exp_nonpositive(V x) {
  using U = Mask<V>;
  const V kMin = broadcast<V>(-708.0);
  const V kShift = broadcast<V>(0x1.8p52);  // adding it rounds to an integer
  const U low = x < kMin;
  const V xc = select<V>(low, kMin, x);
  V kd = xc * 1.4426950408889634074 + kShift;
  const U ki = reinterpret_cast<U>(kd);  // low bits hold n
  kd -= kShift;
  const V r = (xc - kd * 0x1.62e42fefa3800p-1) - kd * 0x1.ef35793c76730p-45;
  V p = broadcast<V>(1.0 / 6227020800.0);  // 1/13!
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  // ki << 52 is n·2^52 (mod 2^64): adding it multiplies p by 2^n.
  const V y = reinterpret_cast<V>(reinterpret_cast<U>(p) + (ki << 52));
  return select<V>(low, V{}, y);
}

// The cos cutoff of nnp/cutoff.h (cos_cutoff), lane by lane, with its series.
template <class V>
NNP_INLINE void cos_cutoff(V r, double rc, double inv_rc, V& f, V& df) {
  constexpr double kHalfPi = 1.57079632679489661923;
  V w = kHalfPi * ((rc - r) * inv_rc);
  w = select<V>(w > 0.0, w, V{});
  V s, c;
  sin_cos_quarter_turn<V>(w, s, c);
  f = s * s;
  df = (-2.0 * kHalfPi * inv_rc) * s * c;
}

// out[t] = exp(−η(r[t]−R_s)²).
template <class V>
NNP_INLINE void gaussian_array(const double* r, double* out, std::size_t n, double eta, double rs) {
  constexpr int L = lanes<V>();
  for (std::size_t t = 0; t < n; t += L) {
    const V d = load_block<V>(r, t, n, rs) - rs;
    const V e = exp_nonpositive<V>(-eta * d * d);
    if (t + L <= n) {
      store<V>(out + t, e);
    } else {
      for (std::size_t l = 0; t + l < n; ++l) out[t + l] = e[l];
    }
  }
}

// out[t] = exp(−η[(a[t]−R_s)² + (b[t]−R_s)² + (c[t]−R_s)²]), without the c
// term when c is null.
template <class V>
NNP_INLINE void gaussian_sum_array(const double* a, const double* b, const double* c, double* out,
                                   std::size_t n, double eta, double rs) {
  constexpr int L = lanes<V>();
  for (std::size_t t = 0; t < n; t += L) {
    V d = load_block<V>(a, t, n, rs) - rs;
    V s = d * d;
    d = load_block<V>(b, t, n, rs) - rs;
    s += d * d;
    if (c) {
      d = load_block<V>(c, t, n, rs) - rs;
      s += d * d;
    }
    const V e = exp_nonpositive<V>(-eta * s);
    if (t + L <= n) {
      store<V>(out + t, e);
    } else {
      for (std::size_t l = 0; t + l < n; ++l) out[t + l] = e[l];
    }
  }
}

// f[t], df[t] = the cos cutoff at r[t] (f = df = 0 for r >= rc).
template <class V>
NNP_INLINE void cos_cutoff_array(const double* r, double* f, double* df, std::size_t n, double rc) {
  constexpr int L = lanes<V>();
  const double inv_rc = 1.0 / rc;
  for (std::size_t t = 0; t < n; t += L) {
    V vf, vdf;
    cos_cutoff<V>(load_block<V>(r, t, n, rc), rc, inv_rc, vf, vdf);
    if (t + L <= n) {
      store<V>(f + t, vf);
      store<V>(df + t, vdf);
    } else {
      for (std::size_t l = 0; t + l < n; ++l) {
        f[t + l] = vf[l];
        df[t + l] = vdf[l];
      }
    }
  }
}

// sqrt of every lane (>= 0), with the baseline's two-lane instruction.
template <class V>
NNP_INLINE V sqrt_v(V x) {
#if defined(__SSE2__)
  double a[lanes<V>()];
  std::memcpy(a, &x, sizeof x);
  for (int h = 0; h < lanes<V>(); h += 2) _mm_storeu_pd(a + h, _mm_sqrt_pd(_mm_loadu_pd(a + h)));
  return load<V>(a);
#else
  for (int l = 0; l < lanes<V>(); ++l) x[l] = std::sqrt(x[l]);
  return x;
#endif
}

}  // namespace nnp::kernel
