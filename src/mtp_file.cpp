// Reader of MLIP .mtp / .almtp files (see mtp_file.hpp for the format).
#include "mtp_file.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>

namespace mtpkit {
namespace {

struct Fail {
  std::string path;
  [[noreturn]] void operator()(int line, const std::string& field, const std::string& msg) const {
    std::ostringstream os;
    os << path;
    if (line > 0) os << ": line " << line;
    if (!field.empty()) os << ", field '" << field << "'";
    os << ": " << msg;
    throw std::runtime_error(os.str());
  }
};

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return "";
  size_t b = s.find_last_not_of(" \t\r\n");
  return s.substr(a, b - a + 1);
}

// Numbers in a "{...}" list (nested braces flattened).
std::vector<double> parse_list(const std::string& text, const Fail& fail, int line,
                               const std::string& field) {
  std::vector<double> out;
  std::string tok;
  auto flush = [&]() {
    std::string t = trim(tok);
    tok.clear();
    if (t.empty()) return;
    char* end = nullptr;
    double v = std::strtod(t.c_str(), &end);
    if (end == t.c_str() || *end != '\0') fail(line, field, "not a number: '" + t + "'");
    out.push_back(v);
  };
  for (char ch : text) {
    if (ch == '{' || ch == '}' || ch == ',') flush();
    else tok.push_back(ch);
  }
  flush();
  return out;
}

double to_double(const std::string& s, const Fail& fail, int line, const std::string& field) {
  char* end = nullptr;
  std::string t = trim(s);
  double v = std::strtod(t.c_str(), &end);
  if (t.empty() || *end != '\0') fail(line, field, "not a number: '" + t + "'");
  return v;
}

// Whether x is an integer that fits an int (checked before any cast: casting an
// out-of-range double is undefined behaviour).
bool is_int(double x) {
  return std::isfinite(x) && x == std::floor(x) &&
         x >= static_cast<double>(std::numeric_limits<int>::min()) &&
         x <= static_cast<double>(std::numeric_limits<int>::max());
}

int to_int(const std::string& s, const Fail& fail, int line, const std::string& field) {
  double v = to_double(s, fail, line, field);
  if (!is_int(v) || v < 0)
    fail(line, field, "not a non-negative integer that fits a 32-bit int: '" + trim(s) + "'");
  return static_cast<int>(v);
}

std::vector<int> to_ints(const std::vector<double>& v, const Fail& fail, int line,
                         const std::string& field) {
  std::vector<int> out;
  out.reserve(v.size());
  for (double x : v) {
    if (!is_int(x))
      fail(line, field, "not a list of integers that fit a 32-bit int (value " +
                            std::to_string(x) + ")");
    out.push_back(static_cast<int>(x));
  }
  return out;
}

void parse_active_set(const std::string& data, size_t pos, int n_all, int n_linear,
                      ActiveSetData& as, const Fail& fail) {
  const char* keys[] = {"energy_weight", "force_weight", "stress_weight", "site_en_weight",
                        "weight_scaling"};
  double vals[5];
  for (int k = 0; k < 5; ++k) {
    size_t nl = data.find('\n', pos);
    if (nl == std::string::npos) fail(0, keys[k], "active-set section ends early");
    std::istringstream is(data.substr(pos, nl - pos));
    std::string name;
    is >> name >> vals[k];
    if (name != keys[k] || is.fail()) fail(0, keys[k], "expected '" + std::string(keys[k]) +
                                                         " <value>' in the #MVS_v1.1 section");
    pos = nl + 1;
  }
  if (pos >= data.size() || data[pos] != '#') fail(0, "#MVS_v1.1", "missing '#' before matrices");
  ++pos;
  int n = 0;
  for (int cand : {n_all, n_linear}) {
    size_t end = pos + 16 * static_cast<size_t>(cand) * cand;
    if (end + 3 <= data.size() && data.compare(end, 3, "\n#\n") == 0) {
      n = cand;
      break;
    }
  }
  if (n == 0)
    fail(0, "#MVS_v1.1", "active-set matrices are neither " + std::to_string(n_all) +
                             " (all coefficients) nor " + std::to_string(n_linear) +
                             " (linear basis) rows");
  as.present = true;
  as.n = n;
  as.energy_weight = vals[0];
  as.force_weight = vals[1];
  as.stress_weight = vals[2];
  as.site_en_weight = vals[3];
  if (!is_int(vals[4])) fail(0, "weight_scaling", "not an integer that fits a 32-bit int");
  as.weight_scaling = static_cast<int>(vals[4]);
  as.invA.resize(static_cast<size_t>(n) * n);
  // native little-endian float64 (x86-64/aarch64), skip A
  std::memcpy(as.invA.data(), data.data() + pos + 8 * static_cast<size_t>(n) * n,
              8 * static_cast<size_t>(n) * n);
}

}  // namespace

std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail{path}(0, "", "cannot open the potential file");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

MTPFile read_mtp_file(const std::string& path) { return parse_mtp_file(read_file_bytes(path), path); }

