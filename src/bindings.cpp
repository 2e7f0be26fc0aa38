// Python bindings of the compiled MTP core (module mtpkit._core).
// The Python-facing API lives in mtpkit/potentials/core.py; these functions are
// thin, array-in/array-out wrappers that release the GIL while computing.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cerrno>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cfg_file.hpp"
#include "evaluate_cfg.hpp"
#include "mtp_core.hpp"
#include "mtp_system.hpp"
#include "omp_errors.hpp"
#include "neighbors.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using CDArr = nb::ndarray<const double, nb::c_contig, nb::device::cpu>;
using CIArr = nb::ndarray<const int32_t, nb::c_contig, nb::device::cpu>;
using CLArr = nb::ndarray<const int64_t, nb::c_contig, nb::device::cpu>;
using CBArr = nb::ndarray<const bool, nb::c_contig, nb::device::cpu>;
using NpD = nb::ndarray<nb::numpy, double>;
using NpI = nb::ndarray<nb::numpy, int32_t>;
using NpL = nb::ndarray<nb::numpy, int64_t>;

template <class T>
nb::ndarray<nb::numpy, T> to_numpy(std::vector<T>&& v, std::initializer_list<size_t> shape) {
  auto* heap = new std::vector<T>(std::move(v));
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return nb::ndarray<nb::numpy, T>(heap->data(), shape, owner);
}

