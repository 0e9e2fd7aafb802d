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
      {SymmetryFunctionType::C2, "C2", 1, {P::Rl, P::Rc, P::Core}},
      {SymmetryFunctionType::C4, "C4", 2, {P::Rl, P::Rc, P::AngleLeft, P::AngleRight, P::Core}},
      {SymmetryFunctionType::C5, "C5", 2, {P::Rl, P::Rc, P::AngleLeft, P::AngleRight, P::Core}},
      {SymmetryFunctionType::CW2, "CW2", 0, {P::Rl, P::Rc, P::Core}, true},
      {SymmetryFunctionType::CW4, "CW4", 0, {P::Rl, P::Rc, P::AngleLeft, P::AngleRight, P::Core}, true},
      {SymmetryFunctionType::CW5, "CW5", 0, {P::Rl, P::Rc, P::AngleLeft, P::AngleRight, P::Core}, true},
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
    case Parameter::Rl: return "rl";
    case Parameter::AngleLeft: return "angle_left";
    case Parameter::AngleRight: return "angle_right";
    case Parameter::Core: return "core";
  }
  return "?";
}

namespace {

struct CoreName {
  const char* name;
  CoreFunction core;
  bool asymmetric;
};

constexpr CoreName kCoreNames[] = {
    {"p1", CoreFunction::Poly1, false}, {"p2", CoreFunction::Poly2, false}, {"p3", CoreFunction::Poly3, false},
    {"p4", CoreFunction::Poly4, false}, {"p1a", CoreFunction::Poly1, true}, {"p2a", CoreFunction::Poly2, true},
    {"p3a", CoreFunction::Poly3, true}, {"p4a", CoreFunction::Poly4, true}, {"e", CoreFunction::Exp, false},
};

// The compact kinds' own checks (see parameter_error).
std::string compact_parameter_error(const SymmetryFunction& f) {
  if (!(std::isfinite(f.rc) && f.rc > 0)) return "rc must be > 0";
  if (!(f.rc <= kMaxCutoff)) return "rc must be <= " + std::to_string(int(kMaxCutoff)) + " Å";
  if (!(std::isfinite(f.rl) && f.rl < f.rc)) return "need rl < rc";
  if (f.asymmetric && f.core == CoreFunction::Exp) return "the exponential core has no asymmetric form";
  if (is_radial(f.type)) return "";
  const double left = f.angle_left, right = f.angle_right;
  if (!(std::isfinite(left) && std::isfinite(right) && left < right)) return "need angle_left < angle_right";
  const double center = 0.5 * (left + right);
  if ((left < 0.0 && center != 0.0) || (right > 180.0 && center != 180.0))
    return "an angular window reaching beyond [0, 180] degrees must be centred on 0 or 180";
  if (right - left > 360.0) return "the angular window must not be wider than 360 degrees";
  return "";
}

}  // namespace

const std::vector<std::string>& compact_core_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const CoreName& c : kCoreNames) out.push_back(c.name);
    return out;
  }();
  return names;
}

std::string compact_core_name(const SymmetryFunction& f) {
  for (const CoreName& c : kCoreNames)
    if (c.core == f.core && c.asymmetric == f.asymmetric) return c.name;
  return "?";
}

bool set_compact_core(SymmetryFunction& f, const std::string& name) {
  for (const CoreName& c : kCoreNames)
    if (name == c.name) {
      f.core = c.core;
      f.asymmetric = c.asymmetric;
      return true;
    }
  return false;
}

std::string usage(const SymmetryFunctionKind& kind) {
  std::string out = kind.name;
  for (int k = 0; k < kind.n_neighbors; ++k) out += " element";
  for (const Parameter p : kind.parameters) out += std::string(" ") + parameter_name(p);
  return out;
}

std::string parameter_error(const SymmetryFunction& f) {
  if (is_compact(f.type)) {
    const std::string bad = compact_parameter_error(f);
    if (!bad.empty() || !is_weighted(f.type)) return bad;
  } else if (!is_radial(f.type)) {
    if (f.lambda != 1 && f.lambda != -1) return "lambda must be +1 or -1";
    if (!(std::isfinite(f.zeta) && f.zeta >= 1)) return "zeta must be >= 1";
  }
  if (!is_compact(f.type)) {
    if (!(std::isfinite(f.eta) && f.eta >= 0)) return "eta must be >= 0";
    if (!(std::isfinite(f.rc) && f.rc > 0)) return "rc must be > 0";
    if (!(f.rc <= kMaxCutoff)) return "rc must be <= " + std::to_string(int(kMaxCutoff)) + " Å";
    if (!(std::isfinite(f.rs) && f.rs >= 0 && f.rs < f.rc)) return "need 0 <= rs < rc";
  }
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
  if (is_compact(a.type) && (a.rl != b.rl || a.core != b.core || a.asymmetric != b.asymmetric ||
                             (!is_radial(a.type) && (a.angle_left != b.angle_left || a.angle_right != b.angle_right))))
    return false;
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
      case Parameter::Rl: f.rl = read.number(token, name); break;
      case Parameter::AngleLeft: f.angle_left = read.number(token, name); break;
      case Parameter::AngleRight: f.angle_right = read.number(token, name); break;
      case Parameter::Core:
        set_compact_core(f, compact_core_names().at(read.choice(token, "the core function", compact_core_names())));
        break;
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
      case Parameter::Rl: out += " " + format_number(f.rl); break;
      case Parameter::AngleLeft: out += " " + format_number(f.angle_left); break;
      case Parameter::AngleRight: out += " " + format_number(f.angle_right); break;
      case Parameter::Core: out += " " + compact_core_name(f); break;
    }
  }
  return out;
}

}  // namespace nnp
