// The `mtpkit` command.
//
// `mtpkit evaluate POT CFG --output OUT [--species A,B,...]` runs here, in C++,
// without starting Python: the evaluation itself costs less than a Python
// interpreter's start-up, so a Python entry point cannot keep the whole command
// near the in-process cost (benchmarks/bench_cli.py). Every other command line,
// and every evaluate run that ends in anything but plain success (an error, a
// file only the Python readers read, --report, --help, an argument form this
// file does not parse), is handed with execv() to `mtpkit-py`, the Python
// command line (mtpkit.cli:main) that pip installs beside this program. The
// Python side then does the whole work again and words the outcome; so both
// routes give the same output file, the same printed lines and the same exit
// status, and this file never has to word an error.
//
// Lines printed on success are those of mtpkit/commands/evaluate.py
// (_print_report) and mtpkit/potentials/metrics_text.py (format_metrics).
// Units: energies meV/atom, forces eV/Å, stresses GPa, distances Å.

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "evaluate_cfg.hpp"
#include "mtp_core.hpp"

namespace {

// mtpkit/commands/_species.py CHEMICAL_SYMBOLS, generated at build time from that file
const char* const kChemicalSymbols[] = {
#include "chemical_symbols.inc"
};

struct EvaluateArgs {
  std::string potential, configurations, output;
  std::optional<std::string> species;
};

bool is_plain_ascii(const char* s) {
  for (; *s; ++s) {
    const unsigned char c = static_cast<unsigned char>(*s);
    if (c < 0x20 || c >= 0x7f) return false;
  }
  return true;
}

// The arguments after `evaluate` when they take a form argparse reads one way
// only: two positionals, --output/-o once, --species once, nothing else, no
// value that starts with '-'. nullopt for anything else (the Python side parses it).
std::optional<EvaluateArgs> parse_evaluate(int argc, char** argv) {
  EvaluateArgs a;
  std::vector<std::string> positional;
  bool have_output = false;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.empty() || !is_plain_ascii(argv[i])) return std::nullopt;
    std::optional<std::string> value;
    std::string option;
    if (arg == "--output" || arg == "-o" || arg == "--species") {
      if (i + 1 >= argc) return std::nullopt;
      option = arg;
      value = argv[++i];
    } else if (arg.rfind("--output=", 0) == 0 || arg.rfind("--species=", 0) == 0) {
      const auto eq = arg.find('=');
      option = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else if (arg[0] == '-') {
      return std::nullopt;  // --report, --help, abbreviations, -oFILE, --, ...
    } else {
      positional.push_back(arg);
      continue;
    }
    if (value->empty() || (*value)[0] == '-' || !is_plain_ascii(value->c_str())) return std::nullopt;
    if (option == "--species") {
      if (a.species) return std::nullopt;
      a.species = *value;
    } else {
      if (have_output) return std::nullopt;
      a.output = *value;
      have_output = true;
    }
  }
  if (positional.size() != 2 || !have_output) return std::nullopt;
  a.potential = positional[0];
  a.configurations = positional[1];
  return a;
}

// Number of symbols in a --species value that mtpkit.commands._species.parse_species
// accepts and that has no duplicates; nullopt otherwise (the Python side words it).
std::optional<int> count_species(const std::string& text) {
  std::set<std::string> seen;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(start, end - start);
    const char* ws = " \t\n\r\v\f";
    const size_t b = item.find_first_not_of(ws);
    item = b == std::string::npos ? "" : item.substr(b, item.find_last_not_of(ws) - b + 1);
    if (!item.empty()) {
      bool known = false;
      for (const char* s : kChemicalSymbols) known = known || item == s;
      if (!known || !seen.insert(item).second) return std::nullopt;
    }
    start = end + 1;
  }
  if (seen.empty()) return std::nullopt;
  return static_cast<int>(seen.size());
}

std::string format_fixed(double x, int digits) {
  if (std::isnan(x)) return "nan";  // Python's format never writes "-nan"
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, x);
  return buf;
}

// (RMSE, MAE) from error sums, NaN for none (metrics_text._stats)
std::pair<double, double> stats(const mtpkit::ErrorSums& s) {
  if (!s.count) return {NAN, NAN};
  return {std::sqrt(s.sum_sq / static_cast<double>(s.count)), s.sum_abs / static_cast<double>(s.count)};
}

