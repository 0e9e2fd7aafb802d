// Cutoff functions f_c(R) and their derivatives, R in Å.
//   cos:   f_c = ½[cos(πR/R_c) + 1]        for R < R_c, else 0
//   tanh3: f_c = tanh³(1 − R/R_c)          for R < R_c, else 0
// Both vanish with their first derivative at R_c, so an atom crossing the
// cutoff changes neither energy nor force discontinuously.
#pragma once
#include <cmath>
#include <string>

namespace nnp {

enum class CutoffType { Cos, Tanh3 };

CutoffType cutoff_type_from_name(const std::string& name);  // throws nnp::Error
const char* cutoff_type_name(CutoffType type);

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

// Value and derivative d f_c / dR at distance r for cutoff radius rc.
inline void cutoff_function(CutoffType type, double r, double rc, double& f, double& df) {
  if (type == CutoffType::Cos) {
    cos_cutoff(r, rc, 1.0 / rc, f, df);
    return;
  }
  if (r >= rc) {
    f = 0.0;
    df = 0.0;
    return;
  }
  const double t = std::tanh(1.0 - r / rc);
  f = t * t * t;
  df = -3.0 * t * t * (1.0 - t * t) / rc;
}

}  // namespace nnp
