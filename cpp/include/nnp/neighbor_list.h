// Neighbour lists for finite or periodic (also triclinic, also smaller than
// the cutoff) cells, used by the structure-level evaluation (Python side). The
// LAMMPS plugin uses LAMMPS's own lists.
#pragma once
#include <cstdint>
#include <vector>

namespace nnp {

struct Cell {
  double vectors[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};  // rows: lattice vectors a, b, c (Å)
  bool pbc[3] = {false, false, false};
};

// Compressed rows: the neighbours of atom i are entries offsets[i] .. offsets[i+1]−1.
// Each entry is one periodic image: `index` the atom it is an image of, and
// the vector from atom i to that image. Every image closer than `cutoff`
// (strictly) is listed, including images of i itself; i is never its own
// neighbour at zero distance.
struct NeighborList {
  std::vector<std::int64_t> offsets;  // n_atoms + 1
  std::vector<int> index;
  std::vector<double> dx, dy, dz;
  int n_atoms() const { return offsets.empty() ? 0 : static_cast<int>(offsets.size()) - 1; }
};

// positions: n × 3 (Å). Throws nnp::Error for a degenerate periodic cell or a
// non-finite coordinate.
NeighborList build_neighbor_list(int n, const double* positions, const Cell& cell, double cutoff);

}  // namespace nnp
