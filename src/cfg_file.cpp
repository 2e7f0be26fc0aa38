// Reader and writer of MLIP .cfg files (see cfg_file.hpp). The reader follows
// the control flow of mtpkit/potentials/cfg_reference.py step by step, so that
// the first problem found, and its message, are the reference's.
#include "cfg_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <optional>

#include "pytext.hpp"

namespace mtpkit {
namespace {

namespace pt = pytext;

constexpr int kPlaceholderSymbols = 119;  // ase.data.chemical_symbols: X, H, ..., Og
constexpr std::string_view kVoigt[6] = {"xx", "yy", "zz", "yz", "xz", "xy"};

std::string where_and_what(const std::string& path, const std::string& message, int line,
                           const std::string& field) {
  std::string out = path;
  if (line > 0) out += ", line " + std::to_string(line);
  if (!field.empty()) out += ", field '" + field + "'";
  return out + ": " + message;
}

// --------------------------------------------------------------------------- lines

struct Line {
  int number = 0;  // 1-based
  std::string_view text;  // without the newline
};

// Lines of the text as Python's text-mode file gives them (newlines already
// translated to \n), with 1-based numbers; mark()/reset() re-read from a point.
class LineCursor {
 public:
  explicit LineCursor(std::string_view text) : text_(text) {}

  bool next(Line& line) {
    if (pos_ >= text_.size()) return false;
    const size_t nl = text_.find('\n', pos_);
    const size_t end = nl == std::string_view::npos ? text_.size() : nl;
    line.text = text_.substr(pos_, end - pos_);
    line.number = ++lineno_;
    pos_ = nl == std::string_view::npos ? text_.size() : nl + 1;
    return true;
  }

  struct Mark {
    size_t pos;
    int lineno;
  };
  Mark mark() const { return {pos_, lineno_}; }
  size_t remaining() const { return text_.size() - pos_; }  // bytes not read yet
  void reset(Mark m) {
    pos_ = m.pos;
    lineno_ = m.lineno;
  }

 private:
  std::string_view text_;
  size_t pos_ = 0;
  int lineno_ = 0;
};

bool is_blank(std::string_view line) { return pt::strip(line).empty(); }

// --------------------------------------------------------------------------- numbers

// float(token) for an AtomData entry: plain decimals directly, then
// std::from_chars when the token is in its (narrower) syntax, otherwise
// Python's full syntax (underscores, '+', inf, nan).
bool read_float(std::string_view token, double& value) {
  if (pt::parse_plain_decimal(token, value)) return true;
  const char* end = token.data() + token.size();
  if (!token.empty() && token[0] != '+') {
    const auto r = std::from_chars(token.data(), end, value, std::chars_format::general);
    if (r.ec == std::errc() && r.ptr == end && std::isfinite(value)) return true;
  }
  return pt::parse_float(token, value);
}

// The reference's _feature_value: int, else finite float, else the text.
CfgFeature feature_value(const std::string& key, const std::string& text) {
  CfgFeature f;
  f.key = key;
  pt::Integer n;
  double x = 0.0;
  if (pt::parse_int(text, n)) {
    f.kind = CfgFeature::Kind::integer;
    f.text = n.str();
  } else if (pt::parse_float(text, x) && std::isfinite(x)) {
    f.kind = CfgFeature::Kind::real;
    f.real = x;
  } else {
    f.kind = CfgFeature::Kind::text;
    f.text = text;
  }
  return f;
}

// |det| of a 3x3 matrix (row-major) as ASE's Cell.volume gets it from
// np.linalg.det: an LU factorisation with partial pivoting (column by column,
// as OpenBLAS's getf2: earlier columns applied as dot products, rows below the
// pivot scaled by its reciprocal), then exp of the summed log|U_ii|. The same
// steps give the same bits, so volumes, stresses and virials match the Python
// path exactly rather than to a few ulps.
double volume_as_numpy(const std::array<double, 9>& m) {
  double a[3][3];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) a[i][j] = m[3 * i + j];
  int pivot[3] = {0, 1, 2};
  for (int j = 0; j < 3; ++j) {
    double b[3] = {a[0][j], a[1][j], a[2][j]};
    for (int i = 0; i < j; ++i) std::swap(b[i], b[pivot[i]]);
    for (int i = 1; i < 3; ++i) {  // U above the diagonal, then what is left below it
      const int terms = std::min(i, j);
      double dot = 0.0;
      for (int k = 0; k < terms; ++k) dot += a[i][k] * b[k];
      b[i] -= dot;
    }
    int p = j;
    for (int i = j + 1; i < 3; ++i)
      if (std::fabs(b[i]) > std::fabs(b[p])) p = i;
    pivot[j] = p;
    if (p != j) {
      std::swap(b[j], b[p]);
      for (int k = 0; k < j; ++k) std::swap(a[j][k], a[p][k]);
    }
    if (b[j] == 0.0) return 0.0;  // singular: NumPy's det is 0
    const double reciprocal = 1.0 / b[j];
    for (int i = j + 1; i < 3; ++i) b[i] *= reciprocal;
    for (int i = 0; i < 3; ++i) a[i][j] = b[i];
  }
  double log_det = 0.0;
  for (int i = 0; i < 3; ++i) log_det += std::log(std::fabs(a[i][i]));
  return std::exp(log_det);
}

// --------------------------------------------------------------------------- parser

// What one configuration has declared so far (the reference's locals in _parse_one).
struct Blocks {
  bool has_size = false;
  pt::Integer size;
  std::vector<std::array<double, 3>> cell_rows;
  bool has_atom_data = false;
  int atom_data_line = 0;
  std::vector<std::string> columns;
  std::vector<double> table;
  bool has_energy = false;
  double energy = 0.0;
  bool has_virial = false;
  std::array<double, 6> virial{};  // xx yy zz yz xz xy
  std::vector<std::pair<std::string, std::string>> raw_features;  // repeated keys joined by \n
};

class Parser {
 public:
  Parser(std::string_view text, const std::string& path, int species_given)
      : cursor_(text), path_(path), species_given_(species_given) {}

