// Reader and writer of MLIP .cfg configuration files, plain C++17 (no Python).
//
// The Python reference reader (mtpkit/potentials/cfg_reference.py) defines the
// format; this reader accepts exactly what it accepts and rejects the rest with
// the same message, file, line and field. The writer gives the same bytes as
// mtpkit.potentials.cfg.write_cfg (MLIP's fixed-width layout). Layout of one
// configuration:
//
//   BEGIN_CFG
//    Size
//       <number of atoms>
//    Supercell                      (0 to 3 rows, one per periodic direction, Å)
//       <a_x a_y a_z>
//    AtomData:  id type cartes_x cartes_y cartes_z fx fy fz ...
//       ...                         (any columns in any order; direct_x.. instead
//                                    of cartes_x..; forces eV/Å)
//    Energy
//       <total energy, eV>
//    PlusStress:  xx yy zz yz xz xy
//       <virial, eV>                (= -volume * stress)
//    Feature   <key>\t<value>
//   END_CFG
//
// Text the compiled reader does not handle itself (bytes outside ASCII, which
// Python decodes as UTF-8, and inputs on which the reference itself fails with
// something other than its own file error) raises CfgNeedsReference: callers
// then read the file with the Python reference.
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mtpkit {

// A malformed .cfg file; what() reads like mtpkit.errors.InputFileError:
// "<path>, line <line>, field '<field>': <message>" (line and field optional).
class CfgError : public std::runtime_error {
 public:
  CfgError(std::string path, std::string message, int line = 0, std::string field = "");
  const std::string& path() const { return path_; }
  const std::string& message() const { return message_; }
  int line() const { return line_; }  // 0: none
  const std::string& field() const { return field_; }

 private:
  std::string path_, message_;
  int line_;
  std::string field_;
};

// The file needs the Python reference reader (see the top of this header).
class CfgNeedsReference : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A Feature value as the reference converts it: an int, else a finite float,
// else the text as read.
struct CfgFeature {
  enum class Kind { integer, real, text };
  std::string key;
  Kind kind = Kind::text;
  std::string text;   // integer: str(value); text: the value
  double real = 0.0;  // Kind::real
  // The text the writer prints for the value (mtpkit.potentials.cfg._feature_text).
  std::string written() const;
};

struct CfgConfiguration {
  int begin_line = 0;                // line of BEGIN_CFG
  int atom_data_line = 0;            // line of the AtomData header (begin_line without one)
  int cell_rows = 0;                 // Supercell rows given: periodic along those
  std::array<double, 9> cell{};      // Å, row a = lattice vector a, zero where not given
  std::vector<std::string> columns;  // AtomData column names as in the file
  std::vector<double> table;         // n_atoms x columns.size(), row-major (ghost: 1 or 0)
  std::vector<int> types;            // MLIP type of each atom (0-based)
  std::vector<double> positions;     // n_atoms x 3 Cartesian, Å
  bool has_energy = false;
  double energy = 0.0;               // eV
  bool has_virial = false;
  std::array<double, 6> virial{};    // PlusStress, eV, order xx yy zz yz xz xy
  std::vector<CfgFeature> features;  // in order of first appearance

  int64_t n_atoms() const { return static_cast<int64_t>(types.size()); }
  bool periodic(int axis) const { return axis < cell_rows; }
  int column_index(std::string_view name) const;  // -1 if absent
  std::vector<double> column(int index) const;    // n_atoms values
  bool has_forces() const;                        // fx, fy and fz columns
  std::vector<double> forces() const;             // n_atoms x 3, eV/Å
  double volume() const;                          // |det cell| as NumPy computes it, Å^3
  // A stress label as the reference reads it: PlusStress, 3 Supercell rows, volume > 0.
  bool has_stress() const;
};

// All configurations of a .cfg file's text. `species_given` is the number of
// chemical species the caller names (types must be below it), or -1 for none
// (types must be below 119, the placeholder atomic numbers).
std::vector<CfgConfiguration> parse_cfg(std::string_view text, const std::string& path,
                                        int species_given);

// The same from a file ("cannot read: <reason>" as CfgError when unreadable).
std::vector<CfgConfiguration> read_cfg_file(const std::string& path, int species_given);

// One configuration to write. Pointers are nullptr for absent parts.
struct CfgRecord {
  int64_t n_atoms = 0;
  const int* types = nullptr;             // n_atoms
  const double* positions = nullptr;      // n_atoms x 3, Å
  bool periodic = false;                  // write the Supercell (all three rows of cell)
  const double* cell = nullptr;           // 9, Å
  const double* site_energies = nullptr;  // n_atoms, eV
  const double* forces = nullptr;         // n_atoms x 3, eV/Å
  const double* charges = nullptr;        // n_atoms
  const double* nbh_grades = nullptr;     // n_atoms
  const double* energy = nullptr;         // eV
  const double* virial = nullptr;         // 6, eV, xx yy zz yz xz xy
  // (key, printed value); written sorted by key, keys that are empty or hold
  // whitespace left out, values with newlines over several lines
  std::vector<std::pair<std::string, std::string>> features;
};

// Append one configuration in MLIP's layout, as mtpkit.potentials.cfg.format_cfg.
void append_cfg(std::string& out, const CfgRecord& record);

}  // namespace mtpkit
