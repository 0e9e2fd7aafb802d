// Cutoff functions f_c(R) and their derivatives, R in Å.
//   cos:   f_c = ½[cos(πR/R_c) + 1]        for R < R_c, else 0
//   tanh3: f_c = tanh³(1 − R/R_c)          for R < R_c, else 0
// Both vanish with their first derivative at R_c, so an atom crossing the
// cutoff changes neither energy nor force discontinuously.
//
// The other cutoffs of n2p2 (its cutoff_type 0–8; format version 5):
//   hard:             f_c = 1
//   tanh3_normalised: f_c = c tanh³(1 − R/R_c), c = 1/tanh³(1) (f_c(0) = 1)
// and, with an inner radius R_ci = α R_c (0 <= α < 1; f_c = 1 below R_ci)
// and x = (R − R_ci)/(R_c − R_ci) ∈ [0, 1):
//   cos:   ½[cos(πx) + 1]                  exp:   e · exp(1/(x² − 1))
//   poly1: (2x − 3)x² + 1                  poly2: ((15 − 6x)x − 10)x³ + 1
//   poly3: (x(x(20x − 70) + 84) − 35)x⁴ + 1
//   poly4: (x(x((315 − 70x)x − 540) + 420) − 126)x⁵ + 1
// (n2p2: hard, cos, tanhu, tanh, exp, poly1–poly4 = types 0, 1, 2, 3, 4,
// 5–8). hard and tanh3_normalised are not smooth at R_c (n2p2's as well).
#pragma once
#include <cmath>
#include <string>

