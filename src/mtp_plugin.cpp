// Registration of `pair_style mtp` with LAMMPS's plugin loader.
#include "lammps.h"
#include "lammpsplugin_decl.h"
#include "pair_mtp.h"

using namespace LAMMPS_NS;

static Pair *pair_mtp_creator(LAMMPS *lmp) { return new PairMTP(lmp); }

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  lammpsplugin_t plugin;
  auto register_plugin = reinterpret_cast<lammpsplugin_regfunc>(regfunc);
  // the version of the LAMMPS that loads us: no mismatch warning
  plugin.version = static_cast<LAMMPS *>(lmp)->version;
  plugin.style = "pair";
  plugin.name = "mtp";
  plugin.info = "mtpkit Moment Tensor Potential pair style with extrapolation control";
  plugin.author = "mtpkit";
  plugin.creator.v1 = reinterpret_cast<lammpsplugin_factory1 *>(&pair_mtp_creator);
  plugin.handle = handle;
  register_plugin(&plugin, lmp);
}