  std::vector<CfgConfiguration> all() {
    std::vector<CfgConfiguration> out;
    Line line;
    while (cursor_.next(line)) {
      const std::string_view s = pt::strip(line.text);
      if (s.empty()) continue;
      if (s != "BEGIN_CFG")
        fail("expected BEGIN_CFG, got " + pt::str_repr(s.substr(0, 40)), line.number);
      out.push_back(one(line.number));
    }
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& message, int line = 0,
                         const std::string& field = "") const {
    throw CfgError(path_, message, line, field);
  }

  CfgError number_error(std::string_view text, bool parsed, int line,
                        const std::string& field) const {
    return CfgError(path_,
                    (parsed ? "non-finite value " : "malformed number ") + pt::str_repr(text),
                    line, field);
  }

  // The reference's _num(..., float): a finite float or an error naming line and field.
  double number(std::string_view text, int line, const std::string& field) const {
    double v = 0.0;
    const bool parsed = pt::parse_float(text, v);
    if (!parsed || !std::isfinite(v)) throw number_error(text, parsed, line, field);
    return v;
  }

  Line next_nonblank(const char* what) {
    Line line;
    while (cursor_.next(line))
      if (!is_blank(line.text)) return line;
    fail(std::string("unexpected end of file while reading ") + what);
  }

  CfgConfiguration one(int begin_line) {
    Blocks b;
    while (true) {
      const Line line = next_nonblank("a configuration");
      const std::vector<std::string_view> words = pt::split(line.text);
      const std::string_view head = words[0];
      if (head == "END_CFG") break;
      if (head == "Size") {
        read_size(b);
      } else if (head == "Supercell" || head == "SuperCell") {
        read_supercell(b);
      } else if (head == "AtomData:" || head == "Atomic_data:") {
        read_atom_data(b, words, line.number);
      } else if (head == "Energy") {
        const Line value = next_nonblank("Energy");
        b.energy = number(pt::split(value.text)[0], value.number, "Energy");
        b.has_energy = true;
      } else if (head == "PlusStress:" || head == "PlusStress") {
        read_plus_stress(b, words, line.number);
      } else if (head == "Feature") {
        read_feature(b, line);
      } else {
        fail("unknown block " + pt::str_repr(head), line.number);
      }
    }
    if (!b.has_size) fail("configuration without Size", begin_line, "Size");
    if (b.size.digits != "0" && !b.has_atom_data)
      fail("configuration without AtomData", begin_line, "AtomData");
    return build(b, begin_line);
  }

  void read_size(Blocks& b) {
    const Line value = next_nonblank("Size");
    const std::string_view text = pt::strip(value.text);
    if (!pt::parse_int(text, b.size)) fail("malformed number " + pt::str_repr(text), value.number, "Size");
    if (b.size.negative) fail("negative Size " + b.size.str(), value.number, "Size");
    b.has_size = true;
  }

