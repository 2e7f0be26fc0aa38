// mtpkit compiled core: per-site MTP kernels (see mtp_core.hpp for the math).
#include "mtp_core.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <tuple>

namespace mtpkit {

int core_version() { return 2; }

namespace {
template <class T>
inline void grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}
}  // namespace

Model::Model(const ModelSpec& s)
    : S_(s.species_count),
      R_(s.radial_funcs_count),
      B_(s.radial_basis_size),
      n_basic_(static_cast<int>(s.alpha_index_basic.size() / 4)),
      amc_(s.alpha_moments_count),
      pmax_(0),
      min_dist_(s.min_dist),
      max_dist_(s.max_dist),
      scaling_(s.scaling) {
  auto fail = [](const std::string& msg) { throw std::invalid_argument("MTP model: " + msg); };
  if (S_ < 1) fail("species_count must be >= 1");
  if (R_ < 1) fail("radial_funcs_count must be >= 1");
  if (B_ < 1) fail("radial_basis_size must be >= 1");
  if (!(min_dist_ >= 0.0 && max_dist_ > min_dist_)) fail("need 0 <= min_dist < max_dist");
  if (s.alpha_index_basic.size() % 4 != 0) fail("alpha_index_basic must have 4 columns");
  if (s.alpha_index_times.size() % 4 != 0) fail("alpha_index_times must have 4 columns");
  if (n_basic_ < 1) fail("alpha_index_basic is empty");
  if (amc_ < n_basic_) fail("alpha_moments_count < alpha_index_basic_count");
  if (s.radial_coeffs.size() != static_cast<size_t>(S_) * S_ * R_ * B_)
    fail("radial_coeffs has the wrong size");
  if (s.species_coeffs.size() != static_cast<size_t>(S_)) fail("species_coeffs has the wrong size");
  if (s.moment_coeffs.size() != s.alpha_moment_mapping.size())
    fail("moment_coeffs and alpha_moment_mapping differ in size");
  radial_ = s.radial_coeffs;
  species_ = s.species_coeffs;
  moment_ = s.moment_coeffs;
  map_ = s.alpha_moment_mapping;
  for (int m : map_)
    if (m < 0 || m >= amc_) fail("alpha_moment_mapping index out of range");

  std::map<std::tuple<int, int, int>, int> mono_id;
  basic_mu_.resize(n_basic_);
  basic_mono_.resize(n_basic_);
  for (int a = 0; a < n_basic_; ++a) {
    int mu = s.alpha_index_basic[4 * a], px = s.alpha_index_basic[4 * a + 1],
        py = s.alpha_index_basic[4 * a + 2], pz = s.alpha_index_basic[4 * a + 3];
    if (mu < 0 || mu >= R_) fail("alpha_index_basic radial function index out of range");
    if (px < 0 || py < 0 || pz < 0) fail("alpha_index_basic negative power");
    pmax_ = std::max({pmax_, px, py, pz});
    auto key = std::make_tuple(px, py, pz);
    auto it = mono_id.find(key);
    int id;
    if (it == mono_id.end()) {
      id = static_cast<int>(mono_p_.size() / 3);
      mono_id.emplace(key, id);
      mono_p_.insert(mono_p_.end(), {px, py, pz});
      mono_k_.push_back(px + py + pz);
    } else {
      id = it->second;
    }
    basic_mu_[a] = mu;
    basic_mono_[a] = id;
  }
  n_mono_ = static_cast<int>(mono_k_.size());
  const size_t nt = s.alpha_index_times.size() / 4;
  t_i_.resize(nt);
  t_j_.resize(nt);
  t_k_.resize(nt);
  t_mult_.resize(nt);
  for (size_t t = 0; t < nt; ++t) {
    int i = s.alpha_index_times[4 * t], j = s.alpha_index_times[4 * t + 1],
        m = s.alpha_index_times[4 * t + 2], k = s.alpha_index_times[4 * t + 3];
    if (i < 0 || j < 0 || k < 0 || i >= amc_ || j >= amc_ || k >= amc_)
      fail("alpha_index_times index out of range");
    if (k < n_basic_) fail("alpha_index_times writes into a basic moment");
    t_i_[t] = i;
    t_j_[t] = j;
    t_k_[t] = k;
    t_mult_[t] = static_cast<double>(m);
  }
}

