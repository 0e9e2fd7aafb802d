// nnp._core: the Python door into the C++ core. Thin: converts numpy arrays to
// the core's structures and back; nnp::Error becomes ValueError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstring>
#include <optional>
#include <tuple>

#include "nnp/error.h"
#include "nnp/neighbor_list.h"
#include "nnp/potential_file.h"
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

std::vector<Descriptor> make_descriptors(
    const std::vector<std::vector<std::tuple<std::string, int, int, double, double, int, double, double>>>& table,
    const std::string& cutoff_function, const std::string& angular_sum) {
  if (angular_sum != "half" && angular_sum != "full")
    throw nnp::Error("angular_sum must be 'half' or 'full'");
  const nnp::CutoffType cutoff = nnp::cutoff_type_from_name(cutoff_function);
  const int n_elements = static_cast<int>(table.size());
  std::vector<Descriptor> out;
  for (const auto& rows : table) {
    std::vector<nnp::SymmetryFunction> funcs;
    for (const auto& [kind, a, b, eta, zeta, lambda, rs, rc] : rows) {
      nnp::SymmetryFunction f;
      if (kind == "G2") f.type = nnp::SymmetryFunctionType::G2;
      else if (kind == "G4") f.type = nnp::SymmetryFunctionType::G4;
      else if (kind == "G5") f.type = nnp::SymmetryFunctionType::G5;
      else throw nnp::Error("unknown symmetry function type '" + kind + "'");
      f.element_a = a;
      f.element_b = b;
      f.eta = eta;
      f.zeta = zeta;
      f.lambda = lambda;
      f.rs = rs;
      f.rc = rc;
      funcs.push_back(f);
    }
    out.emplace_back(std::move(funcs), cutoff, angular_sum == "full", n_elements);
  }
  return out;
}

py::list features_to_python(const std::vector<nnp::ElementFeatures>& feats,
                            const std::vector<Descriptor>& descriptors, bool with_derivatives) {
  py::list out;
  for (std::size_t e = 0; e < feats.size(); ++e) {
    const auto& f = feats[e];
    const py::ssize_t M = descriptors[e].size();
    const py::ssize_t n = static_cast<py::ssize_t>(f.atoms.size());
    py::dict d;
    d["G"] = to_array(f.G, {n, M});
    d["atoms"] = to_array(f.atoms, {n});
    if (with_derivatives) {
      const py::ssize_t P = static_cast<py::ssize_t>(f.pair_center.size());
      d["pair_center"] = to_array(f.pair_center, {P});
      d["pair_neighbor"] = to_array(f.pair_neighbor, {P});
      d["pair_vector"] = to_array(f.pair_vector, {P, 3});
      d["dG_dr"] = to_array(f.dG_dr, {P, M, 3});
    }
    out.append(d);
  }
  return out;
}

struct PyDescriptors {
  std::vector<Descriptor> descriptors;
};

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
  m.attr("FORMAT_NAME") = nnp::kFormatName;
  m.attr("FORMAT_VERSION") = nnp::kFormatVersion;

  py::class_<PyDescriptors>(m, "Descriptors",
                            "Symmetry functions per centre element; rows are "
                            "(kind, element_a, element_b, eta, zeta, lambda, rs, rc).")
      .def(py::init([](const std::vector<std::vector<std::tuple<std::string, int, int, double, double, int, double, double>>>& table,
                       const std::string& cutoff_function, const std::string& angular_sum) {
             return PyDescriptors{make_descriptors(table, cutoff_function, angular_sum)};
           }),
           py::arg("table"), py::arg("cutoff_function"), py::arg("angular_sum"))
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
          py::arg("positions"), py::arg("elements"), py::arg("cell"), py::arg("pbc"), py::arg("derivatives") = true);

  py::class_<Potential>(m, "Potential")
      .def(py::init([](const std::string& path) { return nnp::read_potential_file(path); }), py::arg("path"))
      .def_static("from_string", &nnp::parse_potential, py::arg("text"), py::arg("source") = "<string>")
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
          "Energy (eV), forces (eV/Å), virial W = −Σ r_ij ⊗ ∂E_i/∂r_ij (eV) of a structure.");

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