  // One to three rows; a line that does not start with a number ends the block.
  void read_supercell(Blocks& b) {
    while (true) {
      const LineCursor::Mark before = cursor_.mark();
      const Line row = next_nonblank("Supercell");
      const std::vector<std::string_view> parts = pt::split(row.text);
      double first = 0.0;
      if (!pt::parse_float(parts[0], first)) {
        cursor_.reset(before);  // the next block's keyword
        return;
      }
      if (parts.size() != 3)
        fail("a Supercell row needs 3 numbers, got " + std::to_string(parts.size()), row.number,
             "Supercell");
      std::array<double, 3> v{};
      for (int k = 0; k < 3; ++k) v[k] = number(parts[k], row.number, "Supercell");
      b.cell_rows.push_back(v);
      if (b.cell_rows.size() == 3) return;
    }
  }

  void read_atom_data(Blocks& b, const std::vector<std::string_view>& words, int lineno) {
    if (!b.has_size) fail("AtomData before Size", lineno, "AtomData");
    const std::vector<std::string_view> names(words.begin() + 1, words.end());
    if (std::find(names.begin(), names.end(), "type") == names.end())
      fail("AtomData has no 'type' column", lineno, "type");
    std::vector<std::string_view> sorted_names = names;
    std::sort(sorted_names.begin(), sorted_names.end());
    if (std::adjacent_find(sorted_names.begin(), sorted_names.end()) != sorted_names.end())
      fail("AtomData has duplicate columns", lineno, "AtomData");
    const size_t ncols = names.size();
    const auto ghost = std::find(names.begin(), names.end(), "ghost") - names.begin();
    std::optional<CfgError> first_bad;  // reported only once every row has been read
    const int64_t size = b.size.clamped();
    std::vector<double> table;  // room for `size` rows, unless the file is too short for them
    const size_t shortest_row = 2 * ncols;
    table.reserve(std::min(static_cast<size_t>(size), cursor_.remaining() / shortest_row) * ncols);
    for (int64_t r = 0; r < size; ++r) {
      const Line row = next_nonblank("AtomData");
      BadToken bad;
      const size_t count = read_row(row.text, ncols, ghost, table, bad);
      if (count != ncols)
        fail("atom row has " + std::to_string(count) + " columns, header has " +
                 std::to_string(ncols),
             row.number, "AtomData");
      if (bad.found && !first_bad)
        first_bad = number_error(bad.text, bad.parsed, row.number, std::string(names[bad.column]));
    }
    if (first_bad) throw *first_bad;
    b.has_atom_data = true;
    b.atom_data_line = lineno;
    b.columns.assign(names.begin(), names.end());
    b.table = std::move(table);
  }

  // The first entry of a row that float() rejects (parsed false) or reads as non-finite.
  struct BadToken {
    bool found = false;
    bool parsed = false;
    size_t column = 0;
    std::string_view text;
  };

  // One AtomData row: the values of its first `ncols` blank-separated entries
  // appended to `table` (the ghost column: 1 for "true" in any case, else 0);
  // returns how many entries the row has.
  static size_t read_row(std::string_view line, size_t ncols, ptrdiff_t ghost,
                         std::vector<double>& table, BadToken& bad) {
    size_t count = 0, i = 0;
    while (true) {
      while (i < line.size() && pt::is_space(line[i])) ++i;
      if (i == line.size()) return count;
      const size_t start = i;
      while (i < line.size() && !pt::is_space(line[i])) ++i;
      const std::string_view token = line.substr(start, i - start);
      if (count < ncols) {
        double v = 0.0;
        if (static_cast<ptrdiff_t>(count) == ghost) {
          v = pt::equals_ignoring_case(token, "true") ? 1.0 : 0.0;
        } else {
          const bool parsed = read_float(token, v);
          if ((!parsed || !std::isfinite(v)) && !bad.found) bad = {true, parsed, count, token};
        }
        table.push_back(v);
      }
      ++count;
    }
  }

