// mtpkit compiled core: O(N) cell-list neighbour search for periodic (any
// triclinic cell, any number of periodic images, mixed pbc) and non-periodic
// systems. Plain C++17.
#pragma once

#include <cstdint>
#include <vector>

namespace mtpkit {

// Full neighbour list: for every atom i, all (j, image) with 0 < |r_ij| < cutoff,
// r_ij = x_j + image shift - x_i (Angstrom). Pairs of atom i are
// [offsets[i], offsets[i+1]). Deterministic order (independent of threads).
struct NeighborList {
  int n_atoms = 0;
  double cutoff = 0.0;
  std::vector<int64_t> offsets;  // n_atoms + 1
  std::vector<int> j;            // neighbour atom index (0-based, original order)
  std::vector<double> rij;       // 3 per pair
  // Closest pair found (for short-distance checks); min_r = +inf when no pairs.
  double min_r = 0.0;
  int min_i = -1, min_j = -1;
  int64_t n_pairs() const { return static_cast<int64_t>(j.size()); }
};

// positions: n x 3 (Angstrom); cell: 3 x 3, rows are lattice vectors;
// pbc: three flags. Periodic directions need linearly independent lattice
// vectors (throws std::invalid_argument otherwise); non-periodic directions
// ignore the cell. A pair of coinciding atoms (r = 0, distinct atoms or images)
// is reported through min_r = 0 and kept out of the list.
NeighborList build_neighbor_list(int n, const double* positions, const double* cell,
                                 const bool* pbc, double cutoff);

}  // namespace mtpkit
