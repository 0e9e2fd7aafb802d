// Registration of pair style `nnp` and compute style `nnp/atom` with LAMMPS
// (`plugin load nnpplugin.so`, or automatically from a directory in
// LAMMPS_PLUGIN_PATH), and, for a LAMMPS built without the PLUGIN package,
// nnp_register_pair_style() called with the LAMMPS pointer (from LAMMPS's
// `python` command or Python module via ctypes).
#include "compute_nnp_atom.h"
#include "force.h"
#include "lammps.h"
#include "lammpsplugin.h"
#include "modify.h"
#include "pair_nnp.h"

#ifndef NNP_LAMMPS_VERSION
#error "NNP_LAMMPS_VERSION (the LAMMPS_VERSION string of the target LAMMPS) must be defined"
#endif

using namespace LAMMPS_NS;

static Pair *nnp_creator(LAMMPS *lmp)
{
  return new PairNNP(lmp);
}

static Compute *nnp_atom_creator(LAMMPS *lmp, int narg, char **arg)
{
  return new ComputeNNPAtom(lmp, narg, arg);
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

  plugin.style = "compute";
  plugin.name = "nnp/atom";
  plugin.info = "nnp/atom: committee deviation of pair style nnp per atom";
  plugin.creator.v2 = reinterpret_cast<lammpsplugin_factory2 *>(&nnp_atom_creator);
  (*register_plugin)(&plugin, lmp);
}

// Adds `nnp` to the pair styles (and `nnp/atom` to the compute styles) of
// one LAMMPS instance directly (the style maps of Force and Modify), for
// LAMMPS builds without `plugin load` (see docs/lammps.md).
extern "C" __attribute__((visibility("default"))) void nnp_register_pair_style(void *lmp)
{
  auto *instance = static_cast<LAMMPS *>(lmp);
  (*instance->force->pair_map)["nnp"] = &nnp_creator;
  (*instance->modify->compute_map)["nnp/atom"] = &nnp_atom_creator;
}
