/* Stand-in for LAMMPS's bundled {fmt}, used only where an installed LAMMPS
   ships headers that include "fmt/format.h" without shipping it (Debian's
   liblammps-dev for LAMMPS 29 Sep 2021). It declares just the names those
   headers mention, so they parse; the plugin is then built with
   NNP_LAMMPS_NO_FMT and calls only the plain std::string overloads of
   LAMMPS's Error class (nnp_lammps_error.h formats the messages), never a
   function taking these types. */
#ifndef NNP_COMPAT_FMT_FORMAT_H
#define NNP_COMPAT_FMT_FORMAT_H

namespace fmt {
class string_view {
 public:
  string_view(const char *) {}
};
class format_args {};
template <typename... Args, typename S>
format_args make_args_checked(const S &, const Args &...);  // never defined: must stay unused
}  // namespace fmt

#endif
