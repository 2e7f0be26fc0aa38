#include <nanobind/nanobind.h>
#include "mtp_core.hpp"
namespace nb = nanobind;
NB_MODULE(_core, m) {
  m.def("core_version", &mtpkit::core_version);
}
