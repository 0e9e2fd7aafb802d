#include "nnp/cutoff.h"

#include "nnp/error.h"

namespace nnp {

CutoffType cutoff_type_from_name(const std::string& name) {
  if (name == "cos") return CutoffType::Cos;
  if (name == "tanh3") return CutoffType::Tanh3;
  throw Error("unknown cutoff function '" + name + "' (expected cos or tanh3)");
}

const char* cutoff_type_name(CutoffType type) {
  return type == CutoffType::Cos ? "cos" : "tanh3";
}

}  // namespace nnp
