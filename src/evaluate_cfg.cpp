// `mtpkit evaluate` end to end (see evaluate_cfg.hpp). Each step names the
// Python code it reproduces (mtpkit/commands/evaluate.py and what it calls).
#include "evaluate_cfg.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cfg_file.hpp"
#include "mtp_file.hpp"
#include "mtp_file_check.hpp"
#include "mtp_system.hpp"
#include "neighbors.hpp"
#include "pytext.hpp"

namespace mtpkit {
namespace {

namespace pt = pytext;

// ase.units: 1 eV/Å^3 in GPa (mtpkit.potentials.labels.EV_PER_A3_IN_GPA).
constexpr double kEvPerA3InGPa = 160.21766208;
// (i, j) of the Voigt components xx yy zz yz xz xy.
constexpr int kVoigtIJ[6][2] = {{0, 0}, {1, 1}, {2, 2}, {1, 2}, {0, 2}, {0, 1}};

// mtpkit.potentials.labels.config_name
std::string config_name(const std::string& source, size_t k) {
  return source + ", configuration " + std::to_string(k + 1) + " (index " + std::to_string(k) +
         ")";
}

std::string fixed4(double x) {
  std::string s;
  pt::append_fixed(s, x, 0, 4);
  return s;
}

// f"(cell={cell.tolist()}, pbc={pbc.tolist()})" of mtpkit.potentials.core.neighbor_list
std::string cell_and_pbc(const CfgConfiguration& c) {
  std::string out = "(cell=[";
  for (int a = 0; a < 3; ++a) {
    out += a ? ", [" : "[";
    for (int b = 0; b < 3; ++b) out += (b ? ", " : "") + pt::float_repr(c.cell[3 * a + b]);
    out += "]";
  }
  out += "], pbc=[";
  for (int a = 0; a < 3; ++a) out += std::string(a ? ", " : "") + (c.periodic(a) ? "True" : "False");
  return out + "])";
}

// NumPy's pairwise summation of float64 (the order of np.sum / np.mean).
double pairwise_sum(const double* a, size_t n) {
  if (n < 8) {
    double s = 0.0;
    for (size_t i = 0; i < n; ++i) s += a[i];
    return s;
  }
  if (n <= 128) {
    double r[8];
    for (int k = 0; k < 8; ++k) r[k] = a[k];
    size_t i = 8;
    for (; i < n - n % 8; i += 8)
      for (int k = 0; k < 8; ++k) r[k] += a[i + k];
    double s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) s += a[i];
    return s;
  }
  size_t half = n / 2;
  half -= half % 8;
  return pairwise_sum(a, half) + pairwise_sum(a + half, n - half);
}

ErrorSums error_sums(const std::vector<double>& d) {
  ErrorSums s;
  s.count = static_cast<int64_t>(d.size());
  std::vector<double> sq(d.size()), ab(d.size());
  for (size_t i = 0; i < d.size(); ++i) {
    sq[i] = d[i] * d[i];
    ab[i] = std::fabs(d[i]);
    s.max_abs = std::max(s.max_abs, ab[i]);
  }
  s.sum_sq = pairwise_sum(sq.data(), sq.size());
  s.sum_abs = pairwise_sum(ab.data(), ab.size());
  s.sum = pairwise_sum(d.data(), d.size());
  return s;
}

// One evaluated configuration.
struct Result {
  double energy = 0.0;             // eV
  std::vector<double> forces;      // n x 3, eV/Å
  bool has_stress = false;         // 3D periodic cell
  double volume = 0.0;             // Å^3
  std::array<double, 6> stress{};  // ASE Voigt stress, eV/Å^3
};

// mtpkit.potentials.species.atom_types: every type below species_count.
void check_types(const std::vector<CfgConfiguration>& configs, const std::string& source,
                 int species_count) {
  for (size_t k = 0; k < configs.size(); ++k)
    for (int t : configs[k].types)
      if (t >= species_count)
        throw EvaluateError(config_name(source, k) + ": type " + std::to_string(t) +
                            " is outside 0.." + std::to_string(species_count - 1) +
                            " (the potential has species_count = " +
                            std::to_string(species_count) + ")");
}

bool all_rows_nonzero(const std::array<double, 9>& cell) {
  for (int a = 0; a < 3; ++a)
    if (cell[3 * a] == 0.0 && cell[3 * a + 1] == 0.0 && cell[3 * a + 2] == 0.0) return false;
  return true;
}

// mtpkit.potentials.core.evaluate (on_short_distance="warn") for configuration k;
// a short-distance message goes to `short_message`.
Result evaluate_one(const Model& model, const CfgConfiguration& c, const std::string& name,
                    std::string& short_message) {
  const bool pbc[3] = {c.periodic(0), c.periodic(1), c.periodic(2)};
  NeighborList nl;
  try {
    nl = build_neighbor_list(static_cast<int>(c.n_atoms()), c.positions.data(), c.cell.data(),
                             pbc, model.cutoff());
  } catch (const std::invalid_argument& e) {
    throw EvaluateError(name + ": " + e.what() + " " + cell_and_pbc(c));
  }
  if (nl.min_r == 0.0)
    throw EvaluateError(name + ": atoms " + std::to_string(nl.min_i) + " and " +
                        std::to_string(nl.min_j) + " coincide (distance 0)");
  if (nl.min_r < model.min_dist())
    short_message = name + ": atoms " + std::to_string(nl.min_i) + " and " +
                    std::to_string(nl.min_j) + " are " + fixed4(nl.min_r) +
                    " \u00c5 apart, closer than the potential's min_dist = " +
                    fixed4(model.min_dist()) +
                    " \u00c5 (outside the fitted range of the radial basis)";
  EFS efs = evaluate(model, nl, c.types.data());
  bool finite = std::isfinite(efs.energy);
  for (double f : efs.forces) finite = finite && std::isfinite(f);
  if (!finite) throw EvaluateError(name + ": MTP evaluation gave non-finite energy or forces");
  Result r;
  r.energy = efs.energy;
  r.forces = std::move(efs.forces);
  r.volume = c.volume();
  r.has_stress = c.cell_rows == 3 && all_rows_nonzero(c.cell) && r.volume != 0.0;
  if (r.has_stress) {  // core.virial_to_stress: -(W + W^T) / 2 / volume
    const std::vector<double>& w = efs.virial;
    for (int k = 0; k < 6; ++k) {
      const int i = kVoigtIJ[k][0], j = kVoigtIJ[k][1];
      r.stress[k] = (-0.5 * (w[3 * i + j] + w[3 * j + i])) / r.volume;
    }
  }
  return r;
}

// --------------------------------------------------------------------------- writing

// The configuration as write_cfg writes the calculator's results: energy,
// forces, PlusStress = -stress * volume for 3D cells, the input's charge and
// nbh_grades columns and features, Feature EFS_by mtpkit. Empty: written;
// else write_cfg's _check_finite message.
std::string append_result(std::string& out, const CfgConfiguration& c, const Result& r,
                          size_t index) {
  for (double x : c.positions)
    if (!std::isfinite(x)) return "configuration " + std::to_string(index) + ": non-finite positions";
  if (!std::isfinite(r.energy))
    return "configuration " + std::to_string(index) + ": non-finite energy";
  std::array<double, 6> virial{};
  for (int k = 0; k < 6; ++k) {
    if (r.has_stress && !std::isfinite(r.stress[k]))
      return "configuration " + std::to_string(index) + ": non-finite stress";
    virial[k] = -r.stress[k] * r.volume;
  }
  const int charge = c.column_index("charge"), grades = c.column_index("nbh_grades");
  const std::vector<double> charges = charge >= 0 ? c.column(charge) : std::vector<double>();
  const std::vector<double> nbh = grades >= 0 ? c.column(grades) : std::vector<double>();
  CfgRecord rec;
  rec.n_atoms = c.n_atoms();
  rec.types = c.types.data();
  rec.positions = c.positions.data();
  rec.periodic = c.cell_rows > 0;
  rec.cell = c.cell.data();
  rec.forces = r.forces.data();
  rec.charges = charge >= 0 ? charges.data() : nullptr;
  rec.nbh_grades = grades >= 0 ? nbh.data() : nullptr;
  rec.energy = &r.energy;
  rec.virial = r.has_stress ? virial.data() : nullptr;
  for (const CfgFeature& f : c.features)
    if (f.key != "EFS_by") rec.features.emplace_back(f.key, f.written());
  rec.features.emplace_back("EFS_by", "mtpkit");
  append_cfg(out, rec);
  return "";
}

std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// mkdir -p (Path.mkdir(parents=True, exist_ok=True)).
void make_dirs(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) return;
  const std::string up = parent_dir(dir);
  if (up != dir) make_dirs(up);
  if (::mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST) throw FileWriteError(errno, dir);
}