  void read_plus_stress(Blocks& b, const std::vector<std::string_view>& words, int lineno) {
    const std::vector<std::string_view> keys(words.begin() + 1, words.end());
    std::vector<std::string_view> sorted_keys = keys, sorted_voigt(kVoigt, kVoigt + 6);
    std::sort(sorted_keys.begin(), sorted_keys.end());
    std::sort(sorted_voigt.begin(), sorted_voigt.end());
    if (sorted_keys != sorted_voigt)
      fail("PlusStress needs columns xx yy zz yz xz xy, got " + pt::str_list_repr(keys), lineno,
           "PlusStress");
    const Line value = next_nonblank("PlusStress");
    const std::vector<std::string_view> parts = pt::split(value.text);
    if (parts.size() != 6)
      fail("PlusStress needs 6 numbers, got " + std::to_string(parts.size()), value.number,
           "PlusStress");
    for (int k = 0; k < 6; ++k) {
      const double v = number(parts[k], value.number, "PlusStress " + std::string(keys[k]));
      const int slot = static_cast<int>(std::find(kVoigt, kVoigt + 6, keys[k]) - kVoigt);
      b.virial[slot] = v;
    }
    b.has_virial = true;
  }

  // "Feature <key><tab><value>" (or a blank instead of the tab); repeated keys
  // continue the value on a new line, as MLIP writes multi-line values.
  void read_feature(Blocks& b, const Line& line) {
    const std::string_view rest = pt::lstrip(pt::strip(line.text).substr(7));
    size_t cut = rest.find('\t');
    if (cut == std::string_view::npos) cut = rest.find(' ');
    const std::string key(pt::strip(rest.substr(0, cut)));
    const std::string value(cut == std::string_view::npos ? std::string_view()
                                                          : pt::strip(rest.substr(cut + 1)));
    if (key.empty()) fail("Feature without a key", line.number, "Feature");
    for (auto& kv : b.raw_features) {
      if (kv.first == key) {
        kv.second += "\n" + value;
        return;
      }
    }
    b.raw_features.emplace_back(key, value);
  }

  // The reference's _build_atoms: types checked, Cartesian positions.
  CfgConfiguration build(Blocks& b, int begin_line) const {
    CfgConfiguration c;
    c.begin_line = begin_line;
    const int line = b.has_atom_data ? b.atom_data_line : begin_line;
    c.atom_data_line = line;
    const size_t ncols = b.columns.size();
    const int64_t n = ncols ? static_cast<int64_t>(b.table.size() / ncols) : 0;
    const std::vector<int64_t> types = checked_types(b, n, line);
    if (b.cell_rows.size() > 3)  // the reference fails with an IndexError of its own
      throw CfgNeedsReference("more than three Supercell rows");
    c.cell_rows = static_cast<int>(b.cell_rows.size());
    for (int a = 0; a < c.cell_rows; ++a)
      for (int k = 0; k < 3; ++k) c.cell[3 * a + k] = b.cell_rows[a][k];
    c.columns = std::move(b.columns);
    c.table = std::move(b.table);
    c.types.assign(types.begin(), types.end());
    c.positions = positions(c, n, line, b.size.digits == "0");
    c.has_energy = b.has_energy;
    c.energy = b.energy;
    c.has_virial = b.has_virial;
    c.virial = b.virial;
    for (const auto& kv : b.raw_features) c.features.push_back(feature_value(kv.first, kv.second));
    return c;
  }

  std::vector<int64_t> checked_types(const Blocks& b, int64_t n, int line) const {
    std::vector<int64_t> types(n);
    if (n == 0) return types;
    const size_t ncols = b.columns.size();
    const size_t t = std::find(b.columns.begin(), b.columns.end(), "type") - b.columns.begin();
    bool integral = true;
    for (int64_t i = 0; i < n; ++i) {
      const double x = b.table[i * ncols + t];
      // numpy's astype(int64) keeps exactly the integers in [-2^63, 2^63)
      if (x >= -9223372036854775808.0 && x < 9223372036854775808.0 && x == std::trunc(x))
        types[i] = static_cast<int64_t>(x);
      else
        integral = false;
    }
    if (!integral) fail("non-integer type", line, "type");
    const int64_t lowest = *std::min_element(types.begin(), types.end());
    if (lowest < 0) fail("negative type " + std::to_string(lowest), line, "type");
    if (species_given_ < 0) {
      const int64_t highest = *std::max_element(types.begin(), types.end());
      if (highest >= kPlaceholderSymbols)
        fail("type " + std::to_string(highest) + " too large", line, "type");
    } else {
      for (int64_t i = 0; i < n; ++i)
        if (types[i] >= species_given_)
          fail("type " + std::to_string(types[i]) + " of atom " + std::to_string(i + 1) +
                   " is beyond the " + std::to_string(species_given_) + " species given",
               static_cast<int>(line + 1 + i), "type");
    }
    return types;
  }

