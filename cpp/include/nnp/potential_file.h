// Reader of the plain-text potential file (docs/potential-format.md): the
// only parser of the format. The writer is format_potential (nnp/potential_spec.h).
#pragma once
#include <string>

#include "nnp/potential.h"
#include "nnp/potential_spec.h"

namespace nnp {

// Parse text into the spec; errors name `source`, the line and what was
// expected ("FILE:LINE: ...").
PotentialSpec parse_potential_spec(const std::string& text, const std::string& source);
// Read a file; errors name the file, the line and what was expected.
Potential read_potential_file(const std::string& path);
// Parse text already in memory (e.g. broadcast from MPI rank 0); `source`
// names it in error messages.
Potential parse_potential(const std::string& text, const std::string& source);
// Whole file as a string; throws nnp::Error naming the file if unreadable.
std::string read_text_file(const std::string& path);

}  // namespace nnp
