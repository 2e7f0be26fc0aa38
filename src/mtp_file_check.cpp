// Agreement of the compiled and the Python potential-file readers (see
// mtp_file_check.hpp). Mirrors what mtpkit/potentials/mtp_io.py accepts
// without an error or a warning, narrowed to plain syntax.
#include "mtp_file_check.hpp"

#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string_view>
#include <vector>

#include "pytext.hpp"

namespace mtpkit {
namespace {

namespace pt = pytext;

const std::set<std::string_view> kKnownKeys = {
    "version", "potential_name", "scaling", "species_count", "potential_tag",
    "radial_basis_type", "min_dist", "max_dist", "radial_basis_size", "radial_funcs_count",
    "alpha_moments_count", "alpha_index_basic_count", "alpha_index_basic",
    "alpha_index_times_count", "alpha_index_times", "alpha_scalar_moments",
    "alpha_moment_mapping", "species_coeffs", "moment_coeffs", "magnetic_basis_type"};

constexpr std::string_view kMarker = "\n#MVS_v1.1\n";

// The reason found so far ("" while the file is plain).
class Verdict {
 public:
  bool ok() const { return reason_.empty(); }
  void reject(const std::string& why) {
    if (reason_.empty()) reason_ = why;
  }
  const std::string& reason() const { return reason_; }