void Model::set_params(const double* p) {
  const int nr = n_radial_params();
  std::copy(p, p + nr, radial_.begin());
  std::copy(p + nr, p + nr + S_, species_.begin());
  std::copy(p + nr + S_, p + nr + S_ + n_scalar(), moment_.begin());
}

void Model::get_params(double* p) const {
  const int nr = n_radial_params();
  std::copy(radial_.begin(), radial_.end(), p);
  std::copy(species_.begin(), species_.end(), p + nr);
  std::copy(moment_.begin(), moment_.end(), p + nr + S_);
}

// Fills per-neighbour data for the in-cutoff neighbours; returns their count.
int Model::prepare(Workspace& ws, int itype, int n, const double* rij, const int* jtypes,
                   bool /*need_derivs*/) const {
  const int P1 = pmax_ + 1;
  grow(ws.r, n);
  grow(ws.inv_r, n);
  grow(ws.u, 3 * static_cast<size_t>(n));
  grow(ws.f, static_cast<size_t>(n) * R_);
  grow(ws.df, static_cast<size_t>(n) * R_);
  grow(ws.Q, static_cast<size_t>(n) * B_);
  grow(ws.dQ, static_cast<size_t>(n) * B_);
  grow(ws.mono, static_cast<size_t>(n) * n_mono_);
  grow(ws.pw, static_cast<size_t>(n) * 3 * P1);
  grow(ws.jt, n);
  grow(ws.idx, n);
  grow(ws.M, amc_);
  grow(ws.g, amc_);
  grow(ws.w, 2 * static_cast<size_t>(n_mono_));
  grow(ws.wd, 2 * static_cast<size_t>(std::max(n_mono_, R_)));

  const double rc = max_dist_;
  const double rc2 = rc * rc;
  const double span = max_dist_ - min_dist_;
  const double dxi = 2.0 / span;
  const double mid = min_dist_ + max_dist_;
  int nn = 0;
  for (int jj = 0; jj < n; ++jj) {
    const double x = rij[3 * jj], y = rij[3 * jj + 1], z = rij[3 * jj + 2];
    const double r2 = x * x + y * y + z * z;
    if (!(r2 < rc2)) continue;
    const double r = std::sqrt(r2);
    const double ir = 1.0 / r;
    ws.idx[nn] = jj;
    ws.jt[nn] = jtypes[jj];
    ws.r[nn] = r;
    ws.inv_r[nn] = ir;
    double* u = &ws.u[3 * nn];
    u[0] = x * ir;
    u[1] = y * ir;
    u[2] = z * ir;
    // powers of unit vector components
    double* pw = &ws.pw[static_cast<size_t>(nn) * 3 * P1];
    for (int c = 0; c < 3; ++c) {
      double* p = pw + c * P1;
      p[0] = 1.0;
      for (int e = 1; e < P1; ++e) p[e] = p[e - 1] * u[c];
    }
    double* mono = &ws.mono[static_cast<size_t>(nn) * n_mono_];
    for (int id = 0; id < n_mono_; ++id) {
      mono[id] = pw[mono_p_[3 * id]] * pw[P1 + mono_p_[3 * id + 1]] *
                 pw[2 * P1 + mono_p_[3 * id + 2]];
    }
    // radial basis
    const double xi = (2.0 * r - mid) / span;
    const double d = rc - r;
    const double sm = scaling_ * d * d;
    const double dsm = -2.0 * scaling_ * d;
    double* Q = &ws.Q[static_cast<size_t>(nn) * B_];
    double* dQ = &ws.dQ[static_cast<size_t>(nn) * B_];
    double t0 = 1.0, t1 = xi, dt0 = 0.0, dt1 = dxi;
    Q[0] = sm;
    dQ[0] = dsm;
    if (B_ > 1) {
      Q[1] = t1 * sm;
      dQ[1] = dt1 * sm + t1 * dsm;
    }
    for (int b = 2; b < B_; ++b) {
      const double t2 = 2.0 * xi * t1 - t0;
      const double dt2 = 2.0 * (dxi * t1 + xi * dt1) - dt0;
      Q[b] = t2 * sm;
      dQ[b] = dt2 * sm + t2 * dsm;
      t0 = t1;
      t1 = t2;
      dt0 = dt1;
      dt1 = dt2;
    }
    const double* c = &radial_[(static_cast<size_t>(itype) * S_ + jtypes[jj]) * R_ * B_];
    double* f = &ws.f[static_cast<size_t>(nn) * R_];
    double* df = &ws.df[static_cast<size_t>(nn) * R_];
    for (int mu = 0; mu < R_; ++mu) {
      double sv = 0.0, sd = 0.0;
      const double* cm = c + mu * B_;
      for (int b = 0; b < B_; ++b) {
        sv += cm[b] * Q[b];
        sd += cm[b] * dQ[b];
      }
      f[mu] = sv;
      df[mu] = sd;
    }
    ++nn;
  }
  return nn;
}

