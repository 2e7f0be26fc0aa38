// Reader of MLIP potential files for the LAMMPS plugin (no Python, no LAMMPS).
//
// .mtp  (MLIP-2): "key = value" text; lists as {a, b, ...}; the radial_coeffs
//                 block lists, for each species pair "a-b", radial_funcs_count
//                 lines of radial_basis_size values.
// .almtp (MLIP-3): the same text, then "\n#MVS_v1.1\n" and the MaxVol state:
//                 energy_weight, force_weight, stress_weight, site_en_weight
//                 (one "name value" line each), "weight_scaling <int>", "#",
//                 A then invA as n*n little-endian float64 each, "\n#\n", ...
//                 (n = number of MTP coefficients, or species_count + n_scalar
//                 for a linear-basis active set). MLIP stores invA as the
//                 transpose of A^-1, so the coefficients of a row b are
//                 c = invA * b and the grade is max_k |c_k|.
#pragma once

#include <string>
#include <vector>

#include "mtp_core.hpp"

namespace mtpkit {

struct ActiveSetData {
  bool present = false;
  int n = 0;                      // rows of A
  double energy_weight = 0.0;
  double force_weight = 0.0;
  double stress_weight = 0.0;
  double site_en_weight = 0.0;
  int weight_scaling = 2;
  std::vector<double> invA;       // n x n, MLIP layout: c = invA * b
};

struct MTPFile {
  ModelSpec spec;
  ActiveSetData active_set;
  bool trained = false;           // false for untrained templates (no coefficients)
};

// Read a .mtp / .almtp file. Throws std::runtime_error("<path>: line N: ...")
// naming the line and field of the first problem (integers that do not fit a
// 32-bit int included).
MTPFile read_mtp_file(const std::string& path);

// The same from the file's bytes (e.g. read on one MPI rank and broadcast);
// `path` only names the file in error messages.
MTPFile parse_mtp_file(const std::string& data, const std::string& path);

// All bytes of a file; throws std::runtime_error("<path>: cannot open ...").
std::string read_file_bytes(const std::string& path);

}  // namespace mtpkit