 private:
  std::string reason_;
};

bool is_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// An integer both readers read alike: [-]digits, fitting a 32-bit int.
bool plain_int(std::string_view s, int64_t& value) {
  s = pt::strip(s);
  const bool negative = !s.empty() && s[0] == '-';
  const std::string_view digits = negative ? s.substr(1) : s;
  if (!is_digits(digits) || digits.size() > 9) return false;
  value = std::stoll(std::string(digits)) * (negative ? -1 : 1);
  return true;
}

// A number Python's float() reads as finite: strtod gives the same value when
// it reads it at all (the compiled reader fails, and so defers, otherwise).
bool plain_float(std::string_view s) {
  double v = 0.0;
  return pt::parse_float(s, v) && std::isfinite(v);
}

// "{a, b, ...}" as mtp_io._flat_list reads it (the compiled reader flattens
// nested braces and skips empty items, so anything else is left out).
bool flat_list(std::string_view text, bool integers, size_t& count) {
  text = pt::strip(text);
  if (text.size() < 2 || text.front() != '{' || text.back() != '}') return false;
  const std::string_view inner = pt::strip(text.substr(1, text.size() - 2));
  count = 0;
  if (inner.empty()) return true;
  size_t start = 0;
  while (true) {
    const size_t comma = inner.find(',', start);
    const std::string_view item = inner.substr(start, comma - start);
    int64_t ignored = 0;
    if (integers ? !plain_int(item, ignored) : !plain_float(item)) return false;
    ++count;
    if (comma == std::string_view::npos) return true;
    start = comma + 1;
  }
}

// "{{i, j, k, l}, ...}" as mtp_io._nested_list reads it: 4 integers a group.
bool nested_list(std::string_view text, size_t& groups) {
  text = pt::strip(text);
  if (text.size() < 2 || text.front() != '{' || text.back() != '}') return false;
  const std::string_view inner = text.substr(1, text.size() - 2);
  groups = 0;
  size_t pos = 0;
  while (pos < inner.size()) {
    const char c = inner[pos];
    if (c == ',' || pt::is_space(c)) {
      ++pos;
      continue;
    }
    if (c != '{') return false;
    const size_t close = inner.find('}', pos);
    if (close == std::string_view::npos) return false;
    const std::string_view group = inner.substr(pos + 1, close - pos - 1);
    if (group.find('{') != std::string_view::npos) return false;
    size_t items = 0;
    if (!flat_list("{" + std::string(group) + "}", true, items) || items != 4) return false;
    ++groups;
    pos = close + 1;
  }
  return true;
}

struct Lines {
  std::map<std::string, std::string, std::less<>> values;  // key -> value text
  std::vector<std::string_view> radial_rows;
};

// The lines after "MTP": "key = value" and the radial_coeffs block.
Lines read_lines(std::string_view text, Verdict& v) {
  Lines out;
  bool first = true, in_radial = false, seen_radial = false;
  size_t pos = 0;
  while (pos <= text.size() && v.ok()) {
    const size_t nl = text.find('\n', pos);
    const std::string_view line =
        pt::strip(text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos));
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    if (line.empty()) continue;
    if (first) {
      if (line != "MTP") v.reject("first line is not 'MTP'");
      first = false;
      continue;
    }
    const size_t eq = line.find('=');
    if (line == "radial_coeffs") {
      if (seen_radial) v.reject("two radial_coeffs blocks");
      in_radial = seen_radial = true;
    } else if (eq != std::string_view::npos) {
      in_radial = false;
      const std::string key(pt::strip(line.substr(0, eq)));
      if (!kKnownKeys.count(key)) v.reject("unknown key " + key);
      if (out.values.count(key)) v.reject("duplicate key " + key);
      out.values[key] = std::string(pt::strip(line.substr(eq + 1)));
    } else if (in_radial) {
      out.radial_rows.push_back(line);
    } else {
      v.reject("a line that is not 'key = value'");
    }
  }
  if (first) v.reject("empty file");
  return out;
}

const std::string* value_of(const Lines& l, std::string_view key) {
  const auto it = l.values.find(key);
  return it == l.values.end() ? nullptr : &it->second;
}

int64_t count_of(const Lines& l, std::string_view key, int64_t minimum, Verdict& v) {
  const std::string* text = value_of(l, key);
  int64_t n = 0;
  if (!text || !is_digits(pt::strip(*text)) || !plain_int(*text, n) || n < minimum)
    v.reject(std::string(key) + " is missing or not a plain count");
  return n;
}

void check_header(const Lines& l, Verdict& v) {
  const std::string* version = value_of(l, "version");
  if (!version || *version != "1.1.0") v.reject("version is not 1.1.0");
  if (value_of(l, "magnetic_basis_type")) v.reject("magnetic_basis_type");
  for (const char* key : {"min_dist", "max_dist"}) {
    const std::string* text = value_of(l, key);
    if (!text || !plain_float(*text)) v.reject(std::string(key) + " is missing or not plain");
  }
  const std::string* scaling = value_of(l, "scaling");
  if (scaling && !plain_float(*scaling)) v.reject("scaling is not plain");
  if (!v.ok()) return;
  double lo = 0.0, hi = 0.0;
  pt::parse_float(*value_of(l, "min_dist"), lo);
  pt::parse_float(*value_of(l, "max_dist"), hi);
  if (!(0.0 <= lo && lo < hi)) v.reject("not 0 <= min_dist < max_dist");
}

// Number of coefficients (the .almtp active set has this many rows).
int64_t check_moments_and_coefficients(const Lines& l, Verdict& v) {
  const int64_t species = count_of(l, "species_count", 1, v);
  const int64_t basis = count_of(l, "radial_basis_size", 1, v);
  const int64_t funcs = count_of(l, "radial_funcs_count", 1, v);
  count_of(l, "alpha_moments_count", 1, v);
  const int64_t n_basic = count_of(l, "alpha_index_basic_count", 1, v);
  const int64_t n_times = count_of(l, "alpha_index_times_count", 0, v);
  const int64_t n_scalar = count_of(l, "alpha_scalar_moments", 1, v);
  if (!v.ok()) return 0;
  size_t n = 0;
  const std::string* text = value_of(l, "alpha_index_basic");
  if (!text || !nested_list(*text, n) || static_cast<int64_t>(n) != n_basic)
    v.reject("alpha_index_basic does not match its count");
  text = value_of(l, "alpha_index_times");
  if (!text || !nested_list(*text, n) || static_cast<int64_t>(n) != n_times)
    v.reject("alpha_index_times does not match its count");
  text = value_of(l, "alpha_moment_mapping");
  if (!text || !flat_list(*text, true, n) || static_cast<int64_t>(n) != n_scalar)
    v.reject("alpha_moment_mapping does not match alpha_scalar_moments");
  for (const char* key : {"species_coeffs", "moment_coeffs"}) {
    text = value_of(l, key);
    if (text && !flat_list(*text, false, n)) v.reject(std::string(key) + " is not a plain list");
  }
  for (std::string_view row : l.radial_rows) {  // species-pair labels "a-b" and "{...}" rows
    const size_t dash = row.find('-');
    const bool label = dash != std::string_view::npos && is_digits(row.substr(0, dash)) &&
                       is_digits(row.substr(dash + 1));
    if (!label && !flat_list(row, false, n)) v.reject("radial_coeffs row is not plain");
  }
  return species * species * funcs * basis + species + n_scalar;
}

// The #MVS_v1.1 section as mtp_io._parse_active_set reads it without a
// warning, with the matrices sized for `n` coefficients.
void check_active_set(std::string_view data, size_t pos, int64_t n, Verdict& v) {
  for (const char* key : {"energy_weight", "force_weight", "stress_weight", "site_en_weight",
                          "weight_scaling"}) {
    const size_t nl = data.find('\n', pos);
    if (nl == std::string_view::npos) return v.reject("active set ends early");
    const std::vector<std::string_view> parts = pt::split(data.substr(pos, nl - pos));
    double x = 0.0;
    pt::Integer k;
    const bool integer = std::string_view(key) == "weight_scaling";
    if (parts.size() != 2 || parts[0] != key ||
        !(integer ? pt::parse_int(parts[1], k) : pt::parse_float(parts[1], x)))
      return v.reject(std::string("active set line ") + key);
    pos = nl + 1;
  }
  if (pos >= data.size() || data[pos] != '#') return v.reject("active set: no '#'");
  const size_t end = pos + 1 + 16 * static_cast<size_t>(n) * static_cast<size_t>(n);
  if (end + 3 > data.size() || data.substr(end, 3) != "\n#\n")
    return v.reject("active set matrices are not sized for the coefficients");
  pos = end + 3;
  for (int64_t r = 0; r < n; ++r) {
    const size_t nl = data.find('\n', pos);
    if (nl == std::string_view::npos) return v.reject("active set links end early");
    const std::string_view line = data.substr(pos, nl - pos);
    if (line.find_first_not_of("0123456789- ") != std::string_view::npos)
      return v.reject("active set link line");
    const std::vector<std::string_view> parts = pt::split(line);
    int64_t a = 0, b = 0;
    if (parts.size() != 2 || !plain_int(parts[0], a) || !plain_int(parts[1], b))
      return v.reject("active set link line");
    pos = nl + 1;
  }
  if (data.substr(pos, 2) != "#\n") return v.reject("active set: no '#' after the links");
  for (size_t i = pos + 2; i < data.size(); ++i)
    if (data[i] & 0x80) return v.reject("active set configurations are not ASCII");
}

}  // namespace

std::string mtp_file_irregularity(const std::string& data) {
  Verdict v;
  const size_t marker = data.find(kMarker);
  const std::string_view head(data.data(), marker == std::string::npos ? data.size() : marker + 1);
  for (char c : head) {
    if (c & 0x80) return "non-ASCII text";
    // Python splits lines at these and strips them; the compiled reader does not
    if (c == '\r' || c == '\v' || c == '\f' || (c >= '\x1c' && c <= '\x1f'))
      return "unusual line breaks or blanks";
  }
  const Lines lines = read_lines(head, v);
  if (v.ok()) check_header(lines, v);
  int64_t n_params = 0;
  if (v.ok()) n_params = check_moments_and_coefficients(lines, v);
  if (v.ok() && marker != std::string::npos)
    check_active_set(data, marker + kMarker.size(), n_params, v);
  return v.reason();
}

}  // namespace mtpkit
