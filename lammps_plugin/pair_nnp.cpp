// Pair style `nnp` (see pair_nnp.h). No descriptor or network maths here: all
// of it is nnp::Committee::atom_energies (nnp::Potential for each member).
#include "pair_nnp.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <exception>
#include <string>

#include "nnp/potential_file.h"
#include "nnp_lammps_error.h"

#ifndef NNP_LAMMPS_HAS_ADD_REQUEST
#include "nnp_lammps_compat.h"
#endif

using namespace LAMMPS_NS;

PairNNP::PairNNP(LAMMPS *lmp) : Pair(lmp)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  centroidstressflag = CENTROID_NOTAVAIL;
  no_virial_fdotr_compute = 1;  // the virial is tallied in compute()
  // Forces on ghost atoms: with newton_pair on LAMMPS reverse-communicates
  // them; with newton_pair off compute() does it (comm_reverse_off makes
  // LAMMPS size its buffers for that even when newton is off).
  comm_reverse = 3;
  comm_reverse_off = 3;
  // Extrapolation counts and committee deviations for `compute pair nnp`
  // (which sums them over ranks).
  nextra = kPvectorSize;
  pvector = pvector_;
}

PairNNP::~PairNNP()
{
  if (copymode) return;
  if (deviation_fp_) fclose(deviation_fp_);
  memory->destroy(fghost_);
  memory->destroy(member_f_);
  memory->destroy(deviation_atom_);
  memory->destroy(gp_std_atom_);
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

void PairNNP::allocate()
{
  allocated = 1;
  const int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
      setflag[i][j] = 0;
      cutsq[i][j] = 0.0;
    }
}

void PairNNP::check_units()
{
  if (strcmp(update->unit_style, "metal") != 0)
    NNP_ERROR_ALL(
               "Pair style nnp requires 'units metal' (nnp potential files are in eV and "
               "Angstrom), but the units are '{}'",
               update->unit_style);
}