void Model::forward_moments(Workspace& ws, int nn) const {
  double* M = ws.M.data();
  std::fill(M, M + amc_, 0.0);
  const int* bmu = basic_mu_.data();
  const int* bmo = basic_mono_.data();
  for (int j = 0; j < nn; ++j) {
    const double* f = &ws.f[static_cast<size_t>(j) * R_];
    const double* mono = &ws.mono[static_cast<size_t>(j) * n_mono_];
    for (int a = 0; a < n_basic_; ++a) M[a] += f[bmu[a]] * mono[bmo[a]];
  }
  const size_t nt = t_k_.size();
  for (size_t t = 0; t < nt; ++t) M[t_k_[t]] += t_mult_[t] * M[t_i_[t]] * M[t_j_[t]];
}

// g = dE/dM (adjoint of the moment values); requires ws.M from forward_moments.
void Model::reverse_moments(Workspace& ws) const {
  double* g = ws.g.data();
  const double* M = ws.M.data();
  std::fill(g, g + amc_, 0.0);
  const int ns = n_scalar();
  for (int k = 0; k < ns; ++k) g[map_[k]] += moment_[k];
  for (size_t t = t_k_.size(); t-- > 0;) {
    const double gk = g[t_k_[t]];
    if (gk == 0.0) continue;
    const double c = t_mult_[t] * gk;
    g[t_i_[t]] += c * M[t_j_[t]];
    g[t_j_[t]] += c * M[t_i_[t]];
  }
}

