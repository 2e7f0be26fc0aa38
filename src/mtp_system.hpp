// mtpkit compiled core: whole-configuration evaluation, packed training sets,
// loss + analytic parameter gradient, linear design rows. Plain C++17 + OpenMP.
//
// Conventions: forces F_i = -dE/dx_i (eV/Angstrom); virial W_ab (eV, 3x3,
// row-major) = -dE/d(strain_ab) = -sum_pairs dE_i/dr_ij[a] * r_ij[b]
// (= -V * stress in ASE's convention, MLIP's "PlusStress").
// All reductions run in a fixed order, so results do not depend on the
// number of OpenMP threads.
#pragma once

#include <cstdint>
#include <vector>

#include "mtp_core.hpp"
#include "neighbors.hpp"

namespace mtpkit {

struct EFS {
  double energy = 0.0;
  std::vector<double> forces;         // n x 3
  std::vector<double> virial;         // 9
  std::vector<double> site_energies;  // n
};

// Energy, forces, virial and site energies of one configuration.
// types: n MLIP type indices (checked to be in range).
EFS evaluate(const Model& model, const NeighborList& nl, const int* types);

// Per-atom linear basis rows [one-hot | B_k], n x n_linear().
std::vector<double> site_basis(const Model& model, const NeighborList& nl, const int* types);

// dE_i/dtheta per atom (n x n_params()) if per_atom, else dE/dtheta (n_params()).
std::vector<double> energy_param_grads(const Model& model, const NeighborList& nl,
                                       const int* types, bool per_atom);

// Many configurations, neighbour lists built once (the radial cutoff is fixed).
struct TrainingSet {
  int n_configs = 0;
  int64_t n_atoms = 0;
  double cutoff = 0.0;
  std::vector<int64_t> atom_offset;  // n_configs + 1 (global atom index ranges)
  std::vector<int> types;            // n_atoms
  std::vector<int64_t> pair_offset;  // n_atoms + 1 (global pair ranges)
  std::vector<int> pair_j;           // global atom index of the neighbour
  std::vector<double> rij;           // 3 per pair
  std::vector<double> min_r;         // per config: closest pair distance
  int max_type() const;

  // positions: list of (n_c x 3), cells: n_configs x 9, pbc: n_configs x 3.
  static TrainingSet build(const std::vector<const double*>& positions,
                           const std::vector<int>& counts, const double* cells,
                           const bool* pbc, const std::vector<const int*>& types,
                           double cutoff);
};

struct Predictions {
  std::vector<double> energy;  // n_configs
  std::vector<double> forces;  // n_atoms x 3
  std::vector<double> virial;  // n_configs x 9
};

Predictions predict(const Model& model, const TrainingSet& ts);

// L = sum_c [ a_c (E_c - E*_c)^2 + b_c sum_i |F_ci - F*_ci|^2
//             + d_c sum_ab (W_c,ab - W*_c,ab)^2 ]
// Targets where the matching coefficient is 0 are never read (may be NaN).
// grad (n_params(), mtpkit order) is overwritten. Returns L; fills `pred`.
double loss_and_grad(const Model& model, const TrainingSet& ts, const double* e_target,
                     const double* f_target, const double* v_target, const double* a,
                     const double* b, const double* d, double* grad, Predictions* pred);

// Linear design rows for [species_coeffs | moment_coeffs] (n_linear() columns):
// energy rows (n_configs x K), force rows (n_atoms*3 x K), virial rows
// (n_configs*9 x K), such that E = E_rows . c etc. when radial_coeffs are fixed.
void linear_rows(const Model& model, const TrainingSet& ts, double* e_rows, double* f_rows,
                 double* v_rows);

}  // namespace mtpkit