// pair_style nnp [extrapolation warn [every N] | error N | ignore] [extrapolation_margin M]
//                [min_distance D]
void PairNNP::settings(int narg, char **arg)
{
  // Re-issuing pair_style nnp calls this again: start from the defaults.
  extrapolation_ = Extrapolation::Warn;
  warn_every_ = 1000;
  max_extrapolating_ = 0;
  min_distance_ = 0.1;
  extrapolation_margin_ = nnp::kDefaultExtrapolationMargin;
  drive_ = Drive::First;
  deviation_file_.clear();
  deviation_every_ = 1;
  if (deviation_fp_) fclose(deviation_fp_);
  deviation_fp_ = nullptr;
  last_written_step_ = -1;
  int iarg = 0;
  while (iarg < narg) {
    const std::string key = arg[iarg];
    if (key == "extrapolation") {
      const std::string mode = iarg + 1 < narg ? arg[iarg + 1] : "";
      if (mode == "warn") {
        extrapolation_ = Extrapolation::Warn;
        iarg += 2;
        if (iarg < narg && strcmp(arg[iarg], "every") == 0) {
          if (iarg + 1 >= narg)
            NNP_ERROR_ALL( "Illegal pair_style nnp: 'extrapolation warn every' needs a number of steps");
          warn_every_ = utils::bnumeric(FLERR, arg[iarg + 1], false, lmp);
          if (warn_every_ < 1)
            NNP_ERROR_ALL( "Illegal pair_style nnp: 'extrapolation warn every N' needs N >= 1, got {}",
                       warn_every_);
          iarg += 2;
        }
      } else if (mode == "error") {
        if (iarg + 2 >= narg)
          NNP_ERROR_ALL( "Illegal pair_style nnp: 'extrapolation error' needs the number of "
                            "extrapolating atoms allowed per step (0: none)");
        max_extrapolating_ = utils::bnumeric(FLERR, arg[iarg + 2], false, lmp);
        if (max_extrapolating_ < 0)
          NNP_ERROR_ALL( "Illegal pair_style nnp: 'extrapolation error N' needs N >= 0, got {}",
                     max_extrapolating_);
        extrapolation_ = Extrapolation::Error;
        iarg += 3;
      } else if (mode == "ignore") {
        extrapolation_ = Extrapolation::Ignore;
        iarg += 2;
      } else {
        NNP_ERROR_ALL( "Illegal pair_style nnp: 'extrapolation' must be followed by 'warn [every N]', "
                          "'error N' or 'ignore', got '{}'", mode);
      }
    } else if (key == "extrapolation_margin") {
      if (iarg + 1 >= narg)
        NNP_ERROR_ALL("Illegal pair_style nnp: 'extrapolation_margin' needs a fraction of the training range");
      extrapolation_margin_ = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
      if (!(extrapolation_margin_ >= 0.0) || !std::isfinite(extrapolation_margin_))
        NNP_ERROR_ALL("Illegal pair_style nnp: 'extrapolation_margin M' needs a finite M >= 0, got {}",
                      extrapolation_margin_);
      iarg += 2;
    } else if (key == "committee") {
      const std::string mode = iarg + 1 < narg ? arg[iarg + 1] : "";
      if (mode != "first" && mode != "mean")
        NNP_ERROR_ALL("Illegal pair_style nnp: 'committee' must be followed by 'first' (the first "
                      "potential file drives the dynamics) or 'mean' (the members' mean), got '{}'",
                      mode);
      drive_ = mode == "mean" ? Drive::Mean : Drive::First;
      iarg += 2;
    } else if (key == "deviation") {
      if (iarg + 1 >= narg)
        NNP_ERROR_ALL("Illegal pair_style nnp: 'deviation' needs a file name (deviation FILE [every N])");
      deviation_file_ = arg[iarg + 1];
      iarg += 2;
      if (iarg < narg && strcmp(arg[iarg], "every") == 0) {
        if (iarg + 1 >= narg)
          NNP_ERROR_ALL("Illegal pair_style nnp: 'deviation FILE every' needs a number of steps");
        deviation_every_ = utils::bnumeric(FLERR, arg[iarg + 1], false, lmp);
        if (deviation_every_ < 1)
          NNP_ERROR_ALL("Illegal pair_style nnp: 'deviation FILE every N' needs N >= 1, got {}",
                        deviation_every_);
        iarg += 2;
      }
    } else if (key == "min_distance") {
      if (iarg + 1 >= narg) NNP_ERROR_ALL( "Illegal pair_style nnp: 'min_distance' needs a distance");
      min_distance_ = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
      if (!(min_distance_ >= 0.0))
        NNP_ERROR_ALL( "Illegal pair_style nnp: 'min_distance D' needs D >= 0, got {}", min_distance_);
      iarg += 2;
    } else {
      NNP_ERROR_ALL(
                 "Illegal pair_style nnp argument '{}': expected 'extrapolation warn [every N] | error N "
                 "| ignore', 'extrapolation_margin M', 'min_distance D', 'committee first | mean' or "
                 "'deviation FILE [every N]' (the cutoff comes from the potential file, so pair_style "
                 "nnp takes no arguments other than these keywords)",
                 key);
    }
  }
}

// Rank 0 reads the file; every rank gets the broadcast text (so a file on a
// disk that only rank 0 sees is enough). Like every LAMMPS pair style, a file
// not found as given is looked up in $LAMMPS_POTENTIALS.
std::string PairNNP::read_potential_text(const std::string &filename)
{
  std::string text, message;
  long long length = 0;
  if (comm->me == 0) {
    try {
      std::string path = utils::get_potential_file_path(filename);
      if (path.empty()) path = filename;  // read_text_file names the missing file
      text = nnp::read_text_file(path);
      length = static_cast<long long>(text.size());
      if (length > INT_MAX) {
        message = "potential file " + filename + " is too large";
        length = -1;
      }
    } catch (std::exception &e) {
      message = e.what();
      length = -1;
    }
  }
  MPI_Bcast(&length, 1, MPI_LONG_LONG, 0, world);
  if (length < 0) {
    int mlen = static_cast<int>(message.size());
    MPI_Bcast(&mlen, 1, MPI_INT, 0, world);
    message.resize(mlen);
    MPI_Bcast(message.data(), mlen, MPI_CHAR, 0, world);
    NNP_ERROR_ALL( "Pair style nnp cannot read potential file: {}", message);
  }
  text.resize(static_cast<std::size_t>(length));
  if (length > 0) MPI_Bcast(text.data(), static_cast<int>(length), MPI_CHAR, 0, world);
  return text;
}