double Model::site_energy(Workspace& ws, int itype, int n, const double* rij,
                          const int* jtypes, double* dE_drij, double* basis_row) const {
  const int nn = prepare(ws, itype, n, rij, jtypes, dE_drij != nullptr);
  forward_moments(ws, nn);
  const double* M = ws.M.data();
  const int ns = n_scalar();
  double e = species_[itype];
  for (int k = 0; k < ns; ++k) e += moment_[k] * M[map_[k]];
  if (basis_row) {
    for (int s = 0; s < S_; ++s) basis_row[s] = (s == itype) ? 1.0 : 0.0;
    for (int k = 0; k < ns; ++k) basis_row[S_ + k] = M[map_[k]];
  }
  if (!dE_drij) return e;
  std::fill(dE_drij, dE_drij + 3 * static_cast<size_t>(n), 0.0);
  reverse_moments(ws);
  const double* g = ws.g.data();
  const int P1 = pmax_ + 1;
  double* w = ws.w.data();             // per-monomial sum_a g_a f_mu
  double* wd = w + n_mono_;            // per-monomial sum_a g_a f'_mu
  for (int j = 0; j < nn; ++j) {
    const double* f = &ws.f[static_cast<size_t>(j) * R_];
    const double* df = &ws.df[static_cast<size_t>(j) * R_];
    const double* mono = &ws.mono[static_cast<size_t>(j) * n_mono_];
    const double* pw = &ws.pw[static_cast<size_t>(j) * 3 * P1];
    std::fill(w, w + 2 * n_mono_, 0.0);
    for (int a = 0; a < n_basic_; ++a) {
      const double ga = g[a];
      w[basic_mono_[a]] += ga * f[basic_mu_[a]];
      wd[basic_mono_[a]] += ga * df[basic_mu_[a]];
    }
    double s0 = 0.0, s1 = 0.0, gx = 0.0, gy = 0.0, gz = 0.0;
    for (int id = 0; id < n_mono_; ++id) {
      const double wi = w[id];
      s0 += wd[id] * mono[id];
      s1 += wi * mono_k_[id] * mono[id];
      const int px = mono_p_[3 * id], py = mono_p_[3 * id + 1], pz = mono_p_[3 * id + 2];
      const double ax = pw[px], ay = pw[P1 + py], az = pw[2 * P1 + pz];
      if (px) gx += wi * px * pw[px - 1] * ay * az;
      if (py) gy += wi * py * ax * pw[P1 + py - 1] * az;
      if (pz) gz += wi * pz * ax * ay * pw[2 * P1 + pz - 1];
    }
    const double ir = ws.inv_r[j];
    const double* u = &ws.u[3 * j];
    const double radial = s0 - s1 * ir;
    double* out = dE_drij + 3 * static_cast<size_t>(ws.idx[j]);
    out[0] = u[0] * radial + gx * ir;
    out[1] = u[1] * radial + gy * ir;
    out[2] = u[2] * radial + gz * ir;
  }
  return e;
}

double Model::site_energy_param_grad(Workspace& ws, int itype, int n, const double* rij,
                                     const int* jtypes, double weight, double* grad) const {
  const int nn = prepare(ws, itype, n, rij, jtypes, false);
  forward_moments(ws, nn);
  reverse_moments(ws);
  const double* M = ws.M.data();
  const double* g = ws.g.data();
  const int ns = n_scalar();
  double e = species_[itype];
  for (int k = 0; k < ns; ++k) e += moment_[k] * M[map_[k]];
  const int nr = n_radial_params();
  grad[nr + itype] += weight;
  for (int k = 0; k < ns; ++k) grad[nr + S_ + k] += weight * M[map_[k]];
  double* h = ws.wd.data();  // per-mu sums
  for (int j = 0; j < nn; ++j) {
    const double* mono = &ws.mono[static_cast<size_t>(j) * n_mono_];
    std::fill(h, h + R_, 0.0);
    for (int a = 0; a < n_basic_; ++a) h[basic_mu_[a]] += g[a] * mono[basic_mono_[a]];
    const double* Q = &ws.Q[static_cast<size_t>(j) * B_];
    double* gr = grad + (static_cast<size_t>(itype) * S_ + ws.jt[j]) * R_ * B_;
    for (int mu = 0; mu < R_; ++mu) {
      const double hm = weight * h[mu];
      for (int b = 0; b < B_; ++b) gr[mu * B_ + b] += hm * Q[b];
    }
  }
  return e;
}