bool write_all(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

// mtpkit.io_utils.atomic_open: a temporary file beside `path`, synced, given
// the permissions a plain open() would, then renamed over `path`; on failure
// the temporary file is removed and `path` is untouched.
void write_atomically(std::string path, const std::string& text) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const std::string dir = parent_dir(path);
  make_dirs(dir);
  const std::string name = path.substr(path.find_last_of('/') + 1);
  std::string tmp = (dir == "/" ? "" : dir) + "/." + name + ".XXXXXX.tmp";
  const int fd = ::mkstemps(tmp.data(), 4);
  if (fd < 0) throw FileWriteError(errno, path);
  int error = 0;
  if (!write_all(fd, text) || ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && !error) error = errno;
  if (!error) {
    const mode_t mask = ::umask(0);
    ::umask(mask);
    if (::chmod(tmp.c_str(), 0666 & ~mask) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0)
      error = errno;
  }
  if (error) {
    ::unlink(tmp.c_str());
    throw FileWriteError(error, path);
  }
}

// --------------------------------------------------------------------------- metrics

// stress (eV/Å^3, Voigt) -> virial (eV) -> GPa, in the steps of extract_labels
// and metrics._stress_voigt_gpa: full_to_voigt(-(-V * s) / V) * GPa.
double stress_gpa(double s, double volume) { return ((volume * s) / volume) * kEvPerA3InGPa; }