// pair_coeff * * FILE [FILE ...] E1 ... E_ntypes: the files are the
// arguments before the first chemical symbol (or NULL).
void PairNNP::coeff(int narg, char **arg)
{
  check_units();
  const int ntypes = atom->ntypes;
  if (narg < 3)
    NNP_ERROR_ALL( "Incorrect args for pair coefficients: expected 'pair_coeff * * FILE E1 ... "
                      "E{}' for pair style nnp",
               ntypes);
  if (strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    NNP_ERROR_ALL( "Pair style nnp takes a single 'pair_coeff * * FILE E1 ... E{}'", ntypes);
  const auto is_symbol = [](const char *a) { return strcmp(a, "NULL") == 0 || nnp::atomic_number(a) > 0; };
  int nfiles = 0;
  while (2 + nfiles < narg && !is_symbol(arg[2 + nfiles])) nfiles++;
  if (nfiles == 0)
    NNP_ERROR_ALL("Incorrect args for pair coefficients: expected 'pair_coeff * * FILE [FILE ...] E1 "
                  "... E{}' for pair style nnp, but '{}' is a chemical symbol, not a potential file",
                  ntypes, arg[2]);
  if (narg - 2 - nfiles != ntypes) {
    std::string files;
    for (int k = 0; k < nfiles; k++) files += std::string(k ? " " : "") + arg[2 + k];
    NNP_ERROR_ALL(
               "Wrong number of elements in pair_coeff for pair style nnp: expected {} (one "
               "per atom type) after the file name{}, got {}{}",
               ntypes, nfiles > 1 ? "s" : "", narg - 2 - nfiles,
               nfiles > 1 ? " (the arguments before the first chemical symbol are taken as potential "
                            "files: " + files + ")" : std::string());
  }

  std::vector<std::string> filenames;
  std::vector<nnp::Potential> members;
  std::string first_text;
  for (int k = 0; k < nfiles; k++) {
    const std::string filename = arg[2 + k];
    for (const auto &seen : filenames)
      if (seen == filename)
        NNP_ERROR_ALL("Pair style nnp: potential file {} is listed twice in pair_coeff: a committee "
                      "member counted twice biases its deviation",
                      filename);
    const std::string text = read_potential_text(filename);
    if (k == 0) first_text = text;
    else if (text == first_text && comm->me == 0)
      NNP_WARNING("Pair style nnp: potential files {} and {} are identical: the committee's "
                  "deviation is smaller than that of distinct members",
                  filenames[0], filename);
    try {
      members.push_back(nnp::parse_potential(text, filename));
    } catch (std::exception &e) {
      NNP_ERROR_ALL( "Pair style nnp: invalid potential file: {}", e.what());
    }
    filenames.push_back(filename);
  }
  nnp::Committee committee;
  try {
    committee = nnp::Committee(std::move(members), filenames);
  } catch (std::exception &e) {
    NNP_ERROR_ALL("Pair style nnp: {}", e.what());
  }
  const std::string &filename = filenames[0];
  const int arg_elements = 2 + nfiles - 1;  // arg[arg_elements + t] is type t's symbol

  // NULL: a type nnp does not handle (pair_style hybrid gives it to another
  // sub-style); its atoms are neither centres nor neighbours for nnp.
  std::vector<int> type_element(ntypes + 1, -1);
  for (int t = 1; t <= ntypes; t++) {
    const char *symbol = arg[arg_elements + t];
    if (strcmp(symbol, "NULL") == 0) {
      // Alone, nnp would leave those pairs without any interaction.
      if (force->pair == this)
        NNP_ERROR_ALL(
                   "Pair style nnp: atom type {} is mapped to NULL in pair_coeff, which leaves it "
                   "without interactions; NULL is for pair_style hybrid or hybrid/overlay, where "
                   "another sub-style handles that type",
                   t);
      continue;
    }
    const int e = committee.element_index(symbol);
    if (e < 0) {
      std::string known;
      for (const auto &el : committee.elements()) known += (known.empty() ? "" : " ") + el.symbol;
      NNP_ERROR_ALL(
                 "Pair style nnp: element '{}' (atom type {}) is not in potential file {} "
                 "(its elements: {}; NULL leaves a type to another pair style)",
                 symbol, t, filename, known);
    }
    type_element[t] = e;
  }

  if (!allocated) allocate();
  committee_ = std::move(committee);
  have_potential_ = true;
  filenames_ = std::move(filenames);
  type_element_ = std::move(type_element);
  deviation_step_ = -1;
  pvector_[1] = 0.0;  // the cumulative count is per potential
  warned_ = false;
  cutoff_ = committee_.cutoff();
  // Only pairs of mapped types are nnp's: pair_style hybrid reads setflag to
  // assign pairs to sub-styles and to build nnp's (skip) neighbour list.
  for (int i = 1; i <= ntypes; i++)
    for (int j = 1; j <= ntypes; j++)
      setflag[i][j] = (type_element_[i] >= 0 && type_element_[j] >= 0) ? 1 : 0;
  zbl_warned_ = false;
}

void PairNNP::init_style()
{
  check_units();
  if (!have_potential_) NNP_ERROR_ALL( "Pair style nnp: no potential file (pair_coeff) given");
  // In 2d LAMMPS makes no ghost atoms along z, so periodic images closer than
  // the cutoff would be silently missing from the (3d) descriptors.
  if (domain->dimension != 3)
    NNP_ERROR_ALL( "Pair style nnp requires 'dimension 3' (the descriptors are three-dimensional; "
                      "model a 2d material as a slab with vacuum along z)");
  if (atom->ntypes + 1 != static_cast<int>(type_element_.size()))
    NNP_ERROR_ALL( "Pair style nnp: the number of atom types changed since pair_coeff");
  // pair_style may be re-issued after pair_coeff; the margin applies from the next run on.
  for (int k = 0; k < committee_.size(); k++) committee_.member(k).set_extrapolation_margin(extrapolation_margin_);
  if (!deviation_file_.empty() && committee_.size() < 2)
    NNP_ERROR_ALL("Pair style nnp: 'deviation {}' needs a committee: give several potential files in "
                  "pair_coeff (pair_coeff * * A.nnp B.nnp ... E1 ... EN)",
                  deviation_file_);
  // Rank 0 writes the model_devi file; re-issuing pair_style starts it anew.
  if (!deviation_file_.empty() && comm->me == 0 && !deviation_fp_) {
    deviation_fp_ = fopen(deviation_file_.c_str(), "w");
    if (!deviation_fp_)
      NNP_ERROR_ONE("Pair style nnp: cannot open deviation file {}: {}", deviation_file_,
                    utils::getsyserror());
    fprintf(deviation_fp_, "#%11s %18s %18s %18s %18s %18s %18s %18s\n", "step", "max_devi_v",
            "min_devi_v", "avg_devi_v", "max_devi_f", "min_devi_f", "avg_devi_f", "devi_e");
    fflush(deviation_fp_);
  }
  warn_double_core();
#ifdef NNP_LAMMPS_HAS_ADD_REQUEST
  neighbor->add_request(this, NeighConst::REQ_FULL);
#else
  nnp_compat::request_full_list(lmp, this, instance_me);
#endif
}

// The file's ZBL core plus `pair_style hybrid/overlay nnp ... zbl ...` adds
// the screened Coulomb repulsion twice; legal, but almost surely a mistake.
void PairNNP::warn_double_core()
{
  bool any_core = false;
  for (int k = 0; k < committee_.size(); k++) any_core |= !committee_.member(k).repulsion().empty();
  if (zbl_warned_ || !any_core) return;
  const std::string style = force->pair_style ? force->pair_style : "";
  if (style.rfind("hybrid/overlay", 0) != 0 && style.rfind("hybrid/scaled", 0) != 0) return;
  // Exact "zbl" for LAMMPS versions whose inexact match is a substring test.
  if (force->pair_match("zbl", 1) == nullptr && force->pair_match("^zbl", 0) == nullptr) return;
  zbl_warned_ = true;
  if (comm->me == 0)
    NNP_WARNING(
                   "Pair style nnp: potential file {} already carries a ZBL repulsive core, and "
                   "pair_style {} adds pair style zbl on top: the core is counted twice where "
                   "both apply",
                   model_files(), style);
}

double PairNNP::init_one(int i, int j)
{
  if (setflag[i][j] == 0) {
    const int unmapped = type_element_[i] < 0 ? i : j;
    if (type_element_[i] < 0 || type_element_[j] < 0)
      NNP_ERROR_ALL(
                 "Pair style nnp: atom type {} is mapped to NULL in pair_coeff, so the pair of "
                 "types {} {} has no interaction; give those types to another pair style with "
                 "pair_style hybrid or hybrid/overlay",
                 unmapped, i, j);
    NNP_ERROR_ALL( "All pair coeffs are not set");
  }
  return cutoff_;
}

void PairNNP::grow_neighbors(int n)
{
  if (n <= max_neighbors_) return;
  max_neighbors_ = std::max(n, 2 * max_neighbors_);
  member_dE_dr_.resize(3 * static_cast<std::size_t>(max_neighbors_) * committee_.size());
  dx_.resize(max_neighbors_);
  dy_.resize(max_neighbors_);
  dz_.resize(max_neighbors_);
  dE_dr_.resize(3 * static_cast<std::size_t>(max_neighbors_));
  neighbor_element_.resize(max_neighbors_);
  neighbor_index_.resize(max_neighbors_);
}

void PairNNP::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);

  double **x = atom->x;
  double **f = atom->f;
  const int *type = atom->type;
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  const bool newton = force->newton_pair != 0;
  const double cutsq_all = cutoff_ * cutoff_;
  const double min_distsq = min_distance_ * min_distance_;
  const tagint *tag = atom->tag;
  const auto id = [tag](int k) -> tagint { return tag ? tag[k] : k + 1; };
  bigint n_extrapolating = 0;
  tagint first_extrapolating = MAXTAGINT;

  // Committee: every member on steps that need the deviations, else only
  // the driving one(s).
  const int K = committee_.size();
  const bool deviation = K > 1 && deviation_wanted(eflag);
  const int n_eval = (deviation || drive_ == Drive::Mean) ? K : 1;
  if (member_energy_.size() != static_cast<std::size_t>(K)) {
    member_energy_.assign(K, 0.0);
    member_outside_.reset(new bool[K]());
  }
  if (member_dE_dr_.size() < 3 * static_cast<std::size_t>(max_neighbors_) * K)
    member_dE_dr_.resize(3 * static_cast<std::size_t>(max_neighbors_) * K);
  if (deviation) grow_member_forces(K);
  const bool gp_std = gp_std_requested_ && eflag_atom;
  if (gp_std) grow_gp_std();

  // With newton off, LAMMPS discards forces on ghosts: collect them here.
  if (!newton) {
    if (atom->nmax > max_fghost_) {
      max_fghost_ = atom->nmax;
      memory->grow(fghost_, max_fghost_, 3, "pair:nnp:fghost");
    }
    if (nall > 0) std::fill_n(&fghost_[0][0], 3 * static_cast<std::size_t>(nall), 0.0);
  }

  const int inum = list->inum;
  const int *ilist = list->ilist;
  const int *numneigh = list->numneigh;
  int **firstneigh = list->firstneigh;

  for (int ii = 0; ii < inum; ii++) {
    const int i = ilist[ii];
    const double xi = x[i][0], yi = x[i][1], zi = x[i][2];
    const int *jlist = firstneigh[i];
    const int jnum = numneigh[i];
    grow_neighbors(jnum);

    // A centre or neighbour of a NULL type is another pair style's (with
    // hybrid LAMMPS's skip list already leaves them out).
    const int element = type_element_[type[i]];
    if (element < 0) continue;
    int n = 0;
    for (int jj = 0; jj < jnum; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      if (type_element_[type[j]] < 0) continue;
      const double dx = x[j][0] - xi, dy = x[j][1] - yi, dz = x[j][2] - zi;
      const double rsq = dx * dx + dy * dy + dz * dz;
      if (rsq >= cutsq_all) continue;
      if (rsq < min_distsq)
        NNP_ERROR_ONE(
                   "Pair style nnp: atoms {} and {} are {:.6g} Angstrom apart at step {}, closer than "
                   "min_distance {} (overlapping atoms: check the structure, the units or the time step)",
                   id(i), id(j), std::sqrt(rsq), update->ntimestep, min_distance_);
      dx_[n] = dx;
      dy_[n] = dy;
      dz_[n] = dz;
      neighbor_element_[n] = type_element_[type[j]];
      neighbor_index_[n] = j;
      n++;
    }

    nnp::NeighborView view;
    view.count = n;
    view.dx = dx_.data();
    view.dy = dy_.data();
    view.dz = dz_.data();
    view.element = neighbor_element_.data();
    // Members' gradients in blocks of 3n; the driving one is member 0's
    // block or, with `committee mean`, their mean in dE_dr_.
    const std::size_t stride = 3 * static_cast<std::size_t>(n);
    double *member_dE_dr = member_dE_dr_.data();
    std::fill_n(member_dE_dr, stride * n_eval, 0.0);
    try {
      committee_.atom_energies(element, view, n_eval, member_energy_.data(), member_dE_dr, stride,
                               workspace_, member_outside_.get());
    } catch (std::exception &e) {
      NNP_ERROR_ONE( "Pair style nnp: atom {}: {}", id(i), e.what());
    }
    double *dE_dr = member_dE_dr;
    double ei = member_energy_[0];
    bool extrapolating = member_outside_[0];
    if (drive_ == Drive::Mean && K > 1) {
      dE_dr = dE_dr_.data();
      ei = 0.0;
      for (std::size_t c = 0; c < stride; c++) dE_dr[c] = 0.0;
      for (int k = 0; k < K; k++) {
        ei += member_energy_[k];
        extrapolating = extrapolating || member_outside_[k];
        for (std::size_t c = 0; c < stride; c++) dE_dr[c] += member_dE_dr[k * stride + c];
      }
      ei /= K;
      for (std::size_t c = 0; c < stride; c++) dE_dr[c] /= K;
    }
    if (deviation) tally_member_forces(K, i, n);
    if (gp_std) tally_gp_std(i, element);
    if (extrapolating) {
      n_extrapolating++;
      first_extrapolating = std::min(first_extrapolating, id(i));
    }

    double fix = 0.0, fiy = 0.0, fiz = 0.0;
    for (int k = 0; k < n; k++) {
      fix += dE_dr[3 * k];
      fiy += dE_dr[3 * k + 1];
      fiz += dE_dr[3 * k + 2];
    }
    // Any NaN or infinity in E_i or its gradient makes this sum non-finite.
    if (!std::isfinite(ei + fix + fiy + fiz))
      NNP_ERROR_ONE(
                 "Pair style nnp: non-finite energy or force for atom {} (element {}) at step {}: "
                 "E_i = {}{}",
                 id(i), committee_.elements()[element].symbol, update->ntimestep, ei,
                 extrapolating ? "; its descriptors are outside the training range of " + model_files()
                               : "; check the potential file " + model_files());
    if (eflag_global) eng_vdwl += ei;
    if (eflag_atom) eatom[i] += ei;

    double v[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    for (int k = 0; k < n; k++) {
      const int j = neighbor_index_[k];
      const double gx = dE_dr[3 * k], gy = dE_dr[3 * k + 1], gz = dE_dr[3 * k + 2];
      double *fj = (newton || j < nlocal) ? f[j] : fghost_[j];
      fj[0] -= gx;
      fj[1] -= gy;
      fj[2] -= gz;
      if (vflag_either) {
        v[0] -= dx_[k] * gx;
        v[1] -= dy_[k] * gy;
        v[2] -= dz_[k] * gz;
        v[3] -= dx_[k] * gy;
        v[4] -= dx_[k] * gz;
        v[5] -= dy_[k] * gz;
      }
    }
    f[i][0] += fix;
    f[i][1] += fiy;
    f[i][2] += fiz;
    if (vflag_global)
      for (int c = 0; c < 6; c++) virial[c] += v[c];
    if (vflag_atom)
      for (int c = 0; c < 6; c++) vatom[i][c] += v[c];
  }

  if (!newton) {
    comm_member_ = -1;
#ifdef NNP_LAMMPS_HAS_REVERSE_COMM_PAIR
    comm->reverse_comm_pair(this);  // LAMMPS before 2022
#else
    comm->reverse_comm(this);
#endif
    for (int i = 0; i < nlocal; i++) {
      f[i][0] += fghost_[i][0];
      f[i][1] += fghost_[i][1];
      f[i][2] += fghost_[i][2];
    }
  }

  // Finite atomic energies can still overflow in the sum (E_i ~ 1e308).
  if (eflag_global && !std::isfinite(eng_vdwl))
    NNP_ERROR_ONE(
               "Pair style nnp: non-finite total energy at step {} although every atomic energy is "
               "finite (they are absurdly large: check the potential file {})",
               update->ntimestep, model_files());

  pvector_[0] = static_cast<double>(n_extrapolating);
  pvector_[1] += static_cast<double>(n_extrapolating);
  report_extrapolation(n_extrapolating, first_extrapolating);
  if (deviation) finish_deviation(K);
  if (gp_std) finish_gp_std();
}

