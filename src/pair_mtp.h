// pair_style mtp: Moment Tensor Potential (MLIP-2 .mtp / MLIP-3 .almtp) for LAMMPS,
// built as a plugin by mtpkit from the same C++ core as its Python extension.
//
// Syntax:
//   pair_style mtp FILE [species S1 ... Sn] [extrapolation_control]
//                       [every N] [select_threshold X] [break_threshold Y] [save FILE]
//                       [min_dist_error R]
//   pair_coeff * * E1 E2 ... (one entry per LAMMPS type)
//
// pair_coeff entries are element names or MTP type indices (0-based). With the
// `species` keyword (exactly species_count names, in MTP type order) names are
// looked up there; otherwise distinct names take MTP types 0, 1, ... in order of
// first appearance. NULL leaves a type out (only under pair_style hybrid or
// hybrid/overlay, where another style covers it). The file is named in
// pair_style (MLIP's `pair_style mlip` convention), so re-issuing pair_style
// forgets the last pair_coeff: a new pair_coeff must follow.
//
// Units: `units metal` only (the file is in eV and Angstrom). The file is read
// on rank 0 (path as given, else in $LAMMPS_POTENTIALS) and broadcast.
//
// Extrapolation control (needs an .almtp active set): every N steps the grade of
// each atom i is gamma_i = max_k |(invA * b_i)_k| with b_i = site_en_weight *
// dE_i/dtheta (all coefficients) or the linear basis row (species one-hot | B_k),
// depending on the active-set size; with site_en_weight == 0 and
// energy_weight > 0 one configuration grade is computed from the summed row
// scaled by energy_weight / N^(weight_scaling/2). max gamma is exposed as
// pvector[0] (`compute ID all pair mtp` -> c_ID[1]) and extract("max_gamma").
// Configurations with max gamma > select_threshold are appended (extended XYZ,
// per-atom "gamma" column) to the save file; above break_threshold the run stops
// cleanly at that step (like `fix halt ... error soft`).
//
// min_dist_error R: a pair closer than R Angstrom is an MD blow-up (error, run stops).
//
// Threads: the site kernels and per-atom grades run on comm->nthreads OpenMP
// threads (OMP_NUM_THREADS, or `package omp N`); forces, energies and virials
// are summed in a fixed order, so results do not depend on the thread count.
//
// Per-atom energy: the site energy. Per-atom virial: the site virial
// -sum_j r_ij (x) dE_i/dr_ij (sums to the global virial). Works with newton_pair
// on or off and under MPI domain decomposition.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "mtp_core.hpp"
#include "mtp_file.hpp"
#include "pair.h"

namespace LAMMPS_NS {

class PairMTP : public Pair {
 public:
  PairMTP(class LAMMPS *);
  ~PairMTP() override;
  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;
  void *extract(const char *, int &) override;
  double memory_usage() override;

 private:
  std::unique_ptr<mtpkit::Model> model_;
  mtpkit::ActiveSetData aset_;
  std::string potential_file_;
  std::vector<std::string> file_species_;  // from the `species` keyword (may be empty)
  std::vector<std::string> type_names_;    // element of each LAMMPS type (1-based)
  std::vector<int> type_map_;              // LAMMPS type -> MTP type (1-based)

  // extrapolation control
  bool extrapolation_ = false;
  int every_ = 1;
  double select_threshold_ = 2.1;
  double break_threshold_ = 10.0;
  std::string save_file_;
  double min_dist_error_ = 0.0;  // stop (error) when a pair is closer than this (A)
  double max_gamma_ = 0.0;
  double halted_ = 0.0;
  bigint last_graded_step_ = -1;

  // per-step packed neighbourhoods (in cutoff) of the local atoms of mapped types:
  // site q is LAMMPS atom site_atom_[q] of MTP type site_type_[q]; its pairs are
  // [offs_[q], offs_[q+1]) of pjl_ (LAMMPS index j), pjt_ (MTP type of j),
  // prij_ (x_j - x_i, 3 per pair) and pgrad_ (dE_q/dr_ij)
  std::vector<int64_t> offs_;
  std::vector<int> pjl_, pjt_, site_type_, site_atom_;
  std::vector<double> prij_, pgrad_, site_e_;
  std::vector<double> fghost_, gamma_, conf_row_;
  // per-thread scratch (threads: comm->nthreads, i.e. OMP_NUM_THREADS or `package omp N`)
  std::vector<mtpkit::BatchWorkspace> bws_;  // grown by mtpkit::packed_site_energies
  std::vector<mtpkit::Workspace> gws_;
  std::vector<std::vector<double>> grow_;

  void allocate();
  void check_units();
  void grade_site(int tid, int q, double *gamma_out);
  void finish_grading(int nlocal);
  void save_configuration(int nlocal);
};

}  // namespace LAMMPS_NS
