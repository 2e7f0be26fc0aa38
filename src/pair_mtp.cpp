// pair_style mtp (see pair_mtp.h for syntax and conventions).
#include "pair_mtp.h"

#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "timer.h"
#include "update.h"
#include "utils.h"

#include "omp_errors.hpp"

using namespace LAMMPS_NS;

namespace {

const char *const kElements[] = {
    "H",  "He", "Li", "Be", "B",  "C",  "N",  "O",  "F",  "Ne", "Na", "Mg", "Al", "Si", "P",
    "S",  "Cl", "Ar", "K",  "Ca", "Sc", "Ti", "V",  "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn",
    "Ga", "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Y",  "Zr", "Nb", "Mo", "Tc", "Ru", "Rh",
    "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I",  "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd",
    "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W",  "Re",
    "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th",
    "Pa", "U",  "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db",
    "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc", "Lv", "Ts", "Og"};

bool is_element(const std::string &s)
{
  for (const char *e : kElements)
    if (s == e) return true;
  return false;
}

bool is_index(const std::string &s)
{
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Broadcast a string from rank 0 (in pieces below INT_MAX bytes).
void bcast_string(std::string &s, MPI_Comm world)
{
  long long n = static_cast<long long>(s.size());
  MPI_Bcast(&n, 1, MPI_LONG_LONG, 0, world);
  s.resize(static_cast<size_t>(n));
  const long long chunk = 1LL << 30;
  for (long long o = 0; o < n; o += chunk)
    MPI_Bcast(&s[static_cast<size_t>(o)], static_cast<int>(std::min(chunk, n - o)), MPI_CHAR, 0,
              world);
}

}    // namespace

PairMTP::PairMTP(LAMMPS *lmp) : Pair(lmp)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  no_virial_fdotr_compute = 1;
  centroidstressflag = CENTROID_NOTAVAIL;
  comm_reverse = 3;
  comm_reverse_off = 3;
  nextra = 1;
  pvector = new double[nextra];
  pvector[0] = 0.0;
}