void print_report(const EvaluateArgs& a, double min_dist, const mtpkit::EvaluationReport& r) {
  if (r.n_short)
    std::fprintf(stderr,
                 "warning: %lld of %lld configurations have atoms closer than min_dist = %s A "
                 "(extrapolation); first: %s\n",
                 static_cast<long long>(r.n_short), static_cast<long long>(r.n_configs),
                 format_fixed(min_dist, 4).c_str(), r.first_short.c_str());
  std::printf("wrote %lld configurations with mtpkit energies, forces and stresses to %s\n",
              static_cast<long long>(r.n_configs), a.output.c_str());
  if (!r.n_labelled) {
    std::printf("%s has no energy/force labels: no error metrics\n", a.configurations.c_str());
    return;
  }
  if (r.n_labelled < r.n_configs)
    std::printf("%lld configurations without energy/force labels are left out of the metrics\n",
                static_cast<long long>(r.n_configs - r.n_labelled));
  const auto [e_rmse, e_mae] = stats(r.energy);
  const auto [f_rmse, f_mae] = stats(r.forces);
  const auto s_rmse = stats(r.stress).first;
  std::printf("errors against %s (%lld configurations, %lld atoms, %lld with stress): "
              "E RMSE %s meV/atom (MAE %s), F RMSE %s eV/A (MAE %s), S RMSE %s GPa\n",
              a.configurations.c_str(), static_cast<long long>(r.n_labelled),
              static_cast<long long>(r.n_labelled_atoms), static_cast<long long>(r.n_stress),
              format_fixed(e_rmse, 3).c_str(), format_fixed(e_mae, 3).c_str(),
              format_fixed(f_rmse, 4).c_str(), format_fixed(f_mae, 4).c_str(),
              format_fixed(s_rmse, 4).c_str());
}

std::string own_directory() {
  std::vector<char> buf(PATH_MAX + 1);
  const ssize_t n = ::readlink("/proc/self/exe", buf.data(), PATH_MAX);
  if (n <= 0) return ".";
  std::string path(buf.data(), static_cast<size_t>(n));
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
}

// Replace this process by the Python command line with the same arguments.
[[noreturn]] void hand_to_python(int argc, char** argv) {
  const std::string python_cli = own_directory() + "/mtpkit-py";
  std::vector<char*> args(argv, argv + argc);
  args[0] = const_cast<char*>(python_cli.c_str());
  args.push_back(nullptr);
  ::execv(python_cli.c_str(), args.data());
  std::fprintf(stderr,
               "mtpkit: cannot start the Python command line %s (%s); it is installed with mtpkit "
               "beside this program (reinstall mtpkit, or run `python -m mtpkit`)\n",
               python_cli.c_str(), std::strerror(errno));
  std::exit(127);
}

volatile std::sig_atomic_t interrupted = 0;
extern "C" void on_interrupt(int) { interrupted = 1; }

// The evaluate run, or nullopt when the Python side must do it (nothing printed yet).
std::optional<int> evaluate(const EvaluateArgs& a) {
  std::optional<int> species_given;
  if (a.species) {
    species_given = count_species(*a.species);
    if (!species_given) return std::nullopt;
  }
  std::string reason;
  const auto spec = mtpkit::read_potential_for_evaluation(a.potential, reason);
  if (!spec) return std::nullopt;
  const mtpkit::Model model(*spec);
  if (species_given && *species_given > model.species_count()) return std::nullopt;
  // like the Python command, whose KeyboardInterrupt lands after the compiled call
  // returns: finish (the output is written atomically), then report the interrupt
  std::signal(SIGINT, on_interrupt);
  mtpkit::EvaluationReport report;
  try {
    report = mtpkit::evaluate_cfg_file(model, a.configurations, a.output, species_given.value_or(-1));
  } catch (...) {
    if (interrupted) {
      std::fprintf(stderr, "interrupted\n");
      return 130;
    }
    return std::nullopt;  // every error is worded by the Python side
  }
  if (interrupted) {
    std::fprintf(stderr, "interrupted\n");
    return 130;
  }
  std::signal(SIGINT, SIG_DFL);
  if (!report.write_error.empty() || report.labelled_without_atoms >= 0) return std::nullopt;
  print_report(a, model.min_dist(), report);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "evaluate") != 0) hand_to_python(argc, argv);
  const auto args = parse_evaluate(argc, argv);
  if (!args) hand_to_python(argc, argv);
  // mtpkit.cli.main: idle OpenMP threads sleep rather than spin unless the user chose;
  // libgomp reads this when it loads, so the program starts again with it set
  if (!std::getenv("OMP_WAIT_POLICY")) {
    ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    ::execv("/proc/self/exe", argv);  // if that fails, carry on with the default policy
  }
  const auto status = evaluate(*args);
  if (!status) hand_to_python(argc, argv);
  std::fflush(stdout);
  return *status;
}
