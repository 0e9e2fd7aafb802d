// Reader of the plain-text potential file (docs/potential-format.md).
#pragma once
#include <string>

#include "nnp/potential.h"

namespace nnp {

constexpr const char* kFormatName = "nnp-potential";
// Newest version written and read. Version 2 adds `repulsion` lines,
// version 3 `quadratic` sections. A file carries the lowest version that can
// express it: 3 with a quadratic section, else 2 with repulsion lines, else 1
// (all three are read).
constexpr int kFormatVersion = 3;

// Read a file; errors name the file, the line and what was expected.
Potential read_potential_file(const std::string& path);
// Parse text already in memory (e.g. broadcast from MPI rank 0); `source`
// names it in error messages.
Potential parse_potential(const std::string& text, const std::string& source);
// Whole file as a string; throws nnp::Error naming the file if unreadable.
std::string read_text_file(const std::string& path);

}  // namespace nnp