PairMTP::~PairMTP()
{
  delete[] pvector;
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

void PairMTP::allocate()
{
  allocated = 1;
  int n = atom->ntypes;
  memory->create(setflag, n + 1, n + 1, "pair:setflag");
  memory->create(cutsq, n + 1, n + 1, "pair:cutsq");
  for (int i = 1; i <= n; i++)
    for (int j = 1; j <= n; j++) setflag[i][j] = 0;
  type_map_.assign(n + 1, -1);
  type_names_.assign(n + 1, "");
}

/* ---------------------------------------------------------------------- */

void PairMTP::settings(int narg, char **arg)
{
  if (narg < 1) error->all(FLERR, "Illegal pair_style mtp command: expected a potential file");
  check_units();
  const std::string potential_file = arg[0];
  // rank 0 reads the file (path as given, else in $LAMMPS_POTENTIALS) and
  // broadcasts its bytes; every rank parses the same text
  std::string data, err;
  if (comm->me == 0) {
    try {
      std::string path = utils::get_potential_file_path(potential_file);
      if (path.empty()) path = potential_file;    // read_file_bytes names it in the error
      data = mtpkit::read_file_bytes(path);
    } catch (std::exception &e) {
      err = e.what();
    }
  }
  bcast_string(err, world);
  if (!err.empty()) error->all(FLERR, "pair_style mtp: {}", err);
  bcast_string(data, world);
  mtpkit::MTPFile file;
  std::unique_ptr<mtpkit::Model> model;
  try {
    file = mtpkit::parse_mtp_file(data, potential_file);
    model = std::make_unique<mtpkit::Model>(file.spec);
  } catch (std::exception &e) {
    error->all(FLERR, "pair_style mtp: {}", e.what());
  }
  data.clear();
  data.shrink_to_fit();

  // keywords (into locals: nothing changes unless the whole command is valid)
  std::vector<std::string> file_species;
  bool extrap_keyword = false;
  int every = 1;
  double select_threshold = 2.1, break_threshold = 10.0, min_dist_error = 0.0;
  std::string save_file;
  const int S = model->species_count();
  int iarg = 1;
  while (iarg < narg) {
    std::string key = arg[iarg];
    auto need = [&](int k) {
      if (iarg + k >= narg)
        error->all(FLERR, "pair_style mtp: keyword '{}' needs {} value(s)", key, k);
    };
    if (key == "species") {
      need(S);
      for (int k = 1; k <= S; ++k) {
        std::string name = arg[iarg + k];
        if (!is_element(name))
          error->all(FLERR, "pair_style mtp: species: unknown chemical element '{}'", name);
        file_species.push_back(name);
      }
      iarg += S + 1;
    } else if (key == "extrapolation_control") {
      extrap_keyword = true;
      iarg += 1;
    } else if (key == "every") {
      need(1);
      every = utils::inumeric(FLERR, arg[iarg + 1], false, lmp);
      if (every < 1) error->all(FLERR, "pair_style mtp: every must be >= 1");
      extrap_keyword = true;
      iarg += 2;
    } else if (key == "select_threshold") {
      need(1);
      select_threshold = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
      extrap_keyword = true;
      iarg += 2;
    } else if (key == "break_threshold") {
      need(1);
      break_threshold = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
      extrap_keyword = true;
      iarg += 2;
    } else if (key == "min_dist_error") {
      need(1);
      min_dist_error = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
      iarg += 2;
    } else if (key == "save") {
      need(1);
      save_file = arg[iarg + 1];
      extrap_keyword = true;
      iarg += 2;
    } else {
      error->all(FLERR, "pair_style mtp: unknown keyword '{}'", key);
    }
  }
  if (extrap_keyword) {
    if (!file.active_set.present)
      error->all(FLERR,
                 "pair_style mtp: extrapolation control needs a potential with an active set "
                 "(.almtp with a #MVS_v1.1 section): {}",
                 potential_file);
    if (select_threshold > break_threshold)
      error->all(FLERR, "pair_style mtp: select_threshold {} > break_threshold {}",
                 select_threshold, break_threshold);
  }

  potential_file_ = potential_file;
  model_ = std::move(model);
  aset_ = std::move(file.active_set);
  file_species_ = std::move(file_species);
  extrapolation_ = extrap_keyword;
  every_ = every;
  select_threshold_ = select_threshold;
  break_threshold_ = break_threshold;
  min_dist_error_ = min_dist_error;
  save_file_ = save_file;
  max_gamma_ = 0.0;
  halted_ = 0.0;
  last_graded_step_ = -1;
  // A re-issued pair_style (LAMMPS calls settings() again on this instance) may
  // name another potential: the species map of the last pair_coeff no longer
  // applies, so a new pair_coeff must follow.
  if (allocated) {
    const int n = atom->ntypes;
    for (int i = 1; i <= n; i++)
      for (int j = 1; j <= n; j++) setflag[i][j] = 0;
    type_map_.assign(n + 1, -1);
    type_names_.assign(n + 1, "");
  }
  if (comm->me == 0) {
    utils::logmesg(lmp,
                   "pair_style mtp: {} ({} species, cutoff {} A, {} basis functions{})\n",
                   potential_file_, S, model_->cutoff(), model_->n_scalar(),
                   aset_.present ? ", active set of " + std::to_string(aset_.n) + " rows" : "");
  }
}

/* The potential is in eV and Angstrom: refuse any other unit style. */
void PairMTP::check_units()
{
  if (std::strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR,
               "pair_style mtp: the potential is in eV and Angstrom and needs 'units metal', "
               "not 'units {}'",
               update->unit_style);
}

/* ---------------------------------------------------------------------- */

void PairMTP::coeff(int narg, char **arg)
{
  if (!model_) error->all(FLERR, "pair_coeff mtp: pair_style mtp must come first");
  if (!allocated) allocate();
  const int ntypes = atom->ntypes;
  if (narg != 2 + ntypes)
    error->all(FLERR, "pair_coeff mtp: expected '* *' and {} species (one per atom type), got {} "
               "arguments", ntypes, narg);
  if (std::strcmp(arg[0], "*") != 0 || std::strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_coeff mtp: the first two arguments must be '* *'");
  const int S = model_->species_count();
  std::vector<std::string> order;    // first-appearance order when no species keyword
  for (int t = 1; t <= ntypes; ++t) {
    std::string tok = arg[1 + t];
    type_names_[t] = tok;
    if (tok == "NULL") {
      type_map_[t] = -1;
      continue;
    }
    int idx = -1;
    if (is_index(tok)) {
      idx = utils::inumeric(FLERR, tok, false, lmp);
      if (idx >= S)
        error->all(FLERR, "pair_coeff mtp: type index {} for atom type {} is not below "
                   "species_count {}", idx, t, S);
      type_names_[t] = file_species_.empty() ? "X" : file_species_[idx];
    } else if (!is_element(tok)) {
      error->all(FLERR, "pair_coeff mtp: unknown species '{}' for atom type {}", tok, t);
    } else if (!file_species_.empty()) {
      auto it = std::find(file_species_.begin(), file_species_.end(), tok);
      if (it == file_species_.end())
        error->all(FLERR, "pair_coeff mtp: unknown species '{}' for atom type {}: the potential's "
                   "species are {}", tok, t, utils::join_words(file_species_, " "));
      idx = static_cast<int>(it - file_species_.begin());
    } else {
      auto it = std::find(order.begin(), order.end(), tok);
      if (it == order.end()) {
        order.push_back(tok);
        idx = static_cast<int>(order.size()) - 1;
      } else {
        idx = static_cast<int>(it - order.begin());
      }
      if (idx >= S)
        error->all(FLERR, "pair_coeff mtp: species '{}' would be MTP type {}, but the potential "
                   "has only {} species", tok, idx, S);
    }
    type_map_[t] = idx;
  }
  for (int i = 1; i <= ntypes; ++i)
    for (int j = 1; j <= ntypes; ++j) setflag[i][j] = (type_map_[i] >= 0 && type_map_[j] >= 0);
}

void PairMTP::init_style()
{
  if (atom->tag_enable == 0) error->all(FLERR, "pair_style mtp requires atom IDs");
  check_units();
  const int S = model_->species_count();
  for (int t = 1; t < static_cast<int>(type_map_.size()); ++t)
    if (type_map_[t] >= S)
      error->all(FLERR, "pair_style mtp: atom type {} is MTP type {}, but {} has {} species; "
                 "repeat pair_coeff after pair_style", t, type_map_[t], potential_file_, S);
  neighbor->add_request(this, NeighConst::REQ_FULL);
  if (comm->me == 0) {
#if defined(_OPENMP)
    utils::logmesg(lmp, "pair_style mtp: {} OpenMP thread(s) per MPI rank\n", comm->nthreads);
#else
    utils::logmesg(lmp, "pair_style mtp: built without OpenMP, 1 thread per MPI rank\n");
#endif
  }
}

// (LAMMPS' Pair::init has already refused unset type pairs: "All pair coeffs are not set")
double PairMTP::init_one(int, int) { return model_->cutoff(); }

/* ---------------------------------------------------------------------- */

void PairMTP::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  double **x = atom->x;
  double **f = atom->f;
  const int *type = atom->type;
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  const bool newton = force->newton_pair != 0;
  const int inum = list->inum;
  const int *ilist = list->ilist;
  const int *numneigh = list->numneigh;
  int **firstneigh = list->firstneigh;
  const double cut = model_->cutoff();
  const double cutsq_ = cut * cut;
  const double min_rsq = min_dist_error_ * min_dist_error_;

  const bool grade_now = extrapolation_ && update->ntimestep % every_ == 0 &&
      update->ntimestep != last_graded_step_;
  const bool conf_mode = aset_.present && aset_.site_en_weight == 0.0 && aset_.energy_weight > 0.0;
  if (grade_now) {
    gamma_.assign(nlocal, 0.0);
    if (conf_mode) conf_row_.assign(aset_.n, 0.0);
  }
  if (!newton) fghost_.assign(3 * static_cast<size_t>(nall), 0.0);
  double *fg = newton ? nullptr : fghost_.data();

  // 1. gather (serial): the in-cutoff neighbours of every local site of a mapped
  //    type, packed: site q (LAMMPS atom site_atom_[q]) has pairs [offs_[q], offs_[q+1])
  offs_.assign(1, 0);
  site_type_.clear();
  site_atom_.clear();
  pjl_.clear();
  pjt_.clear();
  prij_.clear();
  for (int ii = 0; ii < inum; ++ii) {
    const int i = ilist[ii];
    const int itype = type_map_[type[i]];
    if (itype < 0) continue;
    site_type_.push_back(itype);
    site_atom_.push_back(i);
    const double xi = x[i][0], yi = x[i][1], zi = x[i][2];
    const int *jlist = firstneigh[i];
    const int jnum = numneigh[i];
    for (int jj = 0; jj < jnum; ++jj) {
      const int j = jlist[jj] & NEIGHMASK;
      const int jt = type_map_[type[j]];
      if (jt < 0) continue;
      const double dx = x[j][0] - xi, dy = x[j][1] - yi, dz = x[j][2] - zi;
      const double rsq = dx * dx + dy * dy + dz * dz;
      if (rsq >= cutsq_) continue;
      if (rsq < min_rsq)
        error->one(FLERR, "pair_style mtp: MD blow-up: atoms {} and {} are {:.4f} A apart, closer "
                   "than min_dist_error {} A, at step {}", atom->tag[i], atom->tag[j],
                   std::sqrt(rsq), min_dist_error_, update->ntimestep);
      pjl_.push_back(j);
      pjt_.push_back(jt);
      prij_.push_back(dx);
      prij_.push_back(dy);
      prij_.push_back(dz);
    }
    offs_.push_back(static_cast<int64_t>(pjl_.size()));
  }
  const int nact = static_cast<int>(site_atom_.size());

  // 2. kernel: the core's packed evaluation on LAMMPS's threads
  site_e_.resize(nact);
  pgrad_.resize(prij_.size());
  try {
    mtpkit::packed_site_energies(*model_, nact, site_type_.data(), offs_.data(), pjt_.data(),
                                 prij_.data(), site_e_.data(), pgrad_.data(), bws_,
                                 std::max(1, comm->nthreads));
  } catch (std::exception &e) {
    error->one(FLERR, "pair_style mtp: site energies at step {}: {}", update->ntimestep, e.what());
  }

  // 3. scatter (serial, fixed order): forces, energies, virials
  for (int q = 0; q < nact; ++q) {
    const int i = site_atom_[q];
    const int64_t o = offs_[q];
    const int n = static_cast<int>(offs_[q + 1] - o);
    const double *rp = prij_.data() + 3 * o;
    const double *gp = pgrad_.data() + 3 * o;
    const int *jl = pjl_.data() + o;
    const double ei = site_e_[q];
    double fix = 0.0, fiy = 0.0, fiz = 0.0;
    double v[6] = {0, 0, 0, 0, 0, 0};
    for (int k = 0; k < n; ++k) {
      const int j = jl[k];
      const double gx = gp[3 * k], gy = gp[3 * k + 1], gz = gp[3 * k + 2];
      fix += gx;
      fiy += gy;
      fiz += gz;
      if (newton) {
        f[j][0] -= gx;
        f[j][1] -= gy;
        f[j][2] -= gz;
      } else {
        fg[3 * j] -= gx;
        fg[3 * j + 1] -= gy;
        fg[3 * j + 2] -= gz;
      }
      if (vflag_either) {
        const double rx = rp[3 * k], ry = rp[3 * k + 1], rz = rp[3 * k + 2];
        v[0] -= rx * gx;
        v[1] -= ry * gy;
        v[2] -= rz * gz;
        v[3] -= rx * gy;
        v[4] -= rx * gz;
        v[5] -= ry * gz;
      }
    }
    f[i][0] += fix;
    f[i][1] += fiy;
    f[i][2] += fiz;
    if (eflag_global) eng_vdwl += ei;
    if (eflag_atom) eatom[i] += ei;
    if (vflag_global)
      for (int c = 0; c < 6; ++c) virial[c] += v[c];
    if (vflag_atom)
      for (int c = 0; c < 6; ++c) vatom[i][c] += v[c];
  }

  // 4. grades (every `every_` steps): per atom in parallel; in configuration
  //    mode the site rows are summed in site order (serial)
  if (grade_now) {
    const int gthreads = conf_mode ? 1 : std::max(1, std::min(comm->nthreads, nact));
    if (static_cast<int>(gws_.size()) < gthreads) {  // per-thread scratch, kept between steps
      gws_.resize(gthreads);
      grow_.resize(gthreads);
    }
    mtpkit::OmpErrors errors;    // (std::bad_alloc as scratch grows) re-thrown below
    if (conf_mode) {
      for (int q = 0; q < nact; ++q) errors.run([&] { grade_site(0, q, nullptr); });
    } else {
#if defined(_OPENMP)
#pragma omp parallel for num_threads(gthreads) schedule(dynamic, 4)
#endif
      for (int q = 0; q < nact; ++q) {
#if defined(_OPENMP)
        const int tid = omp_get_thread_num();
#else
        const int tid = 0;
#endif
        errors.run([&] { grade_site(tid, q, &gamma_[site_atom_[q]]); });
      }
    }
    try {
      errors.rethrow();
    } catch (std::exception &e) {
      error->one(FLERR, "pair_style mtp: extrapolation grades at step {}: {}", update->ntimestep,
                 e.what());
    }
  }

  if (!newton) {
    comm->reverse_comm(this);
    for (int i = 0; i < nlocal; ++i) {
      f[i][0] += fg[3 * i];
      f[i][1] += fg[3 * i + 1];
      f[i][2] += fg[3 * i + 2];
    }
  }
  if (grade_now) {
    last_graded_step_ = update->ntimestep;
    finish_grading(nlocal);
  }
}

/* Grade of packed site q, using thread `tid`'s scratch. In configuration mode
   (gamma_out == nullptr, serial) the site's row is added to conf_row_. */
void PairMTP::grade_site(int tid, int q, double *gamma_out)
{
  const int itype = site_type_[q];
  const int64_t offset = offs_[q];
  const int n = static_cast<int>(offs_[q + 1] - offset);
  const int m = aset_.n;
  mtpkit::Workspace &ws = gws_[tid];
  std::vector<double> &row = grow_[tid];
  row.assign(m, 0.0);
  const double *rij = prij_.data() + 3 * offset;
  const int *jt = pjt_.data() + offset;
  if (m == model_->n_params()) {
    model_->site_energy_param_grad(ws, itype, n, rij, jt, 1.0, row.data());
  } else {
    model_->site_energy(ws, itype, n, rij, jt, nullptr, row.data());
  }
  if (!gamma_out) {
    for (int k = 0; k < m; ++k) conf_row_[k] += row[k];
    return;
  }
  const double w = aset_.site_en_weight > 0.0 ? aset_.site_en_weight : 1.0;
  double g = 0.0;
  const double *inv = aset_.invA.data();
  for (int k = 0; k < m; ++k) {
    const double *r = inv + static_cast<size_t>(k) * m;
    double c = 0.0;
    for (int j = 0; j < m; ++j) c += r[j] * row[j];
    g = std::max(g, std::fabs(w * c));
  }
  *gamma_out = g;
}

void PairMTP::finish_grading(int nlocal)
{
  double local_max = 0.0;
  const bool conf_mode = aset_.site_en_weight == 0.0 && aset_.energy_weight > 0.0;
  if (conf_mode) {
    const int m = aset_.n;
    std::vector<double> total(m, 0.0);
    MPI_Allreduce(conf_row_.data(), total.data(), m, MPI_DOUBLE, MPI_SUM, world);
    const double natoms = static_cast<double>(atom->natoms);
    const double w = aset_.energy_weight / std::pow(natoms, 0.5 * aset_.weight_scaling);
    const double *inv = aset_.invA.data();
    for (int k = 0; k < m; ++k) {
      double c = 0.0;
      for (int j = 0; j < m; ++j) c += inv[static_cast<size_t>(k) * m + j] * total[j];
      local_max = std::max(local_max, std::fabs(w * c));
    }
    std::fill(gamma_.begin(), gamma_.end(), local_max);
  } else {
    for (int i = 0; i < nlocal; ++i) local_max = std::max(local_max, gamma_[i]);
  }
  MPI_Allreduce(&local_max, &max_gamma_, 1, MPI_DOUBLE, MPI_MAX, world);
  pvector[0] = max_gamma_;
  if (max_gamma_ > select_threshold_ && !save_file_.empty()) save_configuration(nlocal);
  if (max_gamma_ > break_threshold_) {
    halted_ = 1.0;
    if (comm->me == 0)
      error->warning(FLERR, "pair_style mtp: extrapolation grade {:.6g} above break_threshold {} at "
                     "step {}: stopping the run", max_gamma_, break_threshold_, update->ntimestep);
    timer->force_timeout();
  }
}

/* Append the current configuration (all ranks) to save_file_ as extended XYZ. */
void PairMTP::save_configuration(int nlocal)
{
  const int stride = 6;    // tag, type, x, y, z, gamma
  std::vector<double> mine(static_cast<size_t>(stride) * nlocal);
  for (int i = 0; i < nlocal; ++i) {
    double *p = &mine[static_cast<size_t>(stride) * i];
    p[0] = static_cast<double>(atom->tag[i]);
    p[1] = atom->type[i];
    p[2] = atom->x[i][0];
    p[3] = atom->x[i][1];
    p[4] = atom->x[i][2];
    p[5] = gamma_[i];
  }
  int count = stride * nlocal;
  const int nprocs = comm->nprocs;
  std::vector<int> counts(nprocs), displs(nprocs);
  MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, world);
  std::vector<double> all;
  if (comm->me == 0) {
    int total = 0;
    for (int r = 0; r < nprocs; ++r) {
      displs[r] = total;
      total += counts[r];
    }
    all.resize(total);
  }
  MPI_Gatherv(mine.data(), count, MPI_DOUBLE, all.data(), counts.data(), displs.data(), MPI_DOUBLE,
              0, world);
  if (comm->me != 0) return;
  const size_t n = all.size() / stride;
  std::vector<size_t> order(n);
  for (size_t k = 0; k < n; ++k) order[k] = k;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return all[a * stride] < all[b * stride]; });
  FILE *fp = std::fopen(save_file_.c_str(), "a");
  if (!fp) {
    error->warning(FLERR, "pair_style mtp: cannot open save file {}", save_file_);
    return;
  }
  const double *h = domain->h;    // xprd yprd zprd yz xz xy
  std::fprintf(fp, "%zu\n", n);
  std::fprintf(fp,
               "Lattice=\"%.17g 0 0 %.17g %.17g 0 %.17g %.17g %.17g\" "
               "Properties=species:S:1:pos:R:3:gamma:R:1 step=%lld max_gamma=%.17g "
               "pbc=\"T T T\"\n",
               h[0], h[5], h[1], h[4], h[3], h[2], static_cast<long long>(update->ntimestep),
               max_gamma_);
  for (size_t k : order) {
    const double *p = &all[k * stride];
    const std::string &name = type_names_[static_cast<int>(p[1])];
    std::fprintf(fp, "%s %.17g %.17g %.17g %.17g\n", name.c_str(), p[2], p[3], p[4], p[5]);
  }
  std::fclose(fp);
}