void need(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

// int64 index array -> int, refusing values that do not fit (ValueError naming them).
std::vector<int> to_int_vector(const CLArr& a, const char* name) {
  std::vector<int> v(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const int64_t x = a.data()[i];
    need(x >= std::numeric_limits<int>::min() && x <= std::numeric_limits<int>::max(),
         std::string(name) + "[" + std::to_string(i) + "] = " + std::to_string(x) +
             " does not fit a 32-bit int");
    v[i] = static_cast<int>(x);
  }
  return v;
}

// The Python-facing Model: an immutable mtpkit::Model behind a shared_ptr.
// set_params builds a new Model (copy + new parameters) and swaps the pointer;
// every computation takes its own reference with get() before it releases the
// GIL, so evaluations in flight keep the parameters they started with and never
// see a half-written parameter vector.
class PyModel {
 public:
  explicit PyModel(mtpkit::Model m) : ptr_(std::make_shared<const mtpkit::Model>(std::move(m))) {}
  PyModel(PyModel&& o) noexcept : ptr_(o.get()) {}
  std::shared_ptr<const mtpkit::Model> get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return ptr_;
  }
  void set_params(const double* p) {
    auto next = std::make_shared<mtpkit::Model>(*get());
    next->set_params(p);
    std::lock_guard<std::mutex> lock(mu_);
    ptr_ = std::move(next);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const mtpkit::Model> ptr_;
};

PyModel make_model(int species_count, double min_dist, double max_dist,
                         int radial_basis_size, int radial_funcs_count, CDArr radial_coeffs,
                         CLArr alpha_index_basic, CLArr alpha_index_times,
                         CLArr alpha_moment_mapping, int alpha_moments_count,
                         CDArr species_coeffs, CDArr moment_coeffs, double scaling) {
  mtpkit::ModelSpec s;
  s.species_count = species_count;
  s.min_dist = min_dist;
  s.max_dist = max_dist;
  s.radial_basis_size = radial_basis_size;
  s.radial_funcs_count = radial_funcs_count;
  s.radial_coeffs.assign(radial_coeffs.data(), radial_coeffs.data() + radial_coeffs.size());
  s.alpha_index_basic = to_int_vector(alpha_index_basic, "alpha_index_basic");
  s.alpha_index_times = to_int_vector(alpha_index_times, "alpha_index_times");
  s.alpha_moment_mapping = to_int_vector(alpha_moment_mapping, "alpha_moment_mapping");
  s.alpha_moments_count = alpha_moments_count;
  s.species_coeffs.assign(species_coeffs.data(), species_coeffs.data() + species_coeffs.size());
  s.moment_coeffs.assign(moment_coeffs.data(), moment_coeffs.data() + moment_coeffs.size());
  s.scaling = scaling;
  return PyModel(mtpkit::Model(s));
}

// .cfg reading errors become mtpkit.errors.InputFileError (the Python reader's
// exception, same message), evaluate's user-facing ones mtpkit.errors.UserError,
// failed writes OSError (errno, file). mtpkit.errors imports only os and re.
void translate_file_errors(const std::exception_ptr& p, void*) {
  try {
    std::rethrow_exception(p);
  } catch (const mtpkit::CfgError& e) {
    nb::object cls = nb::module_::import_("mtpkit.errors").attr("InputFileError");
    nb::object line = e.line() > 0 ? nb::cast(e.line()) : nb::none();
    nb::object field = e.field().empty() ? nb::none() : nb::cast(e.field());
    nb::object exc = cls(e.path(), e.message(), "line"_a = line, "field"_a = field);
    PyErr_SetObject(cls.ptr(), exc.ptr());
  } catch (const mtpkit::EvaluateError& e) {
    nb::object cls = nb::module_::import_("mtpkit.errors").attr("UserError");
    PyErr_SetString(cls.ptr(), e.what());
  } catch (const mtpkit::FileWriteError& e) {
    errno = e.error();
    PyErr_SetFromErrnoWithFilename(PyExc_OSError, e.path().c_str());
  }
}

// Python value of a Feature: int, float or str, as the reference reader gives it.
nb::object feature_object(const mtpkit::CfgFeature& f) {
  switch (f.kind) {
    case mtpkit::CfgFeature::Kind::integer:
      return nb::steal(PyLong_FromString(f.text.c_str(), nullptr, 10));
    case mtpkit::CfgFeature::Kind::real:
      return nb::float_(f.real);
    default:
      return nb::str(f.text.c_str(), f.text.size());
  }
}

// One configuration read by the compiled reader, as plain Python values and arrays.
nb::dict configuration_dict(mtpkit::CfgConfiguration&& c) {
  nb::dict d;
  const size_t n = static_cast<size_t>(c.n_atoms());
  d["begin_line"] = c.begin_line;
  d["cell"] = to_numpy(std::vector<double>(c.cell.begin(), c.cell.end()), {3, 3});
  d["pbc"] = nb::make_tuple(c.periodic(0), c.periodic(1), c.periodic(2));
  nb::dict columns;
  for (size_t k = 0; k < c.columns.size(); ++k)
    columns[c.columns[k].c_str()] = to_numpy(c.column(static_cast<int>(k)), {n});
  d["columns"] = columns;
  d["types"] = to_numpy(std::vector<int64_t>(c.types.begin(), c.types.end()), {n});
  d["positions"] = to_numpy(std::move(c.positions), {n, 3});
  d["energy"] = c.has_energy ? nb::object(nb::float_(c.energy)) : nb::none();
  d["virial"] = c.has_virial ? nb::object(nb::make_tuple(c.virial[0], c.virial[1], c.virial[2],
                                                         c.virial[3], c.virial[4], c.virial[5]))
                             : nb::none();
  d["has_stress"] = c.has_stress();
  d["volume"] = c.volume();
  nb::dict features;
  for (const mtpkit::CfgFeature& f : c.features) features[f.key.c_str()] = feature_object(f);
  d["features"] = features;
  return d;
}

nb::tuple sums_tuple(const mtpkit::ErrorSums& s) {
  return nb::make_tuple(s.count, s.sum_sq, s.sum_abs, s.max_abs, s.sum);
}

nb::dict report_dict(const mtpkit::EvaluationReport& r) {
  nb::dict d;
  d["n_configs"] = r.n_configs;
  d["n_labelled"] = r.n_labelled;
  d["n_labelled_atoms"] = r.n_labelled_atoms;
  d["n_stress"] = r.n_stress;
  d["labelled_without_atoms"] =
      r.labelled_without_atoms >= 0 ? nb::cast(r.labelled_without_atoms) : nb::none();
  d["n_short"] = r.n_short;
  d["first_short"] = r.first_short;
  d["write_error"] = r.write_error;
  d["energy"] = sums_tuple(r.energy);
  d["forces"] = sums_tuple(r.forces);
  d["stress"] = sums_tuple(r.stress);
  return d;
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "mtpkit compiled MTP core (C++/OpenMP); use mtpkit.potentials.core";
  m.def("core_version", &mtpkit::core_version);
  m.def("max_threads", []() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
  });
  m.def("set_num_threads", [](int n) {
#ifdef _OPENMP
    if (n > 0) omp_set_num_threads(n);
#endif
  });

  nb::register_exception_translator(&translate_file_errors);
  nb::exception<mtpkit::CfgNeedsReference>(m, "NeedsReference");

  m.def(
      "_set_failpoint",
      [](const std::string& where, int64_t index) {
        mtpkit::Failpoint fp = mtpkit::Failpoint::none;
        if (where == "site") fp = mtpkit::Failpoint::site;
        else if (where == "neighbor") fp = mtpkit::Failpoint::neighbor;
        else need(where.empty(), "unknown failpoint '" + where + "' (site, neighbor or '')");
        mtpkit::set_failpoint(fp, index);
      },
      "where"_a, "index"_a,
      "Test hook: make the parallel loop `where` ('site', 'neighbor'; '' = off) throw at item "
      "`index`.");

  nb::class_<PyModel>(m, "Model")
      .def(nb::new_(&make_model), "species_count"_a, "min_dist"_a, "max_dist"_a,
           "radial_basis_size"_a, "radial_funcs_count"_a, "radial_coeffs"_a,
           "alpha_index_basic"_a, "alpha_index_times"_a, "alpha_moment_mapping"_a,
           "alpha_moments_count"_a, "species_coeffs"_a, "moment_coeffs"_a, "scaling"_a)
      .def_prop_ro("n_params", [](const PyModel& s) { return s.get()->n_params(); })
      .def_prop_ro("n_linear", [](const PyModel& s) { return s.get()->n_linear(); })
      .def_prop_ro("n_scalar", [](const PyModel& s) { return s.get()->n_scalar(); })
      .def_prop_ro("species_count", [](const PyModel& s) { return s.get()->species_count(); })
      .def_prop_ro("cutoff", [](const PyModel& s) { return s.get()->cutoff(); })
      .def_prop_ro("min_dist", [](const PyModel& s) { return s.get()->min_dist(); })
      .def("set_params",
           [](PyModel& self, CDArr p) {
             need(p.size() == static_cast<size_t>(self.get()->n_params()),
                  "wrong parameter count: got " + std::to_string(p.size()) + ", the model has " +
                      std::to_string(self.get()->n_params()));
             self.set_params(p.data());
           },
           "p"_a,
           "Replace all parameters. Evaluations already running (other threads) finish with the "
           "old ones.")
      .def("get_params",
           [](const PyModel& self) {
             auto model = self.get();
             std::vector<double> p(model->n_params());
             model->get_params(p.data());
             const size_t np = p.size();
             return to_numpy(std::move(p), {np});
           })
      .def(
          "site_energy",
          [](const PyModel& model, int itype, CDArr rij, CIArr jtypes) {
            auto sp = model.get();
            const mtpkit::Model& self = *sp;
            const int n = static_cast<int>(jtypes.size());
            need(rij.size() == 3 * static_cast<size_t>(n), "rij must be n x 3");
            need(itype >= 0 && itype < self.species_count(), "itype out of range");
            for (int q = 0; q < n; ++q)
              need(jtypes.data()[q] >= 0 && jtypes.data()[q] < self.species_count(),
                   "neighbour type out of range");
            mtpkit::Workspace ws;
            std::vector<double> g(3 * static_cast<size_t>(n)), row(self.n_linear());
            double e = self.site_energy(ws, itype, n, rij.data(), jtypes.data(), g.data(),
                                        row.data());
            const size_t k = row.size();
            return std::make_tuple(e, to_numpy(std::move(g), {static_cast<size_t>(n), 3}),
                                   to_numpy(std::move(row), {k}));
          },
          "itype"_a, "rij"_a, "jtypes"_a,
          "Site energy (eV), dE/dr_ij (n x 3) and the linear basis row of one atom.")
      .def(
          "site_mixed_param_grad",
          [](const PyModel& model, int itype, CDArr rij, CIArr jtypes, CDArr drij,
             double alpha, double beta) {
            auto sp = model.get();
            const mtpkit::Model& self = *sp;
            const int n = static_cast<int>(jtypes.size());
            need(rij.size() == 3 * static_cast<size_t>(n), "rij must be n x 3");
            need(drij.size() == 3 * static_cast<size_t>(n), "drij must be n x 3");
            need(itype >= 0 && itype < self.species_count(), "itype out of range");
            mtpkit::Workspace ws;
            std::vector<double> g(self.n_params(), 0.0);
            double e = self.site_mixed_param_grad(ws, itype, n, rij.data(), jtypes.data(),
                                                  drij.data(), alpha, beta, g.data());
            const size_t np = g.size();
            return std::make_tuple(e, to_numpy(std::move(g), {np}));
          },
          "itype"_a, "rij"_a, "jtypes"_a, "drij"_a, "alpha"_a, "beta"_a,
          "d/dtheta of alpha*E_i + beta*sum_j dE_i/dr_ij . drij_j.");

  nb::class_<mtpkit::NeighborList>(m, "NeighborList")
      .def_ro("n_atoms", &mtpkit::NeighborList::n_atoms)
      .def_ro("cutoff", &mtpkit::NeighborList::cutoff)
      .def_ro("min_r", &mtpkit::NeighborList::min_r)
      .def_ro("min_i", &mtpkit::NeighborList::min_i)
      .def_ro("min_j", &mtpkit::NeighborList::min_j)
      .def_prop_ro("n_pairs", &mtpkit::NeighborList::n_pairs)
      .def_prop_ro("offsets",
                   [](const mtpkit::NeighborList& s) {
                     std::vector<int64_t> v(s.offsets);
                     const size_t k = v.size();
                     return to_numpy(std::move(v), {k});
                   }, nb::rv_policy::automatic)
      .def_prop_ro("j",
                   [](const mtpkit::NeighborList& s) {
                     std::vector<int32_t> v(s.j.begin(), s.j.end());
                     const size_t k = v.size();
                     return to_numpy(std::move(v), {k});
                   }, nb::rv_policy::automatic)
      .def_prop_ro("rij", [](const mtpkit::NeighborList& s) {
        std::vector<double> v(s.rij);
        const size_t k = v.size() / 3;
        return to_numpy(std::move(v), {k, 3});
      }, nb::rv_policy::automatic);

  m.def(
      "build_neighbor_list",
      [](CDArr positions, CDArr cell, CBArr pbc, double cutoff) {
        need(positions.ndim() == 2 && positions.shape(1) == 3, "positions must be n x 3");
        need(cell.size() == 9, "cell must be 3 x 3");
        need(pbc.size() == 3, "pbc must have 3 flags");
        const int n = static_cast<int>(positions.shape(0));
        nb::gil_scoped_release rel;
        return mtpkit::build_neighbor_list(n, positions.data(), cell.data(), pbc.data(), cutoff);
      },
      "positions"_a, "cell"_a, "pbc"_a, "cutoff"_a);

  m.def(
      "evaluate",
      [](const PyModel& pm, const mtpkit::NeighborList& nl, CIArr types) {
        need(types.size() == static_cast<size_t>(nl.n_atoms), "types length != atom count");
        auto model = pm.get();
        mtpkit::EFS r;
        {
          nb::gil_scoped_release rel;
          r = mtpkit::evaluate(*model, nl, types.data());
        }
        const size_t n = nl.n_atoms;
        return std::make_tuple(r.energy, to_numpy(std::move(r.forces), {n, 3}),
                               to_numpy(std::move(r.virial), {3, 3}),
                               to_numpy(std::move(r.site_energies), {n}));
      },
      "model"_a, "nl"_a, "types"_a);

  m.def(
      "site_basis",
      [](const PyModel& pm, const mtpkit::NeighborList& nl, CIArr types) {
        need(types.size() == static_cast<size_t>(nl.n_atoms), "types length != atom count");
        auto model = pm.get();
        std::vector<double> rows;
        {
          nb::gil_scoped_release rel;
          rows = mtpkit::site_basis(*model, nl, types.data());
        }
        return to_numpy(std::move(rows),
                        {static_cast<size_t>(nl.n_atoms), static_cast<size_t>(model->n_linear())});
      },
      "model"_a, "nl"_a, "types"_a);

  m.def(
      "energy_param_grads",
      [](const PyModel& pm, const mtpkit::NeighborList& nl, CIArr types, bool per_atom) {
        need(types.size() == static_cast<size_t>(nl.n_atoms), "types length != atom count");
        auto model = pm.get();
        std::vector<double> g;
        {
          nb::gil_scoped_release rel;
          g = mtpkit::energy_param_grads(*model, nl, types.data(), per_atom);
        }
        const size_t P = model->n_params();
        if (per_atom) return to_numpy(std::move(g), {static_cast<size_t>(nl.n_atoms), P});
        return to_numpy(std::move(g), {P});
      },
      "model"_a, "nl"_a, "types"_a, "per_atom"_a);

  nb::class_<mtpkit::TrainingSet>(m, "TrainingSet")
      .def_ro("n_configs", &mtpkit::TrainingSet::n_configs)
      .def_ro("n_atoms", &mtpkit::TrainingSet::n_atoms)
      .def_ro("cutoff", &mtpkit::TrainingSet::cutoff)
      .def_prop_ro("n_pairs",
                   [](const mtpkit::TrainingSet& s) { return static_cast<int64_t>(s.pair_j.size()); })
      .def_prop_ro("atom_offset",
                   [](const mtpkit::TrainingSet& s) {
                     std::vector<int64_t> v(s.atom_offset);
                     const size_t k = v.size();
                     return to_numpy(std::move(v), {k});
                   }, nb::rv_policy::automatic)
      .def_prop_ro("min_r", [](const mtpkit::TrainingSet& s) {
        std::vector<double> v(s.min_r);
        const size_t k = v.size();
        return to_numpy(std::move(v), {k});
      }, nb::rv_policy::automatic);

  m.def(
      "build_training_set",
      [](std::vector<CDArr> positions, CDArr cells, CBArr pbc, std::vector<CIArr> types,
         double cutoff) {
        const size_t nc = positions.size();
        need(types.size() == nc, "positions and types differ in length");
        need(cells.size() == 9 * nc, "cells must be n_configs x 3 x 3");
        need(pbc.size() == 3 * nc, "pbc must be n_configs x 3");
        std::vector<const double*> pp(nc);
        std::vector<const int*> tp(nc);
        std::vector<int> counts(nc);
        for (size_t c = 0; c < nc; ++c) {
          need(positions[c].ndim() == 2 && positions[c].shape(1) == 3,
               "positions must be n x 3");
          counts[c] = static_cast<int>(positions[c].shape(0));
          need(types[c].size() == static_cast<size_t>(counts[c]), "types length != atom count");
          pp[c] = positions[c].data();
          tp[c] = types[c].data();
        }
        nb::gil_scoped_release rel;
        return mtpkit::TrainingSet::build(pp, counts, cells.data(), pbc.data(), tp, cutoff);
      },
      "positions"_a, "cells"_a, "pbc"_a, "types"_a, "cutoff"_a);

  m.def(
      "predict",
      [](const PyModel& pm, const mtpkit::TrainingSet& ts) {
        auto model = pm.get();
        mtpkit::Predictions p;
        {
          nb::gil_scoped_release rel;
          p = mtpkit::predict(*model, ts);
        }
        const size_t nc = ts.n_configs, n = ts.n_atoms;
        return std::make_tuple(to_numpy(std::move(p.energy), {nc}),
                               to_numpy(std::move(p.forces), {n, 3}),
                               to_numpy(std::move(p.virial), {nc, 3, 3}));
      },
      "model"_a, "ts"_a);

  m.def(
      "loss_and_grad",
      [](const PyModel& pm, const mtpkit::TrainingSet& ts, CDArr e_t, CDArr f_t, CDArr v_t,
         CDArr a, CDArr b, CDArr d) {
        auto sp = pm.get();
        const mtpkit::Model& model = *sp;
        const size_t nc = ts.n_configs, n = ts.n_atoms;
        need(e_t.size() == nc && a.size() == nc && b.size() == nc && d.size() == nc,
             "per-configuration arrays must have n_configs values");
        need(f_t.size() == 3 * n, "force targets must be n_atoms x 3");
        need(v_t.size() == 9 * nc, "virial targets must be n_configs x 3 x 3");
        std::vector<double> g(model.n_params());
        mtpkit::Predictions p;
        double loss;
        {
          nb::gil_scoped_release rel;
          loss = mtpkit::loss_and_grad(model, ts, e_t.data(), f_t.data(), v_t.data(), a.data(),
                                       b.data(), d.data(), g.data(), &p);
        }
        const size_t np = g.size();
        return std::make_tuple(loss, to_numpy(std::move(g), {np}),
                               to_numpy(std::move(p.energy), {nc}),
                               to_numpy(std::move(p.forces), {n, 3}),
                               to_numpy(std::move(p.virial), {nc, 3, 3}));
      },
      "model"_a, "ts"_a, "e_target"_a, "f_target"_a, "v_target"_a, "a"_a, "b"_a, "d"_a);

  m.def(
      "linear_rows",
      [](const PyModel& pm, const mtpkit::TrainingSet& ts) {
        auto sp = pm.get();
        const mtpkit::Model& model = *sp;
        const size_t nc = ts.n_configs, n = ts.n_atoms, K = model.n_linear();
        std::vector<double> er(nc * K), fr(3 * n * K), vr(9 * nc * K);
        {
          nb::gil_scoped_release rel;
          mtpkit::linear_rows(model, ts, er.data(), fr.data(), vr.data());
        }
        return std::make_tuple(to_numpy(std::move(er), {nc, K}),
                               to_numpy(std::move(fr), {n, 3, K}),
                               to_numpy(std::move(vr), {nc, 3, 3, K}));
      },
      "model"_a, "ts"_a);

  m.def(
      "load_potential_for_evaluation",
      [](const std::string& path) {
        std::string reason;
        std::optional<mtpkit::ModelSpec> spec;
        {
          nb::gil_scoped_release rel;
          spec = mtpkit::read_potential_for_evaluation(path, reason);
        }
        if (!spec) return nb::make_tuple(nb::none(), reason);
        return nb::make_tuple(nb::cast(PyModel(mtpkit::Model(*spec))), reason);
      },
      "path"_a,
      "(Model, '') for a .mtp/.almtp file that the compiled and the Python reader read alike; "
      "(None, reason) when mtpkit.potentials.mtp_io.read_mtp must read it (its errors, "
      "warnings, untrained templates, unusual syntax).");

  m.def(
      "evaluate_cfg_file",
      [](const PyModel& pm, const std::string& cfg_path, const std::string& output_path,
         int species_given) {
        auto model = pm.get();
        mtpkit::EvaluationReport r;
        {
          nb::gil_scoped_release rel;
          r = mtpkit::evaluate_cfg_file(*model, cfg_path, output_path, species_given);
        }
        return report_dict(r);
      },
      "model"_a, "cfg_path"_a, "output_path"_a, "species_given"_a,
      "`mtpkit evaluate` end to end: evaluate every configuration of cfg_path, write them to "
      "output_path (atomically) and return counts, the short-distance warning and the error "
      "sums (count, sum of squares, sum of |d|, max |d|) of energy (meV/atom), forces (eV/A) "
      "and stress (GPa). species_given: number of --species symbols, -1 for none. Raises "
      "mtpkit.errors.InputFileError / UserError with the Python path's messages, "
      "NeedsReference for files only the Python reader reads.");

  m.def(
      "parse_cfg_file",
      [](const std::string& path, int species_given) {
        std::vector<mtpkit::CfgConfiguration> configs;
        {
          nb::gil_scoped_release rel;
          configs = mtpkit::read_cfg_file(path, species_given);
        }
        nb::list out;
        for (auto& c : configs) out.append(configuration_dict(std::move(c)));
        return out;
      },
      "path"_a, "species_given"_a = -1,
      "The compiled .cfg reader: one dict per configuration (cell, pbc, columns, types, "
      "Cartesian positions in A, energy, virial, features, ...). species_given: number of "
      "species types must stay below (-1: none). Errors as mtpkit.potentials.cfg.read_cfg.");
}
