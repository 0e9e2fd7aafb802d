#include "nnp/symmetry_function.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "nnp/error.h"

namespace nnp {

const std::vector<SymmetryFunctionKind>& symmetry_function_kinds() {
  using P = Parameter;
  static const std::vector<SymmetryFunctionKind> kinds = {
      {SymmetryFunctionType::G2, "G2", 1, {P::Eta, P::Rs, P::Rc}},
      {SymmetryFunctionType::G4, "G4", 2, {P::Eta, P::Zeta, P::Lambda, P::Rs, P::Rc}},
      {SymmetryFunctionType::G5, "G5", 2, {P::Eta, P::Zeta, P::Lambda, P::Rs, P::Rc}},
      {SymmetryFunctionType::W2, "W2", 0, {P::Eta, P::Rs, P::Rc}, true},
      {SymmetryFunctionType::W4, "W4", 0, {P::Eta, P::Zeta, P::Lambda, P::Rs, P::Rc}, true},
      {SymmetryFunctionType::W5, "W5", 0, {P::Eta, P::Zeta, P::Lambda, P::Rs, P::Rc}, true},
  };
  return kinds;
}

const SymmetryFunctionKind& kind_of(SymmetryFunctionType type) {
  for (const auto& k : symmetry_function_kinds())
    if (k.type == type) return k;
  throw Error("unknown symmetry function type");
}

const SymmetryFunctionKind* kind_named(const std::string& name) {
  for (const auto& k : symmetry_function_kinds())
    if (name == k.name) return &k;
  return nullptr;
}

const char* parameter_name(Parameter p) {
  switch (p) {
    case Parameter::Eta: return "eta";
    case Parameter::Zeta: return "zeta";
    case Parameter::Lambda: return "lambda";
    case Parameter::Rs: return "rs";
    case Parameter::Rc: return "rc";
  }
  return "?";
}

std::string usage(const SymmetryFunctionKind& kind) {
  std::string out = kind.name;
  for (int k = 0; k < kind.n_neighbors; ++k) out += " element";
  for (const Parameter p : kind.parameters) out += std::string(" ") + parameter_name(p);
  return out;
}

std::string parameter_error(const SymmetryFunction& f) {
  if (!is_radial(f.type)) {
    if (f.lambda != 1 && f.lambda != -1) return "lambda must be +1 or -1";
    if (!(std::isfinite(f.zeta) && f.zeta >= 1)) return "zeta must be >= 1";
  }
  if (!(std::isfinite(f.eta) && f.eta >= 0)) return "eta must be >= 0";
  if (!(std::isfinite(f.rc) && f.rc > 0)) return "rc must be > 0";
  if (!(f.rc <= kMaxCutoff)) return "rc must be <= " + std::to_string(int(kMaxCutoff)) + " Å";
  if (!(std::isfinite(f.rs) && f.rs >= 0 && f.rs < f.rc)) return "need 0 <= rs < rc";
  if (is_weighted(f.type)) {
    if (!std::all_of(f.weights.begin(), f.weights.end(), [](double g) { return std::isfinite(g); }))
      return "element weights must be finite";
    if (std::all_of(f.weights.begin(), f.weights.end(), [](double g) { return g == 0.0; }))
      return "element weights must not all be 0";
  }
  return "";
}

bool same_function(const SymmetryFunction& a, const SymmetryFunction& b) {
  if (a.type != b.type || a.eta != b.eta || a.rs != b.rs || a.rc != b.rc) return false;
  if (is_weighted(a.type) && a.weights != b.weights) return false;
  if (is_radial(a.type)) return is_weighted(a.type) || a.element_a == b.element_a;
  if (is_weighted(a.type)) return a.zeta == b.zeta && a.lambda == b.lambda;
  return std::min(a.element_a, a.element_b) == std::min(b.element_a, b.element_b) &&
         std::max(a.element_a, a.element_b) == std::max(b.element_a, b.element_b) &&
         a.zeta == b.zeta && a.lambda == b.lambda;
}

SymmetryFunction parse_function(const SymmetryFunctionKind& kind, const TokenReader& read) {
  SymmetryFunction f;
  f.type = kind.type;
  if (kind.n_neighbors >= 1) f.element_a = read.element(1);
  if (kind.weighted) f.element_a = -1;
  if (kind.n_neighbors == 2) f.element_b = read.element(2);
  std::size_t token = 1 + kind.n_neighbors;
  for (const Parameter p : kind.parameters) {
    const std::string name = parameter_name(p);
    switch (p) {
      case Parameter::Eta: f.eta = read.number(token, name); break;
      case Parameter::Zeta: f.zeta = read.number(token, name); break;
      case Parameter::Lambda: f.lambda = static_cast<int>(read.integer(token, name, -1, 1)); break;
      case Parameter::Rs: f.rs = read.number(token, name); break;
      case Parameter::Rc: f.rc = read.number(token, name); break;
    }
    ++token;
  }
  return f;
}

std::string format_number(double x) {
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%.17g", x);
  return buffer;
}

std::string format_function(const SymmetryFunction& f, const std::vector<std::string>& elements) {
  const SymmetryFunctionKind& kind = kind_of(f.type);
  std::string out = kind.name;
  if (kind.n_neighbors == 1) {
    out += " " + elements.at(f.element_a);
  } else if (kind.n_neighbors == 2) {
    const std::string& a = elements.at(f.element_a);
    const std::string& b = elements.at(f.element_b);
    out += " " + std::min(a, b) + " " + std::max(a, b);
  }
  for (const Parameter p : kind.parameters) {
    switch (p) {
      case Parameter::Eta: out += " " + format_number(f.eta); break;
      case Parameter::Zeta: out += " " + format_number(f.zeta); break;
      case Parameter::Lambda: out += " " + std::to_string(f.lambda); break;
      case Parameter::Rs: out += " " + format_number(f.rs); break;
      case Parameter::Rc: out += " " + format_number(f.rc); break;
    }
  }
  return out;
}

}  // namespace nnp