// Collective (every rank calls it once per compute()): sums the count over
// ranks, then warns on rank 0 (rate-limited) or stops, as the keywords say.
void PairNNP::report_extrapolation(bigint local, tagint first_tag)
{
  bigint global = 0;
  MPI_Allreduce(&local, &global, 1, MPI_LMP_BIGINT, MPI_SUM, world);
  extrapolating_global_ = static_cast<double>(global);
  if (global == 0 || extrapolation_ == Extrapolation::Ignore) return;

  const bigint step = update->ntimestep;
  const bool fail = extrapolation_ == Extrapolation::Error && global > max_extrapolating_;
  const bool warn = extrapolation_ == Extrapolation::Warn &&
      (!warned_ || step < last_warning_step_ || step - last_warning_step_ >= warn_every_);
  if (!fail && !warn) return;
  // Every rank takes the same branch (global and step agree), so this is safe.
  tagint first = MAXTAGINT;
  MPI_Allreduce(&first_tag, &first, 1, MPI_LMP_TAGINT, MPI_MIN, world);
  if (fail)
    NNP_ERROR_ALL(
               "Pair style nnp: {} atoms extrapolating at step {}, more than the {} allowed by "
               "'extrapolation error {}' (e.g. atom {}): their descriptors are outside the training "
               "range of {}",
               global, step, max_extrapolating_, max_extrapolating_, first, model_files());
  warned_ = true;
  last_warning_step_ = step;
  if (comm->me == 0)
    NNP_WARNING(
                   "Pair style nnp: {} atom(s) extrapolating at step {} (e.g. atom {}): descriptors "
                   "outside the training range of {}, results there are unreliable; next warning "
                   "in {} steps at the earliest",
                   global, step, first, model_files(), warn_every_);
}

