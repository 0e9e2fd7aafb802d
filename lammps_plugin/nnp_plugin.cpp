// Registration of pair style `nnp` with LAMMPS (`plugin load nnpplugin.so`, or
// automatically from a directory in LAMMPS_PLUGIN_PATH), and, for a LAMMPS
// built without the PLUGIN package, nnp_register_pair_style() called with the
// LAMMPS pointer (from LAMMPS's `python` command or Python module via ctypes).
#include "force.h"
#include "lammps.h"
#include "lammpsplugin.h"
#include "pair_nnp.h"

#ifndef NNP_LAMMPS_VERSION
#error "NNP_LAMMPS_VERSION (the LAMMPS_VERSION string of the target LAMMPS) must be defined"
#endif

using namespace LAMMPS_NS;

static Pair *nnp_creator(LAMMPS *lmp)
{
  return new PairNNP(lmp);
}

extern "C" __attribute__((visibility("default"))) void lammpsplugin_init(void *lmp, void *handle,
                                                                          void *regfunc)
{
  lammpsplugin_t plugin;
  auto register_plugin = reinterpret_cast<lammpsplugin_regfunc>(regfunc);

  plugin.version = NNP_LAMMPS_VERSION;
  plugin.style = "pair";
  plugin.name = "nnp";
  plugin.info = "nnp: Behler-Parrinello neural network potential";
  plugin.author = "nnp developers";
  plugin.creator.v1 = reinterpret_cast<lammpsplugin_factory1 *>(&nnp_creator);
  plugin.handle = handle;
  (*register_plugin)(&plugin, lmp);
}

// Adds `nnp` to the pair styles of one LAMMPS instance directly (Force's
// style map), for LAMMPS builds without `plugin load` (see docs/lammps.md).
extern "C" __attribute__((visibility("default"))) void nnp_register_pair_style(void *lmp)
{
  (*static_cast<LAMMPS *>(lmp)->force->pair_map)["nnp"] = &nnp_creator;
}
