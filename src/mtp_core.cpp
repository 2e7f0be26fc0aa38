#include "mtp_core.hpp"
namespace mtpkit {
int core_version() { return 1; }
}
