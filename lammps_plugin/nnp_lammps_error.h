/* NNP_ERROR_ALL / NNP_ERROR_ONE / NNP_WARNING(format, args...): LAMMPS's
   error->all/one/warning(FLERR, format, args...). Where the LAMMPS headers
   come without {fmt} (NNP_LAMMPS_NO_FMT, see compat/fmt/format.h) the
   message is formatted here ("{}" and "{:.Ng}" only, all this plugin uses)
   and passed to the std::string overloads, which every LAMMPS has. */
#ifndef NNP_LAMMPS_ERROR_H
#define NNP_LAMMPS_ERROR_H

#ifdef NNP_LAMMPS_NO_FMT
#include <sstream>
#include <string>

namespace nnp_compat {

inline void format_next(std::ostringstream &out, const char *&p)
{
  // Copy up to the next "{...}"; leaves p after it (or at the end).
  while (*p && *p != '{') out << *p++;
}

inline std::string format(const char *p)
{
  std::ostringstream out;
  format_next(out, p);
  return out.str();
}

template <typename T, typename... Rest>
std::string format(const char *p, const T &value, const Rest &...rest)
{
  std::ostringstream out;
  format_next(out, p);
  if (!*p) return out.str();
  const char *end = p;
  while (*end && *end != '}') end++;
  const std::string spec(p + 1, end);  // e.g. "" or ":.6g"
  if (spec.size() > 2 && spec[0] == ':' && spec[1] == '.') out.precision(std::stoi(spec.substr(2)));
  out << value;
  return out.str() + format(*end ? end + 1 : end, rest...);
}

}  // namespace nnp_compat

#define NNP_ERROR_ALL(...) error->all(FLERR, nnp_compat::format(__VA_ARGS__))
#define NNP_ERROR_ONE(...) error->one(FLERR, nnp_compat::format(__VA_ARGS__))
#define NNP_WARNING(...) error->warning(FLERR, nnp_compat::format(__VA_ARGS__))
#else
#define NNP_ERROR_ALL(...) error->all(FLERR, __VA_ARGS__)
#define NNP_ERROR_ONE(...) error->one(FLERR, __VA_ARGS__)
#define NNP_WARNING(...) error->warning(FLERR, __VA_ARGS__)
#endif

#endif
