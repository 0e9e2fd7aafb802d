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

// Value and derivative d f_c / dR at distance r for cutoff radius rc.
inline void cutoff_function(CutoffType type, double r, double rc, double& f, double& df) {
  if (r >= rc) {
    f = 0.0;
    df = 0.0;
    return;
  }
  if (type == CutoffType::Cos) {
    const double a = M_PI / rc;
    f = 0.5 * (std::cos(a * r) + 1.0);
    df = -0.5 * a * std::sin(a * r);
  } else {
    const double t = std::tanh(1.0 - r / rc);
    f = t * t * t;
    df = -3.0 * t * t * (1.0 - t * t) / rc;
  }
}

}  // namespace nnp