/* ---------------------------------------------------------------------- */

int PairMTP::pack_reverse_comm(int n, int first, double *buf)
{
  int m = 0;
  for (int i = first; i < first + n; ++i) {
    buf[m++] = fghost_[3 * i];
    buf[m++] = fghost_[3 * i + 1];
    buf[m++] = fghost_[3 * i + 2];
  }
  return m;
}

void PairMTP::unpack_reverse_comm(int n, int *list, double *buf)
{
  int m = 0;
  for (int i = 0; i < n; ++i) {
    const int j = list[i];
    fghost_[3 * j] += buf[m++];
    fghost_[3 * j + 1] += buf[m++];
    fghost_[3 * j + 2] += buf[m++];
  }
}

void *PairMTP::extract(const char *name, int &dim)
{
  dim = 0;
  if (std::strcmp(name, "max_gamma") == 0) return &max_gamma_;
  if (std::strcmp(name, "halted") == 0) return &halted_;
  if (std::strcmp(name, "cutoff") == 0 && model_) {
    static thread_local double c;
    c = model_->cutoff();
    return &c;
  }
  return nullptr;
}

double PairMTP::memory_usage()
{
  double bytes = Pair::memory_usage();
  bytes += 8.0 * (prij_.capacity() + pgrad_.capacity() + site_e_.capacity() +
                  fghost_.capacity() + gamma_.capacity() + conf_row_.capacity() +
                  aset_.invA.capacity());
  bytes += 4.0 * (pjl_.capacity() + pjt_.capacity() + site_atom_.capacity() +
                  site_type_.capacity()) + 8.0 * offs_.capacity();
  return bytes;
}
