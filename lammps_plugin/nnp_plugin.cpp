// Registration of pair style `nnp` with LAMMPS (`plugin load nnpplugin.so`, or
// automatically from a directory in LAMMPS_PLUGIN_PATH).
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