  // Cartesian positions (Å) from cartes_x.. or from direct_x.. times the cell.
  std::vector<double> positions(const CfgConfiguration& c, int64_t n, int line,
                                bool size_zero) const {
    const int cartes[3] = {c.column_index("cartes_x"), c.column_index("cartes_y"),
                           c.column_index("cartes_z")};
    const int direct[3] = {c.column_index("direct_x"), c.column_index("direct_y"),
                           c.column_index("direct_z")};
    const size_t ncols = c.columns.size();
    std::vector<double> pos(3 * static_cast<size_t>(n));
    if (cartes[0] >= 0 && cartes[1] >= 0 && cartes[2] >= 0) {
      for (int64_t i = 0; i < n; ++i)
        for (int a = 0; a < 3; ++a) pos[3 * i + a] = c.table[i * ncols + cartes[a]];
    } else if (direct[0] >= 0 && direct[1] >= 0 && direct[2] >= 0) {
      if (c.cell_rows != 3) fail("direct coordinates need a 3-row Supercell", line, "direct_x");
      for (int a = 0; a < 3; ++a)
        if (c.cell[3 * a] == 0.0 && c.cell[3 * a + 1] == 0.0 && c.cell[3 * a + 2] == 0.0)
          throw CfgNeedsReference("direct coordinates with a zero lattice vector");
      for (int64_t i = 0; i < n; ++i) {
        const double* s = c.table.data() + i * ncols;
        for (int a = 0; a < 3; ++a)
          pos[3 * i + a] = fractional_to_cartesian(s[direct[0]], s[direct[1]], s[direct[2]],
                                                   c.cell[a], c.cell[3 + a], c.cell[6 + a]);
      }
    } else if (size_zero) {
      if (n > 0) throw CfgNeedsReference("atoms without coordinates");
    } else {
      fail("AtomData needs cartes_x/y/z or direct_x/y/z", line, "AtomData");
    }
    return pos;
  }

  // s . cell column, summed as NumPy's matrix product (OpenBLAS dgemm) does it
  // on x86-64 with FMA, so that positions match the Python reader's bit for bit.
  static double fractional_to_cartesian(double s0, double s1, double s2, double c0, double c1,
                                        double c2) {
    return std::fma(s2, c2, std::fma(s1, c1, s0 * c0));
  }

  LineCursor cursor_;
  const std::string& path_;
  int species_given_;
};

// Text as Python's text-mode file reads it: \r\n and lone \r become \n.
std::string universal_newlines(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

std::string read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw CfgError(path, std::string("cannot read: ") + std::strerror(errno));
  std::string data;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) data.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  while (true) {
    const ssize_t got = ::read(fd, buf, sizeof(buf));
    if (got < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      throw CfgError(path, std::string("cannot read: ") + std::strerror(err));
    }
    if (got == 0) break;
    data.append(buf, static_cast<size_t>(got));
  }
  ::close(fd);
  return data;
}

// --------------------------------------------------------------------------- writing

void append_values(std::string& out, const char* before, const double* v, int count, int width,
                   int decimals) {
  out += before;
  for (int k = 0; k < count; ++k) {
    if (k) out += ' ';
    pt::append_fixed(out, v[k], width, decimals);
  }
}

bool has_space(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char ch) { return pt::is_space(ch); });
}

// `before`, then `count` numbers separated by single blanks, written at `p`.
char* write_values(char* p, std::string_view before, const double* v, int count, int width,
                   int decimals) {
  p = std::copy(before.begin(), before.end(), p);
  for (int k = 0; k < count; ++k) {
    if (k) *p++ = ' ';
    p = pt::write_fixed(p, v[k], width, decimals);
  }
  return p;
}

void append_atom_data(std::string& out, const CfgRecord& r) {
  out += " AtomData:  id type       cartes_x      cartes_y      cartes_z";
  if (r.site_energies) out += "            site_en";
  if (r.forces) out += "           fx          fy          fz";
  if (r.charges) out += "      charge";
  if (r.nbh_grades) out += "       nbh_grades";
  out += '\n';
  // a row: id, type and at most 9 numbers, each at most kMaxFixed wide, with blanks
  std::vector<char> row(64 + 9 * (pt::kMaxFixed + 4));
  for (int64_t i = 0; i < r.n_atoms; ++i) {
    char* p = row.data();
    p = pt::write_int(std::copy_n("    ", 4, p), i + 1, 10);
    *p++ = ' ';
    p = pt::write_int(p, r.types[i], 4);
    p = write_values(p, "  ", r.positions + 3 * i, 3, 13, 6);
    if (r.site_energies) p = write_values(p, "  ", r.site_energies + i, 1, 17, 12);
    if (r.forces) p = write_values(p, "  ", r.forces + 3 * i, 3, 11, 6);
    if (r.charges) p = write_values(p, "    ", r.charges + i, 1, 8, 4);
    if (r.nbh_grades) p = write_values(p, "  ", r.nbh_grades + i, 1, 15, 5);
    *p++ = '\n';
    out.append(row.data(), static_cast<size_t>(p - row.data()));
  }
}

