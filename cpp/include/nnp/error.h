// Errors raised by the nnp core. Every failure the user can cause (bad file,
// bad element, bad geometry) is reported by throwing nnp::Error with a message
// that says what is wrong and where; callers at the boundary (pybind11, the
// LAMMPS pair style) turn it into a Python exception or a LAMMPS error.
#pragma once
#include <stdexcept>
#include <string>

namespace nnp {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace nnp