double Model::site_mixed_param_grad(Workspace& ws, int itype, int n, const double* rij,
                                    const int* jtypes, const double* drij, double alpha,
                                    double beta, double* grad) const {
  const int nn = prepare(ws, itype, n, rij, jtypes, true);
  forward_moments(ws, nn);
  const int P1 = pmax_ + 1;
  // tangent data per neighbour: rdot, mono_dot
  grow(ws.tmp, static_cast<size_t>(nn) * (n_mono_ + 1));
  double* rdot = ws.tmp.data();
  double* mdot = rdot + nn;
  grow(ws.Mt, amc_);
  grow(ws.gt, amc_);
  double* Mt = ws.Mt.data();
  std::fill(Mt, Mt + amc_, 0.0);
  for (int j = 0; j < nn; ++j) {
    const double* dr = drij + 3 * static_cast<size_t>(ws.idx[j]);
    const double* u = &ws.u[3 * j];
    const double ir = ws.inv_r[j];
    const double rd = u[0] * dr[0] + u[1] * dr[1] + u[2] * dr[2];
    rdot[j] = rd;
    const double ux = (dr[0] - u[0] * rd) * ir, uy = (dr[1] - u[1] * rd) * ir,
                 uz = (dr[2] - u[2] * rd) * ir;  // u-dot
    const double* pw = &ws.pw[static_cast<size_t>(j) * 3 * P1];
    double* md = mdot + static_cast<size_t>(j) * n_mono_;
    for (int id = 0; id < n_mono_; ++id) {
      const int px = mono_p_[3 * id], py = mono_p_[3 * id + 1], pz = mono_p_[3 * id + 2];
      const double ax = pw[px], ay = pw[P1 + py], az = pw[2 * P1 + pz];
      double v = 0.0;
      if (px) v += ux * px * pw[px - 1] * ay * az;
      if (py) v += uy * py * ax * pw[P1 + py - 1] * az;
      if (pz) v += uz * pz * ax * ay * pw[2 * P1 + pz - 1];
      md[id] = v;
    }
    const double* f = &ws.f[static_cast<size_t>(j) * R_];
    const double* df = &ws.df[static_cast<size_t>(j) * R_];
    const double* mono = &ws.mono[static_cast<size_t>(j) * n_mono_];
    for (int a = 0; a < n_basic_; ++a) {
      const int mu = basic_mu_[a], id = basic_mono_[a];
      Mt[a] += df[mu] * rd * mono[id] + f[mu] * md[id];
    }
  }
  const double* M = ws.M.data();
  const size_t nt = t_k_.size();
  for (size_t t = 0; t < nt; ++t) {
    const int i = t_i_[t], j = t_j_[t];
    Mt[t_k_[t]] += t_mult_[t] * (Mt[i] * M[j] + M[i] * Mt[j]);
  }
  // adjoints: gb (of M) and gh (of Mt)
  double* gb = ws.g.data();
  double* gh = ws.gt.data();
  std::fill(gb, gb + amc_, 0.0);
  std::fill(gh, gh + amc_, 0.0);
  const int ns = n_scalar();
  double e = species_[itype];
  for (int k = 0; k < ns; ++k) {
    e += moment_[k] * M[map_[k]];
    gb[map_[k]] += alpha * moment_[k];
    gh[map_[k]] += beta * moment_[k];
  }
  for (size_t t = nt; t-- > 0;) {
    const int i = t_i_[t], j = t_j_[t], k = t_k_[t];
    const double m = t_mult_[t];
    const double ghk = gh[k], gbk = gb[k];
    if (ghk == 0.0 && gbk == 0.0) continue;
    gh[i] += m * ghk * M[j];
    gh[j] += m * ghk * M[i];
    gb[i] += m * (gbk * M[j] + ghk * Mt[j]);
    gb[j] += m * (gbk * M[i] + ghk * Mt[i]);
  }
  const int nr = n_radial_params();
  grad[nr + itype] += alpha;
  for (int k = 0; k < ns; ++k) grad[nr + S_ + k] += alpha * M[map_[k]] + beta * Mt[map_[k]];
  double* A = ws.wd.data();  // size >= 2 R
  double* C = A + R_;
  for (int j = 0; j < nn; ++j) {
    const double* mono = &ws.mono[static_cast<size_t>(j) * n_mono_];
    const double* md = mdot + static_cast<size_t>(j) * n_mono_;
    std::fill(A, A + R_, 0.0);
    std::fill(C, C + R_, 0.0);
    for (int a = 0; a < n_basic_; ++a) {
      const int mu = basic_mu_[a], id = basic_mono_[a];
      A[mu] += gb[a] * mono[id] + gh[a] * md[id];
      C[mu] += gh[a] * mono[id];
    }
    const double* Q = &ws.Q[static_cast<size_t>(j) * B_];
    const double* dQ = &ws.dQ[static_cast<size_t>(j) * B_];
    const double rd = rdot[j];
    double* gr = grad + (static_cast<size_t>(itype) * S_ + ws.jt[j]) * R_ * B_;
    for (int mu = 0; mu < R_; ++mu) {
      const double am = A[mu], cm = C[mu] * rd;
      for (int b = 0; b < B_; ++b) gr[mu * B_ + b] += am * Q[b] + cm * dQ[b];
    }
  }
  return e;
}