// Error sums of mtpkit.potentials.metrics.error_metrics over the configurations
// with energy and force labels (the others are left out, as evaluate.py does).
void add_metrics(EvaluationReport& report, const std::vector<CfgConfiguration>& configs,
                 const std::vector<Result>& results) {
  std::vector<double> de, df, ds;
  for (size_t k = 0; k < configs.size(); ++k) {
    const CfgConfiguration& c = configs[k];
    if (!c.has_energy || !c.has_forces()) continue;
    const int64_t n = c.n_atoms();
    if (n == 0 && report.labelled_without_atoms < 0)
      report.labelled_without_atoms = report.n_labelled;
    ++report.n_labelled;
    report.n_labelled_atoms += n;
    const Result& r = results[k];
    de.push_back((r.energy / static_cast<double>(n) - c.energy / static_cast<double>(n)) * 1000.0);
    const std::vector<double> f = c.forces();
    for (size_t q = 0; q < f.size(); ++q) df.push_back(r.forces[q] - f[q]);
    if (!c.has_stress()) continue;
    ++report.n_stress;
    const double v = c.volume();
    for (int q = 0; q < 6; ++q) {
      const double label = -c.virial[q] / v;  // the reader's stress label
      ds.push_back(stress_gpa(r.stress[q], v) - stress_gpa(label, v));
    }
  }
  report.energy = error_sums(de);
  report.forces = error_sums(df);
  report.stress = error_sums(ds);
}

}  // namespace

FileWriteError::FileWriteError(int error, std::string path)
    : std::runtime_error(path + ": " + std::strerror(error)), error_(error), path_(std::move(path)) {}

std::optional<ModelSpec> read_potential_for_evaluation(const std::string& path,
                                                       std::string& reason) {
  try {
    const std::string data = read_file_bytes(path);
    reason = mtp_file_irregularity(data);
    if (!reason.empty()) return std::nullopt;
    MTPFile file = parse_mtp_file(data, path);
    Model check(file.spec);  // throws std::invalid_argument on an inconsistent moment structure
    return file.spec;
  } catch (const std::exception& e) {
    reason = e.what();
    return std::nullopt;
  }
}

EvaluationReport evaluate_cfg_file(const Model& model, const std::string& cfg_path,
                                   const std::string& output_path, int species_given) {
  const std::vector<CfgConfiguration> configs = read_cfg_file(cfg_path, species_given);
  check_types(configs, cfg_path, model.species_count());
  EvaluationReport report;
  report.n_configs = static_cast<int64_t>(configs.size());
  std::vector<Result> results;
  results.reserve(configs.size());
  for (size_t k = 0; k < configs.size(); ++k) {
    std::string short_message;
    results.push_back(evaluate_one(model, configs[k], config_name(cfg_path, k), short_message));
    if (!short_message.empty() && report.n_short++ == 0) report.first_short = short_message;
  }
  std::string text;
  int64_t atoms = 0;
  for (const CfgConfiguration& c : configs) atoms += c.n_atoms();
  text.reserve(static_cast<size_t>(atoms) * 110 + configs.size() * 600);  // ~ bytes written
  for (size_t k = 0; k < configs.size() && report.write_error.empty(); ++k)
    report.write_error = append_result(text, configs[k], results[k], k);
  if (!report.write_error.empty()) return report;
  write_atomically(output_path, text);
  add_metrics(report, configs, results);
  return report;
}

}  // namespace mtpkit