void append_features(std::string& out, std::vector<std::pair<std::string, std::string>> features) {
  std::sort(features.begin(), features.end());
  for (const auto& [key, text] : features) {
    if (key.empty() || has_space(key)) continue;
    size_t start = 0;
    while (true) {
      const size_t nl = text.find('\n', start);
      out += " Feature   " + key + "\t";
      out.append(text, start, nl == std::string::npos ? std::string::npos : nl - start);
      out += '\n';
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
  }
}

}  // namespace

CfgError::CfgError(std::string path, std::string message, int line, std::string field)
    : std::runtime_error(where_and_what(path, message, line, field)),
      path_(std::move(path)),
      message_(std::move(message)),
      line_(line),
      field_(std::move(field)) {}

std::string CfgFeature::written() const {
  if (kind != Kind::real) return text;
  std::string fixed;  // MLIP's to_string(double), kept when it reads back as the same value
  pt::append_fixed(fixed, real, 0, 6);
  double back = 0.0;
  return pt::parse_float(fixed, back) && back == real ? fixed : pt::float_repr(real);
}

int CfgConfiguration::column_index(std::string_view name) const {
  const auto it = std::find(columns.begin(), columns.end(), name);
  return it == columns.end() ? -1 : static_cast<int>(it - columns.begin());
}

std::vector<double> CfgConfiguration::column(int index) const {
  const size_t ncols = columns.size();
  std::vector<double> v(types.size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = table[i * ncols + index];
  return v;
}

bool CfgConfiguration::has_forces() const {
  return column_index("fx") >= 0 && column_index("fy") >= 0 && column_index("fz") >= 0;
}

std::vector<double> CfgConfiguration::forces() const {
  const int fx[3] = {column_index("fx"), column_index("fy"), column_index("fz")};
  const size_t ncols = columns.size();
  std::vector<double> f(3 * types.size());
  for (size_t i = 0; i < types.size(); ++i)
    for (int a = 0; a < 3; ++a) f[3 * i + a] = table[i * ncols + fx[a]];
  return f;
}

double CfgConfiguration::volume() const { return volume_as_numpy(cell); }

bool CfgConfiguration::has_stress() const {
  return has_virial && cell_rows == 3 && volume() > 0.0;
}

std::vector<CfgConfiguration> parse_cfg(std::string_view text, const std::string& path,
                                        int species_given) {
  unsigned char bits = 0;  // OR of all bytes: bit 7 set by any non-ASCII byte
  for (char ch : text) bits |= static_cast<unsigned char>(ch);
  if (bits & 0x80) throw CfgNeedsReference("non-ASCII text");
  if (text.find('\r') != std::string_view::npos) {
    const std::string translated = universal_newlines(text);
    return Parser(translated, path, species_given).all();
  }
  return Parser(text, path, species_given).all();
}

std::vector<CfgConfiguration> read_cfg_file(const std::string& path, int species_given) {
  return parse_cfg(read_file(path), path, species_given);
}

void append_cfg(std::string& out, const CfgRecord& r) {
  out += "BEGIN_CFG\n Size\n    ";
  out += std::to_string(r.n_atoms);
  out += '\n';
  if (r.periodic) {
    out += " Supercell\n";
    for (int a = 0; a < 3; ++a) {
      append_values(out, "    ", r.cell + 3 * a, 3, 13, 6);
      out += '\n';
    }
  }
  if (r.n_atoms > 0) append_atom_data(out, r);
  if (r.energy) {
    out += " Energy\n";
    append_values(out, "    ", r.energy, 1, 20, 12);
    out += '\n';
  }
  if (r.virial) {
    out += " PlusStress:  xx          yy          zz          yz          xz          xy\n";
    append_values(out, "     ", r.virial, 6, 11, 5);
    out += '\n';
  }
  append_features(out, r.features);
  out += "END_CFG\n\n";
}

}  // namespace mtpkit