void Model::site_basis_jacobian(Workspace& ws, int itype, int n, const double* rij,
                                const int* jtypes, double* dB_drij, double* basis_row) const {
  const int nn = prepare(ws, itype, n, rij, jtypes, true);
  const int P1 = pmax_ + 1;
  const size_t L = 3 * static_cast<size_t>(nn);  // derivative vector length
  grow(ws.tmp, static_cast<size_t>(amc_) * L);
  double* dM = ws.tmp.data();
  std::fill(dM, dM + amc_ * L, 0.0);
  double* M = ws.M.data();
  std::fill(M, M + amc_, 0.0);
  for (int j = 0; j < nn; ++j) {
    const double* f = &ws.f[static_cast<size_t>(j) * R_];
    const double* df = &ws.df[static_cast<size_t>(j) * R_];
    const double* mono = &ws.mono[static_cast<size_t>(j) * n_mono_];
    const double* pw = &ws.pw[static_cast<size_t>(j) * 3 * P1];
    const double* u = &ws.u[3 * j];
    const double ir = ws.inv_r[j];
    for (int a = 0; a < n_basic_; ++a) {
      const int mu = basic_mu_[a], id = basic_mono_[a];
      const double m = mono[id];
      M[a] += f[mu] * m;
      const int px = mono_p_[3 * id], py = mono_p_[3 * id + 1], pz = mono_p_[3 * id + 2];
      const double ax = pw[px], ay = pw[P1 + py], az = pw[2 * P1 + pz];
      const double gx = px ? px * pw[px - 1] * ay * az : 0.0;
      const double gy = py ? py * ax * pw[P1 + py - 1] * az : 0.0;
      const double gz = pz ? pz * ax * ay * pw[2 * P1 + pz - 1] : 0.0;
      const double radial = df[mu] * m - f[mu] * mono_k_[id] * m * ir;
      const double fr = f[mu] * ir;
      double* d = dM + a * L + 3 * j;
      d[0] = u[0] * radial + fr * gx;
      d[1] = u[1] * radial + fr * gy;
      d[2] = u[2] * radial + fr * gz;
    }
  }
  const size_t nt = t_k_.size();
  for (size_t t = 0; t < nt; ++t) {
    const int i = t_i_[t], j = t_j_[t], k = t_k_[t];
    const double m = t_mult_[t];
    const double mi = m * M[i], mj = m * M[j];
    M[k] += mi * M[j];
    double* dk = dM + k * L;
    const double* di = dM + i * L;
    const double* dj = dM + j * L;
    for (size_t q = 0; q < L; ++q) dk[q] += mj * di[q] + mi * dj[q];
  }
  const int ns = n_scalar();
  if (basis_row) {
    for (int s = 0; s < S_; ++s) basis_row[s] = (s == itype) ? 1.0 : 0.0;
    for (int k = 0; k < ns; ++k) basis_row[S_ + k] = M[map_[k]];
  }
  if (dB_drij) {
    const size_t row = 3 * static_cast<size_t>(n);
    std::fill(dB_drij, dB_drij + ns * row, 0.0);
    for (int k = 0; k < ns; ++k) {
      const double* d = dM + map_[k] * L;
      double* out = dB_drij + k * row;
      for (int j = 0; j < nn; ++j) {
        const size_t o = 3 * static_cast<size_t>(ws.idx[j]);
        out[o] = d[3 * j];
        out[o + 1] = d[3 * j + 1];
        out[o + 2] = d[3 * j + 2];
      }
    }
  }
}

}  // namespace mtpkit
