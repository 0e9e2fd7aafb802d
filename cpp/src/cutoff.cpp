#include "nnp/cutoff.h"

#include <cmath>

#include "nnp/error.h"

namespace nnp {

namespace {

struct CutoffName {
  CutoffType type;
  const char* name;
};

// File names, in the order of n2p2's cutoff_type codes after our two
// originals (tanh3 is n2p2's "tanhu", tanh3_normalised its "tanh").
constexpr CutoffName kCutoffNames[] = {
    {CutoffType::Cos, "cos"},         {CutoffType::Tanh3, "tanh3"},
    {CutoffType::Hard, "hard"},       {CutoffType::Tanh3Normalised, "tanh3_normalised"},
    {CutoffType::Exp, "exp"},         {CutoffType::Poly1, "poly1"},
    {CutoffType::Poly2, "poly2"},     {CutoffType::Poly3, "poly3"},
    {CutoffType::Poly4, "poly4"},
};

}  // namespace

CutoffType cutoff_type_from_name(const std::string& name) {
  for (const CutoffName& c : kCutoffNames)
    if (name == c.name) return c.type;
  std::string known;
  for (const CutoffName& c : kCutoffNames) known += std::string(known.empty() ? "" : ", ") + c.name;
  throw Error("unknown cutoff function '" + name + "' (expected one of " + known + ")");
}

const char* cutoff_type_name(CutoffType type) {
  for (const CutoffName& c : kCutoffNames)
    if (type == c.type) return c.name;
  return "?";
}

bool cutoff_takes_alpha(CutoffType type) {
  return type == CutoffType::Cos || type == CutoffType::Exp || type == CutoffType::Poly1 ||
         type == CutoffType::Poly2 || type == CutoffType::Poly3 || type == CutoffType::Poly4;
}

std::string cutoff_alpha_error(CutoffType type, double alpha) {
  if (!(std::isfinite(alpha) && alpha >= 0.0 && alpha < 1.0)) return "the cutoff's alpha must satisfy 0 <= alpha < 1";
  if (alpha != 0.0 && !cutoff_takes_alpha(type))
    return std::string("the cutoff function '") + cutoff_type_name(type) +
           "' has no inner radius (alpha is for cos, exp and poly1-poly4)";
  return "";
}

void other_cutoff_function(CutoffType type, double r, double rc, double alpha, double& f, double& df) {
  if (type == CutoffType::Hard) {
    f = 1.0;
    df = 0.0;
    return;
  }
  if (type == CutoffType::Tanh3Normalised) {
    // c = 1/tanh³(1), as n2p2 computes it: ((e + 1/e)/(e − 1/e))³.
    static const double c = std::pow((std::exp(1.0) + 1.0 / std::exp(1.0)) / (std::exp(1.0) - 1.0 / std::exp(1.0)), 3);
    const double t = std::tanh(1.0 - r / rc);
    f = c * t * t * t;
    df = -3.0 * c * t * t * (1.0 - t * t) / rc;
    return;
  }
  const double rci = rc * alpha;
  if (r < rci) {
    f = 1.0;
    df = 0.0;
    return;
  }
  const double iw = 1.0 / (rc - rci);
  const double x = (r - rci) * iw;
  switch (type) {
    case CutoffType::Cos: {
      constexpr double kPi = 3.14159265358979323846;
      f = 0.5 * (std::cos(kPi * x) + 1.0);
      df = -0.5 * kPi * iw * std::sin(kPi * x);
      return;
    }
    case CutoffType::Exp: core_function(CoreFunction::Exp, x, f, df); break;
    case CutoffType::Poly1: core_function(CoreFunction::Poly1, x, f, df); break;
    case CutoffType::Poly2: core_function(CoreFunction::Poly2, x, f, df); break;
    case CutoffType::Poly3: core_function(CoreFunction::Poly3, x, f, df); break;
    case CutoffType::Poly4: core_function(CoreFunction::Poly4, x, f, df); break;
    default: throw Error("cutoff function without a formula");
  }
  df *= iw;
}

}  // namespace nnp
