/* Compatibility with LAMMPS versions before Neighbor::add_request (LAMMPS
   2022): there a pair style asks for a full list by editing the NeighRequest
   that Neighbor::request() returns. Some installations (Debian's
   liblammps-dev, LAMMPS 29 Sep 2021) do not ship neigh_request.h, so the
   leading members of NeighRequest, unchanged from 2013 to 2021, are declared
   here and checked before use: a layout that does not match stops LAMMPS with
   an error instead of corrupting memory. */
#ifndef NNP_LAMMPS_COMPAT_H
#define NNP_LAMMPS_COMPAT_H

#include "error.h"
#include <string>
#include "lammps.h"
#include "neighbor.h"
#include "pointers.h"

#if __has_include("neigh_request.h")
#include "neigh_request.h"
#define NNP_HAVE_NEIGH_REQUEST_H 1
#endif

namespace nnp_compat {

#ifdef NNP_HAVE_NEIGH_REQUEST_H
using RequestHead = LAMMPS_NS::NeighRequest;
#else
// Never constructed: only a view of a NeighRequest made by LAMMPS.
struct RequestHead : protected LAMMPS_NS::Pointers {
  int index;
  void *requestor;
  int requestor_instance;
  int id;
  int pair, fix, compute, command, neigh;
  int half, full;
};
#endif

inline void request_full_list(LAMMPS_NS::LAMMPS *lmp, void *pair, int instance)
{
  const int irequest = lmp->neighbor->request(pair, instance);
  auto *request = reinterpret_cast<RequestHead *>(lmp->neighbor->requests[irequest]);
  if (request->index != irequest || request->requestor != pair || request->pair != 1 ||
      request->half != 1 || request->full != 0)
    lmp->error->all(FLERR, std::string(
                    "Pair style nnp: this LAMMPS's NeighRequest does not have the layout of LAMMPS "
                    "2013-2021 that the plugin was built for; build it against LAMMPS sources "
                    "(-DLAMMPS_SOURCE_DIR=.../src) that include neigh_request.h"));
  request->half = 0;
  request->full = 1;
}

}  // namespace nnp_compat

#endif