namespace nnp {

enum class CutoffType { Cos, Tanh3, Hard, Tanh3Normalised, Exp, Poly1, Poly2, Poly3, Poly4 };

CutoffType cutoff_type_from_name(const std::string& name);  // throws nnp::Error
const char* cutoff_type_name(CutoffType type);
// Whether the type has the inner radius α R_c (cos, exp, poly1–poly4).
bool cutoff_takes_alpha(CutoffType type);
// The first broken rule of (type, α) ("" if none): 0 <= α < 1, and α = 0
// for a type without an inner radius.
std::string cutoff_alpha_error(CutoffType type, double alpha);
// Whether the file needs version 5 for it (anything but cos and tanh3 with α = 0).
inline bool cutoff_needs_version5(CutoffType type, double alpha) {
  return !(type == CutoffType::Cos || type == CutoffType::Tanh3) || alpha != 0.0;
}

// n2p2's polynomial and exponential "core" functions p(x) on x ∈ [0, 1]
// (p(0) = 1, p(1) = 0, see the table above) and dp/dx: shared by the cutoffs
// and the compact symmetry functions (nnp/descriptor.h).
enum class CoreFunction { Poly1, Poly2, Poly3, Poly4, Exp };

inline void core_function(CoreFunction type, double x, double& f, double& df) {
  constexpr double kE = 2.71828182845904523536;
  const double x2 = x * x;
  switch (type) {
    case CoreFunction::Poly1:
      f = (2.0 * x - 3.0) * x2 + 1.0;
      df = x * (6.0 * x - 6.0);
      return;
    case CoreFunction::Poly2:
      f = ((15.0 - 6.0 * x) * x - 10.0) * x * x2 + 1.0;
      df = x2 * ((60.0 - 30.0 * x) * x - 30.0);
      return;
    case CoreFunction::Poly3:
      f = (x * (x * (20.0 * x - 70.0) + 84.0) - 35.0) * x2 * x2 + 1.0;
      df = x2 * x * (x * (x * (140.0 * x - 420.0) + 420.0) - 140.0);
      return;
    case CoreFunction::Poly4:
      f = (x * (x * ((315.0 - 70.0 * x) * x - 540.0) + 420.0) - 126.0) * x * x2 * x2 + 1.0;
      df = x2 * x2 * (x * (x * ((2520.0 - 630.0 * x) * x - 3780.0) + 2520.0) - 630.0);
      return;
    case CoreFunction::Exp: {
      const double t = 1.0 / (x2 - 1.0);
      const double e = kE * std::exp(t);
      f = e;
      df = -2.0 * x * t * t * e;
      return;
    }
  }
}

// sin w and cos w for w ∈ [0, π/2] from their Taylor series (truncation
// error below 2e-18), without a libm call so that loops over many distances
// vectorise. T is double or a GCC vector of doubles: the descriptor kernels
// (kernel_math.h) evaluate the same series lane by lane.
template <class T>
inline void sin_cos_quarter_turn(T w, T& s, T& c) {
  const T z = w * w;
  // sin w = w Σ_{n=0}^{10} (−z)^n/(2n+1)!,  cos w = Σ_{n=0}^{11} (−z)^n/(2n)!
  s = T{} - 1.0 / 51090942171709440000.0;  // −1/21!
  s = s * z + 1.0 / 121645100408832000.0;  // 1/19!
  s = s * z - 1.0 / 355687428096000.0;     // 1/17!
  s = s * z + 1.0 / 1307674368000.0;
  s = s * z - 1.0 / 6227020800.0;
  s = s * z + 1.0 / 39916800.0;
  s = s * z - 1.0 / 362880.0;
  s = s * z + 1.0 / 5040.0;
  s = s * z - 1.0 / 120.0;
  s = s * z + 1.0 / 6.0;
  s = 1.0 - s * z;
  s *= w;
  c = T{} - 1.0 / 1124000727777607680000.0;  // −1/22!
  c = c * z + 1.0 / 2432902008176640000.0;   // 1/20!
  c = c * z - 1.0 / 6402373705728000.0;      // 1/18!
  c = c * z + 1.0 / 20922789888000.0;
  c = c * z - 1.0 / 87178291200.0;
  c = c * z + 1.0 / 479001600.0;
  c = c * z - 1.0 / 3628800.0;
  c = c * z + 1.0 / 40320.0;
  c = c * z - 1.0 / 720.0;
  c = c * z + 1.0 / 24.0;
  c = c * z - 0.5;
  c = c * z + 1.0;
}

// The cos cutoff through w = (π/2)(R_c − R)/R_c ∈ (0, π/2]:
//   f_c = ½[cos(πR/R_c) + 1] = sin²w,   f_c′ = −(π/R_c) sin w cos w.
// sin²w has no cancellation as R → R_c, unlike 1 + cos. inv_rc = 1/R_c.
// Beyond the cutoff w is clamped to 0, so f_c = f_c′ = 0.
inline void cos_cutoff(double r, double rc, double inv_rc, double& f, double& df) {
  constexpr double kHalfPi = 1.57079632679489661923;
  double w = kHalfPi * ((rc - r) * inv_rc);
  w = w > 0.0 ? w : 0.0;
  double s, c;
  sin_cos_quarter_turn(w, s, c);
  f = s * s;
  df = -2.0 * kHalfPi * inv_rc * s * c;
}

// The cutoffs other than cos and tanh3 (α: the inner radius fraction), for r < rc.
void other_cutoff_function(CutoffType type, double r, double rc, double alpha, double& f, double& df);

// Value and derivative d f_c / dR at distance r for cutoff radius rc.
inline void cutoff_function(CutoffType type, double r, double rc, double& f, double& df, double alpha = 0.0) {
  if (type == CutoffType::Cos && alpha == 0.0) {
    cos_cutoff(r, rc, 1.0 / rc, f, df);
    return;
  }
  if (r >= rc) {
    f = 0.0;
    df = 0.0;
    return;
  }
  if (type != CutoffType::Tanh3) {
    other_cutoff_function(type, r, rc, alpha, f, df);
    return;
  }
  const double t = std::tanh(1.0 - r / rc);
  f = t * t * t;
  df = -3.0 * t * t * (1.0 - t * t) / rc;
}

}  // namespace nnp