void *PairNNP::extract(const char *name, int &dim)
{
  dim = 0;
  if (strcmp(name, "extrapolating_atoms") == 0) return &extrapolating_global_;
  return nullptr;
}

// Three values per atom: forces on ghosts (comm_member_ -1) or one
// member's forces (comm_member_ k), so comm_reverse stays 3 whatever K.
int PairNNP::pack_reverse_comm(int n, int first, double *buf)
{
  int m = 0;
  for (int i = first; i < first + n; i++) {
    const double *v = comm_member_ < 0 ? fghost_[i] : member_f_[i] + 3 * comm_member_;
    buf[m++] = v[0];
    buf[m++] = v[1];
    buf[m++] = v[2];
  }
  return m;
}

void PairNNP::unpack_reverse_comm(int n, int *list, double *buf)
{
  int m = 0;
  for (int i = 0; i < n; i++) {
    const int j = list[i];
    double *v = comm_member_ < 0 ? fghost_[j] : member_f_[j] + 3 * comm_member_;
    v[0] += buf[m++];
    v[1] += buf[m++];
    v[2] += buf[m++];
  }
}

double PairNNP::memory_usage()
{
  double bytes = Pair::memory_usage();
  bytes += 3.0 * sizeof(double) * max_fghost_;
  bytes += static_cast<double>(sizeof(double)) *
      (dx_.capacity() + dy_.capacity() + dz_.capacity() + dE_dr_.capacity());
  bytes += static_cast<double>(sizeof(int)) *
      (neighbor_element_.capacity() + neighbor_index_.capacity() + type_element_.capacity());
  bytes += static_cast<double>(workspace_.bytes());
  return bytes;
}
