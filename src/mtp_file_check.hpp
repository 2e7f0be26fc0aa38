// Whether the compiled .mtp reader (mtp_file.hpp, written for the LAMMPS
// plugin, lenient) and the Python reader (mtpkit.potentials.mtp_io.read_mtp,
// strict, with its own messages and warnings) read a potential file the same.
//
// `mtpkit evaluate` reads the potential with the compiled reader only when this
// check passes; otherwise it lets the Python reader read it, so every error
// and warning about a potential file is the Python reader's, word for word.
// The check is conservative: a file it passes is read to the same numbers by
// both readers, with no error or warning from the Python one; a file it does
// not pass may still be fine (plain decimals only, no underscores or signs in
// integers, for example) and simply goes the slower way.
#pragma once

#include <string>

namespace mtpkit {

// "" when both readers read the bytes of a .mtp/.almtp file `data` the same;
// else a short reason (for messages and tests).
std::string mtp_file_irregularity(const std::string& data);

}  // namespace mtpkit
