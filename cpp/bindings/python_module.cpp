// nnp._core: the Python door into the C++ core. Thin: converts numpy arrays to
// the core's structures and back; nnp::Error becomes ValueError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstring>
#include <optional>
#include <tuple>

#include "nnp/committee.h"
#include "nnp/error.h"
#include "nnp/neighbor_list.h"
#include "nnp/potential_file.h"
#include "nnp/potential_spec.h"
#include "nnp/symmetry_function.h"
#include "nnp/structure.h"
#include "nnp/training_kernels.h"

namespace py = pybind11;
using nnp::Descriptor;
using nnp::Potential;

namespace {

using Doubles = py::array_t<double, py::array::c_style | py::array::forcecast>;
using Ints = py::array_t<int, py::array::c_style | py::array::forcecast>;
using Int64s = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

template <class T>
py::array_t<T> to_array(const std::vector<T>& v, std::vector<py::ssize_t> shape) {
  py::array_t<T> a(shape);
  if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
  return a;
}

nnp::Cell make_cell(const Doubles& cell, const std::array<bool, 3>& pbc) {
  if (cell.ndim() != 2 || cell.shape(0) != 3 || cell.shape(1) != 3)
    throw nnp::Error("cell must be a 3 x 3 array of lattice vectors (rows)");
  nnp::Cell c;
  for (int a = 0; a < 3; ++a) {
    c.pbc[a] = pbc[a];
    for (int b = 0; b < 3; ++b) c.vectors[a][b] = cell.at(a, b);
  }
  return c;
}

nnp::Structure make_structure(const Doubles& positions, const Ints& elements, const Doubles& cell,
                              const std::array<bool, 3>& pbc) {
  if (positions.ndim() != 2 || positions.shape(1) != 3)
    throw nnp::Error("positions must be an (n, 3) array");
  if (elements.ndim() != 1 || elements.shape(0) != positions.shape(0))
    throw nnp::Error("elements must be an (n,) array matching positions");
  nnp::Structure s;
  s.n_atoms = static_cast<int>(positions.shape(0));
  s.positions = positions.data();
  s.elements = elements.data();
  s.cell = make_cell(cell, pbc);
  return s;
}

nnp::CutoffType cutoff_from_name(const std::string& name) { return nnp::cutoff_type_from_name(name); }

bool full_sum_from_name(const std::string& name) {
  const auto& names = nnp::angular_sum_names();
  if (name == names[0]) return false;
  if (name == names[1]) return true;
  throw nnp::Error("angular_sum must be 'half' or 'full', found '" + name + "'");
}

std::vector<Descriptor> make_descriptors(const std::vector<std::vector<nnp::SymmetryFunction>>& functions,
                                         const std::string& cutoff_function, const std::string& angular_sum,
                                         double cutoff_alpha = 0.0) {
  const bool full = full_sum_from_name(angular_sum);
  const nnp::CutoffType cutoff = cutoff_from_name(cutoff_function);
  std::vector<Descriptor> out;
  for (const auto& funcs : functions)
    out.emplace_back(funcs, cutoff, full, static_cast<int>(functions.size()), cutoff_alpha);
  return out;
}

// The features of one centre element as numpy arrays (the pair arrays None
// without derivatives). f["G"], keys() and items() work as for the dicts of
// the tests' reference featuriser (tests/reference_descriptors.py), so code
// that takes either needs no branch.
struct PyFeatures {
  py::object G, atoms, pair_center, pair_neighbor, pair_vector, dG_dr;
  // (name, array) of the fields that are set, as the keys of a dict.
  std::vector<std::pair<const char*, py::object>> fields() const {
    std::vector<std::pair<const char*, py::object>> out = {{"G", G}, {"atoms", atoms}};
    if (!dG_dr.is_none())
      out.insert(out.end(), {{"pair_center", pair_center}, {"pair_neighbor", pair_neighbor},
                             {"pair_vector", pair_vector}, {"dG_dr", dG_dr}});
    return out;
  }
};

py::list features_to_python(const std::vector<nnp::ElementFeatures>& feats,
                            const std::vector<Descriptor>& descriptors, bool with_derivatives) {
  py::list out;
  for (std::size_t e = 0; e < feats.size(); ++e) {
    const auto& f = feats[e];
    const py::ssize_t M = descriptors[e].size();
    const py::ssize_t n = static_cast<py::ssize_t>(f.atoms.size());
    PyFeatures d;
    d.G = to_array(f.G, {n, M});
    d.atoms = to_array(f.atoms, {n});
    d.pair_center = d.pair_neighbor = d.pair_vector = d.dG_dr = py::none();
    if (with_derivatives) {
      const py::ssize_t P = static_cast<py::ssize_t>(f.pair_center.size());
      d.pair_center = to_array(f.pair_center, {P});
      d.pair_neighbor = to_array(f.pair_neighbor, {P});
      d.pair_vector = to_array(f.pair_vector, {P, 3});
      d.dG_dr = to_array(f.dG_dr, {P, M, 3});
    }
    out.append(py::cast(std::move(d)));
  }
  return out;
}

// A 1-D float64 array as a vector (for the spec's setters).
std::vector<double> to_vector(const Doubles& a, const char* what) {
  if (a.ndim() != 1) throw nnp::Error(std::string(what) + " must be a 1-D array");
  return std::vector<double>(a.data(), a.data() + a.size());
}

void bind_spec(py::module_& m);

struct PyDescriptors {
  std::vector<Descriptor> descriptors;
};

// The descriptor of `element`, after checking the pair arrays of the streamed contractions.
const Descriptor& streamed_descriptor(const PyDescriptors& self, int element, const Int64s& center,
                                      const Doubles& pair_vector, const Ints& pair_element) {
  if (element < 0 || element >= static_cast<int>(self.descriptors.size()))
    throw nnp::Error("element index " + std::to_string(element) + " outside the descriptor's elements");
  const py::ssize_t P = center.size();
  if (center.ndim() != 1) throw nnp::Error("center must be a (P,) array");
  if (pair_vector.ndim() != 2 || pair_vector.shape(0) != P || pair_vector.shape(1) != 3)
    throw nnp::Error("pair_vector must be a (P, 3) array matching center (P,)");
  if (pair_element.ndim() != 1 || pair_element.shape(0) != P)
    throw nnp::Error("pair_element must be a (P,) array matching center");
  return self.descriptors[element];
}

// contract_pairs and its adjoint for derivatives dG_dr stored as Real
// (an exact-dtype overload each: float32 arrays are not converted).
template <typename Real>
void bind_contractions(py::module_& m) {
  using Reals = py::array_t<Real, py::array::c_style>;
  m.def(
      "contract_pairs",
      [](const Doubles& g, const Reals& dG_dr, const Int64s& center) {
        if (g.ndim() != 2) throw nnp::Error("g must be an (R, M) array");
        const py::ssize_t R = g.shape(0), M = g.shape(1), P = center.size();
        if (dG_dr.ndim() != 3 || dG_dr.shape(0) != P || dG_dr.shape(1) != M || dG_dr.shape(2) != 3)
          throw nnp::Error("dG_dr must be a (P, M, 3) array matching g (R, M) and center (P,)");
        py::array_t<double> v({P, py::ssize_t{3}});
        {
          py::gil_scoped_release release;
          nnp::contract_pairs<Real>(g.data(), R, M, dG_dr.data(), center.data(), P, v.mutable_data());
        }
        return v;
      },
      py::arg("g"), py::arg("dG_dr"), py::arg("center"),
      "v[p] = sum_mu g[center[p], mu] * dG_dr[p, mu, :]  (P, 3); dG_dr float64 or float32.");
  m.def(
      "contract_pairs_adjoint",
      [](const Doubles& u, const Reals& dG_dr, const Int64s& center, py::ssize_t R) {
        const py::ssize_t P = center.size();
        if (dG_dr.ndim() != 3 || dG_dr.shape(0) != P || dG_dr.shape(2) != 3)
          throw nnp::Error("dG_dr must be a (P, M, 3) array matching center (P,)");
        if (u.ndim() != 2 || u.shape(0) != P || u.shape(1) != 3) throw nnp::Error("u must be a (P, 3) array");
        if (R < 0) throw nnp::Error("R must be >= 0");
        const py::ssize_t M = dG_dr.shape(1);
        py::array_t<double> g_hat({R, M});
        {
          py::gil_scoped_release release;
          nnp::contract_pairs_adjoint<Real>(u.data(), dG_dr.data(), center.data(), P, R, M, g_hat.mutable_data());
        }
        return g_hat;
      },
      py::arg("u"), py::arg("dG_dr"), py::arg("center"), py::arg("R"),
      "g_hat[c, mu] = sum_{p: center[p] = c} u[p] . dG_dr[p, mu, :]  (R, M).");
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "C++ core of nnp: symmetry functions, networks, potentials (metal units: eV, Å)";
  py::register_exception<nnp::Error>(m, "CoreError", PyExc_ValueError);

  bind_spec(m);
  py::class_<PyDescriptors>(m, "Descriptors", "Symmetry functions per centre element, ready to evaluate.")
      .def(py::init([](const std::vector<std::vector<nnp::SymmetryFunction>>& functions,
                       const std::string& cutoff_function, const std::string& angular_sum, double cutoff_alpha) {
             return PyDescriptors{make_descriptors(functions, cutoff_function, angular_sum, cutoff_alpha)};
           }),
           py::arg("functions"), py::arg("cutoff_function"), py::arg("angular_sum"), py::arg("cutoff_alpha") = 0.0,
           "functions: per centre element (in element order) its SymmetryFunction list.")
      .def(
          "featurize",
          [](const PyDescriptors& self, const Doubles& positions, const Ints& elements, const Doubles& cell,
             const std::array<bool, 3>& pbc, bool derivatives) {
            const nnp::Structure s = make_structure(positions, elements, cell, pbc);
            std::vector<nnp::ElementFeatures> feats;
            {
              py::gil_scoped_release release;
              feats = nnp::featurize(self.descriptors, s, derivatives);
            }
            return features_to_python(feats, self.descriptors, derivatives);
          },
          py::arg("positions"), py::arg("elements"), py::arg("cell"), py::arg("pbc"), py::arg("derivatives") = true)
      .def(
          "contract_pairs",
          [](const PyDescriptors& self, int element, const Doubles& g, const Int64s& center, const Doubles& pair_vector,
             const Ints& pair_element, int threads) {
            const Descriptor& d = streamed_descriptor(self, element, center, pair_vector, pair_element);
            if (g.ndim() != 2 || g.shape(1) != d.size()) throw nnp::Error("g must be an (R, M) array of this element");
            py::array_t<double> v({center.size(), py::ssize_t(3)});
            {
              py::gil_scoped_release release;
              nnp::streamed_contract_pairs(d, g.data(), g.shape(0), center.data(), pair_vector.data(),
                                           pair_element.data(), center.size(), v.mutable_data(), threads);
            }
            return v;
          },
          py::arg("element"), py::arg("g"), py::arg("center"), py::arg("pair_vector"), py::arg("pair_element"),
          py::arg("threads") = 1,
          "v[p] = sum_mu g[center[p], mu] dG_mu/dr_p  (P, 3), dG/dr computed again (the force pass); pairs "
          "grouped by centre row, pair_element the neighbour's element index.")
      .def(
          "contract_pairs_adjoint",
          [](const PyDescriptors& self, int element, const Doubles& u, const Int64s& center, const Doubles& pair_vector,
             const Ints& pair_element, py::ssize_t R, int threads) {
            const Descriptor& d = streamed_descriptor(self, element, center, pair_vector, pair_element);
            if (u.ndim() != 2 || u.shape(0) != center.size() || u.shape(1) != 3)
              throw nnp::Error("u must be a (P, 3) array matching center (P,)");
            if (R < 0) throw nnp::Error("R must be >= 0");
            py::array_t<double> g_hat({R, py::ssize_t(d.size())});
            {
              py::gil_scoped_release release;
              nnp::streamed_contract_pairs_adjoint(d, u.data(), center.data(), pair_vector.data(), pair_element.data(),
                                                   center.size(), R, g_hat.mutable_data(), threads);
            }
            return g_hat;
          },
          py::arg("element"), py::arg("u"), py::arg("center"), py::arg("pair_vector"), py::arg("pair_element"),
          py::arg("R"), py::arg("threads") = 1,
          "g_hat[c, mu] = sum_{p: center[p] = c} u[p] . dG_mu/dr_p  (R, M): Jacobian-vector products, no "
          "Jacobian stored.");

  py::class_<Potential>(m, "Potential")
      .def(py::init([](const std::string& path) { return nnp::read_potential_file(path); }), py::arg("path"))
      .def_static("from_string", &nnp::parse_potential, py::arg("text"), py::arg("source") = "<string>")
      .def_static("from_spec", &nnp::build_potential, py::arg("spec"), py::arg("source") = "<spec>")
      .def_property_readonly("elements",
                             [](const Potential& p) {
                               std::vector<std::string> names;
                               for (const auto& e : p.elements()) names.push_back(e.symbol);
                               return names;
                             })
      .def_property_readonly("cutoff", &Potential::cutoff)
      .def_property_readonly(
          "repulsion",
          [](const Potential& p) {
            std::vector<std::tuple<std::string, std::string, double, double>> out;
            for (const auto& r : p.repulsion().pairs())
              out.emplace_back(p.element(r.element_a).symbol, p.element(r.element_b).symbol, r.r_inner, r.r_outer);
            return out;
          },
          "ZBL cores: (element_a, element_b, r_inner, r_outer) per element pair, in file order.")
      .def("descriptor_size", [](const Potential& p, int e) { return p.element(e).descriptor.size(); })
      .def_property("extrapolation_margin", &Potential::extrapolation_margin, &Potential::set_extrapolation_margin,
                    "Fraction of each function's training range added on both sides before an atom "
                    "counts as extrapolating (ValueError if negative).")
      .def(
          "evaluate",
          [](const Potential& self, const Doubles& positions, const Ints& elements, const Doubles& cell,
             const std::array<bool, 3>& pbc, bool atom_virials) {
            const nnp::Structure s = make_structure(positions, elements, cell, pbc);
            nnp::Evaluation ev;
            {
              py::gil_scoped_release release;
              ev = nnp::evaluate(self, s, atom_virials);
            }
            const py::ssize_t n = s.n_atoms;
            py::dict d;
            d["energy"] = ev.energy;
            d["atom_energies"] = to_array(ev.atom_energies, {n});
            d["forces"] = to_array(ev.forces, {n, 3});
            d["virial"] = to_array(std::vector<double>(ev.virial.begin(), ev.virial.end()), {3, 3});
            if (atom_virials) d["atom_virials"] = to_array(ev.atom_virials, {n, 3, 3});
            d["extrapolating_atoms"] = ev.extrapolating_atoms;
            return d;
          },
          py::arg("positions"), py::arg("elements"), py::arg("cell"), py::arg("pbc"),
          py::arg("atom_virials") = false,
          "Energy (eV), forces (eV/Å), virial W = −Σ r_ij ⊗ ∂E_i/∂r_ij (eV) of a structure.")
      .def_property_readonly("gp_variance_error", &Potential::gp_variance_error,
                             "'' when gp_variances is available, else why not.")
      .def(
          "gp_variances",
          [](const Potential& self, const Doubles& positions, const Ints& elements, const Doubles& cell,
             const std::array<bool, 3>& pbc) {
            const nnp::Structure s = make_structure(positions, elements, cell, pbc);
            std::vector<double> v;
            {
              py::gil_scoped_release release;
              v = nnp::gp_variances(self, s);
            }
            return to_array(v, {py::ssize_t(s.n_atoms)});
          },
          py::arg("positions"), py::arg("elements"), py::arg("cell"), py::arg("pbc"),
          "The GP's predictive variance of each atomic energy E_i (eV², docs/gp.md); ValueError without it.");

  m.attr("DEFAULT_EXTRAPOLATION_MARGIN") = nnp::kDefaultExtrapolationMargin;
  py::class_<nnp::Committee>(m, "Committee",
                             "Several potentials over the same elements evaluated together: members with "
                             "identical descriptors share one descriptor pass (nnp/committee.h).")
      .def(py::init([](std::vector<Potential> members, std::vector<std::string> names) {
             return nnp::Committee(std::move(members), names);
           }),
           py::arg("members"), py::arg("names") = std::vector<std::string>{})
      .def_property_readonly("size", &nnp::Committee::size)
      .def_property_readonly("cutoff", &nnp::Committee::cutoff)
      .def("descriptor_passes", &nnp::Committee::descriptor_passes, py::arg("element"), py::arg("n_members"),
           "Descriptor passes per atom of an element (index) for the first n_members members.")
      .def(
          "evaluate",
          [](const nnp::Committee& self, const Doubles& positions, const Ints& elements, const Doubles& cell,
             const std::array<bool, 3>& pbc, bool atom_virials) {
            const nnp::Structure s = make_structure(positions, elements, cell, pbc);
            nnp::CommitteeEvaluation ev;
            {
              py::gil_scoped_release release;
              ev = nnp::evaluate(self, s, atom_virials);
            }
            const py::ssize_t n = s.n_atoms, K = ev.n_members;
            py::dict d;
            d["energies"] = to_array(ev.energies, {K});
            d["atom_energies"] = to_array(ev.atom_energies, {K, n});
            d["forces"] = to_array(ev.forces, {K, n, 3});
            d["virials"] = to_array(ev.virials, {K, 3, 3});
            if (atom_virials) d["atom_virials"] = to_array(ev.atom_virials, {K, n, 3, 3});
            d["extrapolating_atoms"] = to_array(ev.extrapolating_atoms, {K});
            d["extrapolating"] = to_array(ev.extrapolating, {K, n}).attr("astype")("bool");
            d["force_deviation"] = to_array(ev.force_deviation, {n});
            d["energy_deviation"] = to_array(ev.energy_deviation, {n});
            const nnp::DeviationSummary& sum = ev.summary;
            d["max_devi_f"] = sum.max_f;
            d["min_devi_f"] = sum.min_f;
            d["avg_devi_f"] = sum.avg_f;
            d["devi_e"] = sum.devi_e;
            d["max_devi_v"] = sum.max_v;
            d["min_devi_v"] = sum.min_v;
            d["avg_devi_v"] = sum.avg_v;
            return d;
          },
          py::arg("positions"), py::arg("elements"), py::arg("cell"), py::arg("pbc"),
          py::arg("atom_virials") = false,
          "Every member's energy, forces and virial (leading axis: member) and the deviations.");

  m.def("atomic_number", &nnp::atomic_number, py::arg("symbol"),
        "Atomic number of a chemical symbol, 0 if it is not one.");
  m.def(
      "zbl_energy",
      [](double z_a, double z_b, double r) {
        double d = 0.0;
        const double e = nnp::zbl_energy(z_a, z_b, r, &d);
        return std::make_pair(e, d);
      },
      py::arg("z_a"), py::arg("z_b"), py::arg("r"), "Unswitched ZBL energy (eV) and dE/dr (eV/Å).");
  bind_contractions<double>(m);
  bind_contractions<float>(m);  // derivatives stored in single precision for training
  m.def(
      "scatter_pairs",
      [](const Doubles& v, const Int64s& center_atom, const Int64s& neighbor, const Doubles& pair_vector,
         const Int64s& pair_struct, py::ssize_t N, py::ssize_t S, bool with_virial) {
        const py::ssize_t P = center_atom.size();
        if (v.ndim() != 2 || v.shape(0) != P || v.shape(1) != 3) throw nnp::Error("v must be a (P, 3) array");
        if (neighbor.size() != P) throw nnp::Error("neighbor must have one entry per pair");
        if (with_virial && (pair_vector.ndim() != 2 || pair_vector.shape(0) != P || pair_vector.shape(1) != 3 ||
                            pair_struct.size() != P))
          throw nnp::Error("pair_vector (P, 3) and pair_struct (P,) must match v");
        if (N < 0 || S < 0) throw nnp::Error("N and S must be >= 0");
        py::array_t<double> forces({N, py::ssize_t{3}});
        py::array_t<double> virial({with_virial ? S : py::ssize_t{0}, py::ssize_t{3}, py::ssize_t{3}});
        {
          py::gil_scoped_release release;
          nnp::scatter_pairs(v.data(), center_atom.data(), neighbor.data(), pair_vector.data(), pair_struct.data(), P,
                             N, S, forces.mutable_data(), with_virial ? virial.mutable_data() : nullptr);
        }
        return py::make_tuple(forces, virial);
      },
      py::arg("v"), py::arg("center_atom"), py::arg("neighbor"), py::arg("pair_vector"), py::arg("pair_struct"),
      py::arg("N"), py::arg("S"), py::arg("with_virial"),
      "Forces (N, 3): F[c] += v_p, F[j] -= v_p; virial (S, 3, 3): W[s] -= r_p (x) v_p (empty unless with_virial).");
  m.def(
      "scatter_pairs_adjoint",
      [](const Doubles& grad_forces, std::optional<Doubles> grad_virial, const Int64s& center_atom,
         const Int64s& neighbor, const Doubles& pair_vector, const Int64s& pair_struct) {
        const py::ssize_t P = center_atom.size();
        if (grad_forces.ndim() != 2 || grad_forces.shape(1) != 3) throw nnp::Error("grad_forces must be (N, 3)");
        const py::ssize_t N = grad_forces.shape(0);
        py::ssize_t S = 0;
        if (grad_virial) {
          if (grad_virial->ndim() != 3 || grad_virial->shape(1) != 3 || grad_virial->shape(2) != 3)
            throw nnp::Error("grad_virial must be (S, 3, 3)");
          S = grad_virial->shape(0);
          if (pair_vector.ndim() != 2 || pair_vector.shape(0) != P || pair_vector.shape(1) != 3 ||
              pair_struct.size() != P)
            throw nnp::Error("pair_vector (P, 3) and pair_struct (P,) must match center_atom");
        }
        if (neighbor.size() != P) throw nnp::Error("neighbor must have one entry per pair");
        py::array_t<double> grad_v({P, py::ssize_t{3}});
        {
          py::gil_scoped_release release;
          nnp::scatter_pairs_adjoint(grad_forces.data(), grad_virial ? grad_virial->data() : nullptr,
                                     center_atom.data(), neighbor.data(), pair_vector.data(), pair_struct.data(), P,
                                     N, S, grad_v.mutable_data());
        }
        return grad_v;
      },
      py::arg("grad_forces"), py::arg("grad_virial"), py::arg("center_atom"), py::arg("neighbor"),
      py::arg("pair_vector"), py::arg("pair_struct"),
      "Adjoint of scatter_pairs: grad_v[p] = gF[c] - gF[j] - r_p . gW[s(p)]  (P, 3).");
  m.def(
      "neighbor_list",
      [](const Doubles& positions, const Doubles& cell, const std::array<bool, 3>& pbc, double cutoff) {
        if (positions.ndim() != 2 || positions.shape(1) != 3)
          throw nnp::Error("positions must be an (n, 3) array");
        const nnp::Cell c = make_cell(cell, pbc);
        nnp::NeighborList list;
        {
          py::gil_scoped_release release;
          list = nnp::build_neighbor_list(static_cast<int>(positions.shape(0)), positions.data(), c, cutoff);
        }
        const py::ssize_t P = static_cast<py::ssize_t>(list.index.size());
        std::vector<double> vec(3 * P);
        for (py::ssize_t p = 0; p < P; ++p) {
          vec[3 * p] = list.dx[p];
          vec[3 * p + 1] = list.dy[p];
          vec[3 * p + 2] = list.dz[p];
        }
        return py::make_tuple(to_array(list.offsets, {static_cast<py::ssize_t>(list.offsets.size())}),
                              to_array(list.index, {P}), to_array(vec, {P, 3}));
      },
      py::arg("positions"), py::arg("cell"), py::arg("pbc"), py::arg("cutoff"));
}

namespace {

// The potential file's schema (nnp/potential_spec.h) and vocabulary, the one
// parser and the one writer.
void bind_spec(py::module_& m) {
  using nnp::SymmetryFunction;
  m.attr("FORMAT_NAME") = nnp::kFormatName;
  m.attr("FORMAT_VERSION") = nnp::kFormatVersion;
  m.attr("MAX_CUTOFF") = nnp::kMaxCutoff;
  m.attr("ACTIVATIONS") = py::tuple(py::cast(nnp::activation_names()));
  m.attr("CUTOFF_FUNCTIONS") = py::tuple(py::cast(nnp::cutoff_function_names()));
  m.attr("ANGULAR_SUMS") = py::tuple(py::cast(nnp::angular_sum_names()));

  py::enum_<nnp::SymmetryFunctionType>(m, "SymmetryFunctionKind")
      .value("G2", nnp::SymmetryFunctionType::G2)
      .value("G4", nnp::SymmetryFunctionType::G4)
      .value("G5", nnp::SymmetryFunctionType::G5)
      .value("W2", nnp::SymmetryFunctionType::W2)
      .value("W4", nnp::SymmetryFunctionType::W4)
      .value("W5", nnp::SymmetryFunctionType::W5)
      .value("C2", nnp::SymmetryFunctionType::C2)
      .value("C4", nnp::SymmetryFunctionType::C4)
      .value("C5", nnp::SymmetryFunctionType::C5)
      .value("CW2", nnp::SymmetryFunctionType::CW2)
      .value("CW4", nnp::SymmetryFunctionType::CW4)
      .value("CW5", nnp::SymmetryFunctionType::CW5);
  m.attr("COMPACT_CORES") = py::tuple(py::cast(nnp::compact_core_names()));
  py::dict kinds;
  for (const auto& k : nnp::symmetry_function_kinds()) {
    py::list params;
    for (const auto p : k.parameters) params.append(nnp::parameter_name(p));
    kinds[k.name] = py::make_tuple(k.n_neighbors, py::tuple(params));
  }
  m.attr("SYMMETRY_FUNCTION_KINDS") = kinds;  // name -> (neighbour elements, parameters in file order)

  py::class_<SymmetryFunction>(m, "SymmetryFunction",
                               "One symmetry function; neighbour elements are indices into the element list "
                               "(element_b -1 for G2); weighted kinds (W2, W4, W5) take one weight per "
                               "element instead (element_a and element_b -1).")
      .def(py::init([](nnp::SymmetryFunctionType kind, int element_a, int element_b, double eta, double zeta,
                       int lambda, double rs, double rc, std::vector<double> weights, double rl,
                       const std::string& core, double angle_left, double angle_right) {
             SymmetryFunction f;
             if (!nnp::set_compact_core(f, core)) throw py::value_error("unknown compact core '" + core + "'");
             f.rl = rl;
             f.angle_left = angle_left;
             f.angle_right = angle_right;
             f.weights = std::move(weights);
             f.type = kind;
             f.element_a = element_a;
             f.element_b = element_b;
             f.eta = eta;
             f.zeta = zeta;
             f.lambda = lambda;
             f.rs = rs;
             f.rc = rc;
             return f;
           }),
           py::kw_only(), py::arg("kind"), py::arg("element_a"), py::arg("element_b") = -1, py::arg("eta"),
           py::arg("zeta") = 1.0, py::arg("lambda_") = 1, py::arg("rs") = 0.0, py::arg("rc"),
           py::arg("weights") = std::vector<double>{}, py::arg("rl") = 0.0, py::arg("core") = "p2",
           py::arg("angle_left") = 0.0, py::arg("angle_right") = 0.0)
      .def_readwrite("rl", &SymmetryFunction::rl)
      .def_readwrite("angle_left", &SymmetryFunction::angle_left)
      .def_readwrite("angle_right", &SymmetryFunction::angle_right)
      .def_property_readonly("core", &nnp::compact_core_name, "A compact function's core: p1-p4, p1a-p4a or e.")
      .def_readwrite("kind", &SymmetryFunction::type)
      .def_readwrite("element_a", &SymmetryFunction::element_a)
      .def_readwrite("element_b", &SymmetryFunction::element_b)
      .def_readwrite("eta", &SymmetryFunction::eta)
      .def_readwrite("zeta", &SymmetryFunction::zeta)
      .def_readwrite("lambda_", &SymmetryFunction::lambda)
      .def_readwrite("rs", &SymmetryFunction::rs)
      .def_readwrite("rc", &SymmetryFunction::rc)
      .def_readwrite("weights", &SymmetryFunction::weights)
      .def("parameter_error", &nnp::parameter_error,
           "The first broken rule of the parameters (eta, zeta, lambda, rs, rc), '' if none.")
      .def("__repr__", [](const SymmetryFunction& f) {
        return "SymmetryFunction(" + std::string(nnp::kind_of(f.type).name) + ", " + std::to_string(f.element_a) +
               ", " + std::to_string(f.element_b) + ", eta=" + nnp::format_number(f.eta) +
               ", zeta=" + nnp::format_number(f.zeta) + ", lambda_=" + std::to_string(f.lambda) +
               ", rs=" + nnp::format_number(f.rs) + ", rc=" + nnp::format_number(f.rc) +
               (f.weights.empty() ? "" : ", weights=" + std::to_string(f.weights.size())) + ")";
      });

  py::class_<PyFeatures>(m, "ElementFeatures",
                         "Descriptors of the atoms of one element: G (n, M), atoms (n,), and with derivatives "
                         "pair_center (P,), pair_neighbor (P,), pair_vector (P, 3), dG_dr (P, M, 3).")
      .def_readonly("G", &PyFeatures::G)
      .def_readonly("atoms", &PyFeatures::atoms)
      .def_readonly("pair_center", &PyFeatures::pair_center)
      .def_readonly("pair_neighbor", &PyFeatures::pair_neighbor)
      .def_readonly("pair_vector", &PyFeatures::pair_vector)
      .def_readonly("dG_dr", &PyFeatures::dG_dr)
      .def("__getitem__", [](const PyFeatures& f, const std::string& key) {
        for (const auto& [name, value] : f.fields())
          if (key == name) return value;
        throw py::key_error(key);
      })
      .def("keys", [](const PyFeatures& f) {
        py::list out;
        for (const auto& [name, value] : f.fields()) out.append(name);
        return out;
      })
      .def("items", [](const PyFeatures& f) {
        py::list out;
        for (const auto& [name, value] : f.fields()) out.append(py::make_tuple(name, value));
        return out;
      });

  py::class_<nnp::Scaling>(m, "Scaling", "x = (G - center)/width; [min, max]: the training range of G.")
      .def(py::init([](const Doubles& center, const Doubles& width, const Doubles& min, const Doubles& max) {
             return nnp::Scaling{to_vector(center, "center"), to_vector(width, "width"), to_vector(min, "min"),
                                 to_vector(max, "max")};
           }),
           py::arg("center"), py::arg("width"), py::arg("min"), py::arg("max"))
      .def_property_readonly("center", [](const nnp::Scaling& s) { return to_array(s.center, {py::ssize_t(s.center.size())}); })
      .def_property_readonly("width", [](const nnp::Scaling& s) { return to_array(s.width, {py::ssize_t(s.width.size())}); })
      .def_property_readonly("min", [](const nnp::Scaling& s) { return to_array(s.min, {py::ssize_t(s.min.size())}); })
      .def_property_readonly("max", [](const nnp::Scaling& s) { return to_array(s.max, {py::ssize_t(s.max.size())}); });

  py::class_<nnp::Layer>(m, "Layer", "y = activation(weights @ x + biases); weights (n_out, n_in).")
      .def(py::init([](const Doubles& weights, const Doubles& biases, const std::string& activation) {
             if (weights.ndim() != 2) throw nnp::Error("layer weights must be an (n_out, n_in) array");
             nnp::Layer l;
             l.n_out = static_cast<int>(weights.shape(0));
             l.n_in = static_cast<int>(weights.shape(1));
             l.weights.assign(weights.data(), weights.data() + weights.size());
             l.biases = to_vector(biases, "biases");
             l.activation = nnp::activation_from_name(activation);
             return l;
           }),
           py::arg("weights"), py::arg("biases"), py::arg("activation"))
      .def_property_readonly("weights", [](const nnp::Layer& l) { return to_array(l.weights, {l.n_out, l.n_in}); })
      .def_property_readonly("biases", [](const nnp::Layer& l) { return to_array(l.biases, {py::ssize_t(l.biases.size())}); })
      .def_property_readonly("activation", [](const nnp::Layer& l) { return std::string(nnp::activation_name(l.activation)); });

  py::class_<nnp::QuadraticSpec>(m, "QuadraticSpec", "Q(x) = linear . x + x^T matrix x; matrix (M, M) symmetric.")
      .def(py::init([](const Doubles& linear, const Doubles& matrix) {
             if (matrix.ndim() != 2) throw nnp::Error("the quadratic matrix must be an (M, M) array");
             return nnp::QuadraticSpec{to_vector(linear, "linear"),
                                       std::vector<double>(matrix.data(), matrix.data() + matrix.size())};
           }),
           py::arg("linear"), py::arg("matrix"))
      .def_property_readonly("linear", [](const nnp::QuadraticSpec& q) { return to_array(q.linear, {py::ssize_t(q.linear.size())}); })
      .def_property_readonly("matrix", [](const nnp::QuadraticSpec& q) {
        const auto M = static_cast<py::ssize_t>(q.linear.size());
        return to_array(q.matrix, {M, M});
      });

  py::class_<nnp::GaussianProcessSpec>(m, "GaussianProcessSpec",
                                       "A sparse GP: kernel (se, dot), delta, lengthscale (se), zeta (dot), "
                                       "sparse_points (M, D), weights (M,); see nnp/gaussian_process.h.")
      .def(py::init([](const std::string& kernel, double delta, double lengthscale, int zeta,
                       const Doubles& sparse_points, const Doubles& weights, std::optional<Doubles> variance_factor,
                       double variance_jitter) {
             if (sparse_points.ndim() != 2) throw nnp::Error("the GP's sparse points must be an (M, D) array");
             nnp::GaussianProcessSpec g;
             g.kernel = nnp::gp_kernel_from_name(kernel);
             g.delta = delta;
             g.lengthscale = lengthscale;
             g.zeta = zeta;
             g.sparse_points.assign(sparse_points.data(), sparse_points.data() + sparse_points.size());
             g.weights = to_vector(weights, "weights");
             if (variance_factor) g.variance_factor = to_vector(*variance_factor, "variance_factor");
             g.variance_jitter = variance_jitter;
             return g;
           }),
           py::arg("kernel"), py::arg("delta"), py::arg("lengthscale"), py::arg("zeta"), py::arg("sparse_points"),
           py::arg("weights"), py::arg("variance_factor") = py::none(), py::arg("variance_jitter") = 0.0)
      .def_property_readonly("kernel", [](const nnp::GaussianProcessSpec& g) { return std::string(nnp::gp_kernel_name(g.kernel)); })
      .def_readonly("delta", &nnp::GaussianProcessSpec::delta)
      .def_readonly("lengthscale", &nnp::GaussianProcessSpec::lengthscale)
      .def_readonly("zeta", &nnp::GaussianProcessSpec::zeta)
      .def_property_readonly("weights", [](const nnp::GaussianProcessSpec& g) { return to_array(g.weights, {py::ssize_t(g.weights.size())}); })
      .def_property_readonly("sparse_points", [](const nnp::GaussianProcessSpec& g) {
        const auto M = static_cast<py::ssize_t>(g.weights.size());
        return to_array(g.sparse_points, {M, M ? static_cast<py::ssize_t>(g.sparse_points.size()) / M : 0});
      })
      .def_property_readonly(
          "variance_factor",
          [](const nnp::GaussianProcessSpec& g) -> py::object {
            if (!g.has_variance()) return py::none();
            return to_array(g.variance_factor, {static_cast<py::ssize_t>(g.variance_factor.size())});
          },
          "The packed upper-triangular factor R of the weights' posterior precision (rows from the diagonal, "
          "M(M+1)/2), or None.")
      .def_readonly("variance_jitter", &nnp::GaussianProcessSpec::variance_jitter);

  py::class_<nnp::ElementSpec>(m, "ElementSpec", "One element's part of a potential file.")
      .def(py::init([](const std::string& symbol, double reference_energy, std::vector<SymmetryFunction> functions,
                       nnp::Scaling scaling, std::vector<nnp::Layer> layers,
                       std::optional<nnp::QuadraticSpec> quadratic, std::optional<nnp::GaussianProcessSpec> gp) {
             return nnp::ElementSpec{symbol, reference_energy, std::move(functions), std::move(scaling),
                                     std::move(layers), std::move(quadratic), std::move(gp)};
           }),
           py::arg("symbol"), py::arg("reference_energy"), py::arg("functions"), py::arg("scaling"),
           py::arg("layers"), py::arg("quadratic") = py::none(), py::arg("gp") = py::none())
      .def_readonly("symbol", &nnp::ElementSpec::symbol)
      .def_readonly("reference_energy", &nnp::ElementSpec::reference_energy)
      .def_readonly("functions", &nnp::ElementSpec::functions)
      .def_readonly("scaling", &nnp::ElementSpec::scaling)
      .def_readonly("layers", &nnp::ElementSpec::layers)
      .def_readonly("quadratic", &nnp::ElementSpec::quadratic)
      .def_readonly("gp", &nnp::ElementSpec::gp);

  py::class_<nnp::RepulsionPair>(m, "RepulsionPair", "A ZBL core between two elements (indices), r in Å.")
      .def(py::init([](int a, int b, double r_inner, double r_outer) { return nnp::RepulsionPair{a, b, r_inner, r_outer}; }),
           py::arg("element_a"), py::arg("element_b"), py::arg("r_inner"), py::arg("r_outer"))
      .def_readonly("element_a", &nnp::RepulsionPair::element_a)
      .def_readonly("element_b", &nnp::RepulsionPair::element_b)
      .def_readonly("r_inner", &nnp::RepulsionPair::r_inner)
      .def_readonly("r_outer", &nnp::RepulsionPair::r_outer);

  py::class_<nnp::PotentialSpec>(m, "PotentialSpec", "Everything a potential file holds (docs/potential-format.md).")
      .def(py::init([](std::vector<nnp::ElementSpec> elements, const std::string& cutoff_function,
                       const std::string& angular_sum, std::vector<std::string> comments,
                       std::vector<nnp::RepulsionPair> repulsion, double cutoff_alpha) {
             nnp::PotentialSpec s;
             s.elements = std::move(elements);
             s.cutoff = cutoff_from_name(cutoff_function);
             s.cutoff_alpha = cutoff_alpha;
             s.full_angular_sum = full_sum_from_name(angular_sum);
             s.comments = std::move(comments);
             s.repulsion = std::move(repulsion);
             s.format_version = s.lowest_format_version();
             return s;
           }),
           py::arg("elements"), py::arg("cutoff_function"), py::arg("angular_sum"),
           py::arg("comments") = std::vector<std::string>{}, py::arg("repulsion") = std::vector<nnp::RepulsionPair>{},
           py::arg("cutoff_alpha") = 0.0)
      .def_readonly("cutoff_alpha", &nnp::PotentialSpec::cutoff_alpha)
      .def_readonly("elements", &nnp::PotentialSpec::elements)
      .def_readonly("comments", &nnp::PotentialSpec::comments)
      .def_readonly("repulsion", &nnp::PotentialSpec::repulsion)
      .def_readonly("format_version", &nnp::PotentialSpec::format_version, "The version the file said (when parsed).")
      .def_property_readonly("cutoff_function", [](const nnp::PotentialSpec& s) { return nnp::cutoff_type_name(s.cutoff); })
      .def_property_readonly("angular_sum", [](const nnp::PotentialSpec& s) {
        return nnp::angular_sum_names()[s.full_angular_sum ? 1 : 0];
      })
      .def("lowest_format_version", &nnp::PotentialSpec::lowest_format_version,
           "6 with a GP, 4 with weighted functions, 3 with a quadratic term, else 2 with a repulsive core, "
           "else 1: the version the writer writes.");

  m.def("parse_potential", &nnp::parse_potential_spec, py::arg("text"), py::arg("source") = "<string>",
        "The spec of a potential file's text (str or bytes); errors 'SOURCE:LINE: ...'.");
  m.def("format_potential", &nnp::format_potential, py::arg("spec"),
        "The file text of a spec (checked first): the one writer of the format.");
  m.def("check_potential", &nnp::check_spec, py::arg("spec"), "Raise ValueError naming what is wrong in a spec.");
  m.def("check_repulsion", &nnp::check_repulsion, py::arg("spec"), "The checks of the spec's repulsion pairs alone.");
}

}  // namespace