MTPFile parse_mtp_file(const std::string& data, const std::string& path) {
  Fail fail{path};
  size_t marker = data.find("\n#MVS_v1.1\n");
  std::string text = data.substr(0, marker == std::string::npos ? data.size() : marker + 1);

  std::istringstream ts(text);
  std::string raw;
  int lineno = 0;
  std::map<std::string, std::pair<std::string, int>> kv;  // key -> (value, line)
  std::vector<std::pair<std::string, int>> radial_lines;   // inside radial_coeffs block
  bool in_radial = false, first = true;
  while (std::getline(ts, raw)) {
    ++lineno;
    std::string line = trim(raw);
    if (line.empty()) continue;
    if (first) {
      if (line != "MTP") fail(lineno, "", "not an MTP potential file (first line must be 'MTP')");
      first = false;
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string::npos) {
      if (line == "radial_coeffs") {
        in_radial = true;
      } else if (in_radial) {
        radial_lines.emplace_back(line, lineno);
      } else {
        fail(lineno, "", "expected 'key = value', got '" + line + "'");
      }
      continue;
    }
    in_radial = false;
    kv[trim(line.substr(0, eq))] = {trim(line.substr(eq + 1)), lineno};
  }
  if (first) fail(0, "", "empty file, not an MTP potential");

  auto get = [&](const std::string& key, bool required = true) -> std::pair<std::string, int> {
    auto it = kv.find(key);
    if (it == kv.end()) {
      if (required) fail(0, key, "missing");
      return {"", 0};
    }
    return it->second;
  };
  MTPFile out;
  ModelSpec& s = out.spec;
  auto rbt = get("radial_basis_type");
  if (rbt.first != "RBChebyshev")
    fail(rbt.second, "radial_basis_type", "only RBChebyshev is supported, got '" + rbt.first + "'");
  auto v = get("species_count");
  s.species_count = to_int(v.first, fail, v.second, "species_count");
  v = get("min_dist");
  s.min_dist = to_double(v.first, fail, v.second, "min_dist");
  v = get("max_dist");
  s.max_dist = to_double(v.first, fail, v.second, "max_dist");
  v = get("radial_basis_size");
  s.radial_basis_size = to_int(v.first, fail, v.second, "radial_basis_size");
  v = get("radial_funcs_count");
  s.radial_funcs_count = to_int(v.first, fail, v.second, "radial_funcs_count");
  v = get("alpha_moments_count");
  s.alpha_moments_count = to_int(v.first, fail, v.second, "alpha_moments_count");
  v = get("alpha_index_basic");
  s.alpha_index_basic = to_ints(parse_list(v.first, fail, v.second, "alpha_index_basic"), fail,
                                v.second, "alpha_index_basic");
  v = get("alpha_index_times");
  s.alpha_index_times = to_ints(parse_list(v.first, fail, v.second, "alpha_index_times"), fail,
                                v.second, "alpha_index_times");
  v = get("alpha_moment_mapping");
  s.alpha_moment_mapping = to_ints(parse_list(v.first, fail, v.second, "alpha_moment_mapping"),
                                   fail, v.second, "alpha_moment_mapping");
  v = get("scaling", false);
  s.scaling = v.second ? to_double(v.first, fail, v.second, "scaling") : 1.0;

  const int S = s.species_count, R = s.radial_funcs_count, B = s.radial_basis_size;
  auto sc = get("species_coeffs", false);
  auto mc = get("moment_coeffs", false);
  out.trained = sc.second && mc.second && !radial_lines.empty();
  if (!out.trained)
    fail(0, "moment_coeffs", "untrained potential template (no coefficients); train it first");
  s.species_coeffs = parse_list(sc.first, fail, sc.second, "species_coeffs");
  if (static_cast<int>(s.species_coeffs.size()) != S)
    fail(sc.second, "species_coeffs", "has " + std::to_string(s.species_coeffs.size()) +
                                          " values, species_count is " + std::to_string(S));
  s.moment_coeffs = parse_list(mc.first, fail, mc.second, "moment_coeffs");
  if (s.moment_coeffs.size() != s.alpha_moment_mapping.size())
    fail(mc.second, "moment_coeffs", "has " + std::to_string(s.moment_coeffs.size()) +
                                         " values, alpha_moment_mapping has " +
                                         std::to_string(s.alpha_moment_mapping.size()));
  // radial block: S*S labels "a-b", each followed by R lists of B values
  if (static_cast<int>(radial_lines.size()) != S * S * (R + 1))
    fail(radial_lines.empty() ? 0 : radial_lines[0].second, "radial_coeffs",
         "expected " + std::to_string(S * S) + " species pairs with " + std::to_string(R) +
             " functions each");
  s.radial_coeffs.assign(static_cast<size_t>(S) * S * R * B, 0.0);
  size_t k = 0;
  for (int a = 0; a < S; ++a) {
    for (int b = 0; b < S; ++b) {
      const auto& lab = radial_lines[k++];
      std::string want = std::to_string(a) + "-" + std::to_string(b);
      if (lab.first != want)
        fail(lab.second, "radial_coeffs", "expected species pair '" + want + "', got '" +
                                              lab.first + "'");
      for (int mu = 0; mu < R; ++mu) {
        const auto& row = radial_lines[k++];
        auto vals = parse_list(row.first, fail, row.second, "radial_coeffs");
        if (static_cast<int>(vals.size()) != B)
          fail(row.second, "radial_coeffs", "has " + std::to_string(vals.size()) +
                                                " values, radial_basis_size is " +
                                                std::to_string(B));
        for (int q = 0; q < B; ++q)
          s.radial_coeffs[((static_cast<size_t>(a) * S + b) * R + mu) * B + q] = vals[q];
      }
    }
  }
  if (marker != std::string::npos) {
    int n_linear = S + static_cast<int>(s.alpha_moment_mapping.size());
    int n_all = S * S * R * B + n_linear;
    parse_active_set(data, marker + std::strlen("\n#MVS_v1.1\n"), n_all, n_linear,
                     out.active_set, fail);
  }
  return out;
}

}  // namespace mtpkit
