// `mtpkit evaluate POT CFG --output OUT` in C++: read the potential and the
// .cfg, evaluate every configuration, write OUT atomically and sum the errors
// against CFG's labels. Plain C++17 + OpenMP (no Python); the Python side
// (mtpkit/commands/evaluate.py) only parses arguments and prints.
//
// Every result, message and byte written is that of the Python path of the
// same command (the reference, which also serves --report): the same checks
// in the same order, the same arithmetic for the derived numbers, NumPy's
// summation order for the error sums.
//
// Units: energies eV, forces eV/Å, virials eV, stresses GPa in the metrics.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "mtp_core.hpp"

namespace mtpkit {

// A problem `mtpkit evaluate` reports as one line (mtpkit.errors.UserError),
// worded as the Python path words it.
class EvaluateError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Writing a file failed: errno and the file concerned.
class FileWriteError : public std::runtime_error {
 public:
  FileWriteError(int error, std::string path);
  int error() const { return error_; }
  const std::string& path() const { return path_; }

 private:
  int error_;
  std::string path_;
};

// Sums over the differences d = predicted - reference of one quantity, each
// sum in NumPy's pairwise order: sqrt(sum_sq / count), sum_abs / count and
// max_abs are mtpkit.potentials.metrics.error_metrics' RMSE, MAE and max;
// sum / count its mean error (metrics_text.centered: the RMSE without it).
struct ErrorSums {
  int64_t count = 0;
  double sum = 0.0;
  double sum_sq = 0.0;
  double sum_abs = 0.0;
  double max_abs = 0.0;
};

struct EvaluationReport {
  int64_t n_configs = 0;          // configurations evaluated (and written)
  int64_t n_labelled = 0;         // of them with energy and force labels
  int64_t n_labelled_atoms = 0;   // atoms of the labelled ones
  int64_t n_stress = 0;           // labelled ones with a stress label
  int64_t labelled_without_atoms = -1;  // position among the labelled of the first with no atoms
  int64_t n_short = 0;            // configurations with atoms closer than min_dist
  std::string first_short;        // the message about the first of them
  std::string write_error;        // non-empty: nothing written; report it after the warning
  ErrorSums energy;               // meV/atom
  ErrorSums forces;               // eV/Å, force components
  ErrorSums stress;               // GPa, six components per configuration
};

// The potential at `path` for evaluation, or nullopt (and why, in `reason`)
// when the Python reader must read it: a file the compiled reader cannot read,
// an untrained template, or one the Python reader would read differently or
// warn about (mtp_file_check.hpp).
std::optional<ModelSpec> read_potential_for_evaluation(const std::string& path,
                                                       std::string& reason);

// Evaluate every configuration of `cfg_path` and write them to `output_path`.
// `species_given`: number of species named on the command line (-1: none).
// Throws CfgError / CfgNeedsReference (reading), EvaluateError (types beyond
// the potential, coinciding atoms, degenerate cells, non-finite results, in
// the Python path's words) and FileWriteError.
EvaluationReport evaluate_cfg_file(const Model& model, const std::string& cfg_path,
                                   const std::string& output_path, int species_given);

}  // namespace mtpkit
