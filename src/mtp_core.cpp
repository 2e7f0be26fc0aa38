// mtpkit compiled core: per-site MTP kernels (see mtp_core.hpp for the math).
#include "mtp_core.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <tuple>

#include "omp_errors.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace mtpkit {

int core_version() { return 2; }

std::atomic<int> g_failpoint_where{0};
std::atomic<int64_t> g_failpoint_index{-1};

void set_failpoint(Failpoint where, int64_t index) {
  g_failpoint_index.store(index, std::memory_order_relaxed);
  g_failpoint_where.store(static_cast<int>(where), std::memory_order_relaxed);
}

void throw_failpoint(Failpoint where, int64_t index) {
  const char* name = where == Failpoint::site ? "site" : "neighbor";
  throw std::runtime_error("injected fault (" + std::string(name) + " " + std::to_string(index) +
                           ")");
}

namespace {
template <class T>
inline void grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}
// the values of one pair in a by-quantity table (Workspace layout): row i at p[i * s]
struct Col {
  const double* p;
  size_t s;
  double operator[](size_t i) const { return p[i * s]; }
};
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
  auto intern = [&](int px, int py, int pz) {
    auto key = std::make_tuple(px, py, pz);
    auto it = mono_id.find(key);
    if (it != mono_id.end()) return it->second;
    const int id = static_cast<int>(ext_p_.size() / 3);
    mono_id.emplace(key, id);
    ext_p_.insert(ext_p_.end(), {px, py, pz});
    return id;
  };
  basic_mu_.resize(n_basic_);
  basic_mono_.resize(n_basic_);
  for (int a = 0; a < n_basic_; ++a) {
    int mu = s.alpha_index_basic[4 * a], px = s.alpha_index_basic[4 * a + 1],
        py = s.alpha_index_basic[4 * a + 2], pz = s.alpha_index_basic[4 * a + 3];
    if (mu < 0 || mu >= R_) fail("alpha_index_basic radial function index out of range");
    if (px < 0 || py < 0 || pz < 0) fail("alpha_index_basic negative power");
    pmax_ = std::max({pmax_, px, py, pz});
    basic_mu_[a] = mu;
    basic_mono_[a] = intern(px, py, pz);
  }
  n_mono_ = static_cast<int>(ext_p_.size() / 3);
  dlow_.assign(3 * static_cast<size_t>(n_mono_), 0);
  dcoef_.assign(3 * static_cast<size_t>(n_mono_), 0.0);
  mono_k_.resize(n_mono_);
  for (int id = 0; id < n_mono_; ++id) {
    const int p[3] = {ext_p_[3 * id], ext_p_[3 * id + 1], ext_p_[3 * id + 2]};
    mono_k_[id] = p[0] + p[1] + p[2];
    for (int c = 0; c < 3; ++c) {
      if (p[c] == 0) continue;
      int q[3] = {p[0], p[1], p[2]};
      --q[c];
      dlow_[3 * id + c] = intern(q[0], q[1], q[2]);
      dcoef_[3 * id + c] = p[c];
    }
  }
  n_ext_ = static_cast<int>(ext_p_.size() / 3);
  mu_start_.assign(R_ + 1, 0);
  for (int a = 0; a < n_basic_; ++a) ++mu_start_[basic_mu_[a] + 1];
  for (int mu = 0; mu < R_; ++mu) mu_start_[mu + 1] += mu_start_[mu];
  by_mu_a_.resize(n_basic_);
  by_mu_mono_.resize(n_basic_);
  {
    std::vector<int> fill(mu_start_.begin(), mu_start_.end() - 1);
    for (int a = 0; a < n_basic_; ++a) {
      const int q = fill[basic_mu_[a]]++;
      by_mu_a_[q] = a;
      by_mu_mono_[q] = basic_mono_[a];
    }
  }
  const size_t nt = s.alpha_index_times.size() / 4;
  trow_.resize(nt);
  for (size_t t = 0; t < nt; ++t) {
    int i = s.alpha_index_times[4 * t], j = s.alpha_index_times[4 * t + 1],
        m = s.alpha_index_times[4 * t + 2], k = s.alpha_index_times[4 * t + 3];
    if (i < 0 || j < 0 || k < 0 || i >= amc_ || j >= amc_ || k >= amc_)
      fail("alpha_index_times index out of range");
    if (k < n_basic_) fail("alpha_index_times writes into a basic moment");
    if (i == k || j == k) fail("alpha_index_times row reads its own output moment");
    trow_[t] = TimesRow{i, j, static_cast<double>(m)};
    if (t == 0 || k != grp_k_.back()) {
      grp_k_.push_back(k);
      grp_start_.push_back(static_cast<int>(t));
    }
  }
  grp_start_.push_back(static_cast<int>(nt));
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
// Layout: see Workspace (row q, pair j at [q * ws.P + j]). Every per-pair value
// is computed with the same operations in the same order as a scalar loop over
// the pairs would, so the results do not depend on the blocking.
int Model::prepare(Workspace& ws, int itype, int n, const double* rij, const int* jtypes,
                   bool /*need_derivs*/) const {
  constexpr int K = kPairBlock;
  const int P1 = pmax_ + 1;
  const size_t cap = static_cast<size_t>(n) + K;  // room for the padding
  grow(ws.x, 3 * cap);
  grow(ws.jt, cap);
  grow(ws.idx, cap);
  grow(ws.M, amc_);
  grow(ws.g, amc_);
  grow(ws.w, 2 * static_cast<size_t>(n_mono_));
  grow(ws.wd, 2 * static_cast<size_t>(std::max(n_mono_, R_)));

  const double rc = max_dist_;
  const double rc2 = rc * rc;
  // in-cutoff pairs, compacted without branches (rows x, y, z of stride cap)
  double* X = ws.x.data();
  double* Y = X + cap;
  double* Z = Y + cap;
  int* jt = ws.jt.data();
  int* idx = ws.idx.data();
  int nn = 0;
  for (int jj = 0; jj < n; ++jj) {
    const double x = rij[3 * jj], y = rij[3 * jj + 1], z = rij[3 * jj + 2];
    const double r2 = x * x + y * y + z * z;
    X[nn] = x;
    Y[nn] = y;
    Z[nn] = z;
    jt[nn] = jtypes[jj];
    idx[nn] = jj;
    nn += (r2 < rc2) ? 1 : 0;
  }
  const int P = (nn + K - 1) / K * K;
  ws.P = P;
  for (int j = nn; j < P; ++j) {  // dummy pairs at half the cutoff
    X[j] = 0.5 * rc;
    Y[j] = 0.0;
    Z[j] = 0.0;
    jt[j] = 0;
    idx[j] = -1;
  }
  const size_t Pz = static_cast<size_t>(P);
  grow(ws.r, Pz);
  grow(ws.inv_r, Pz);
  grow(ws.u, 3 * Pz);
  grow(ws.f, Pz * R_);
  grow(ws.df, Pz * R_);
  grow(ws.Q, Pz * B_);
  grow(ws.dQ, Pz * B_);
  grow(ws.mono, Pz * n_ext_);
  grow(ws.pw, Pz * 3 * P1);
  double* rr = ws.r.data();
  double* ir_ = ws.inv_r.data();
  double* U = ws.u.data();
  for (int j = 0; j < P; ++j) {
    const double x = X[j], y = Y[j], z = Z[j];
    const double r = std::sqrt(x * x + y * y + z * z);
    const double ir = 1.0 / r;
    rr[j] = r;
    ir_[j] = ir;
    U[j] = x * ir;
    U[P + j] = y * ir;
    U[2 * P + j] = z * ir;
  }
  // powers of the unit vector components, then the monomials
  double* pw = ws.pw.data();
  for (int c = 0; c < 3; ++c) {
    double* pc = pw + static_cast<size_t>(c) * P1 * P;
    const double* uc = U + static_cast<size_t>(c) * P;
    for (int j = 0; j < P; ++j) pc[j] = 1.0;
    for (int e = 1; e < P1; ++e)
      for (int j = 0; j < P; ++j) pc[e * Pz + j] = pc[(e - 1) * Pz + j] * uc[j];
  }
  const int* ep = ext_p_.data();
  double* mono = ws.mono.data();
  for (int id = 0; id < n_ext_; ++id) {
    const double* px = pw + static_cast<size_t>(ep[3 * id]) * P;
    const double* py = pw + static_cast<size_t>(P1 + ep[3 * id + 1]) * P;
    const double* pz = pw + static_cast<size_t>(2 * P1 + ep[3 * id + 2]) * P;
    double* m = mono + static_cast<size_t>(id) * P;
    for (int j = 0; j < P; ++j) m[j] = px[j] * py[j] * pz[j];
  }
  // radial basis Q_b, dQ_b/dr and radial functions f_mu, df_mu/dr, K pairs at a time
  const double span = max_dist_ - min_dist_;
  const double dxi = 2.0 / span;
  const double mid = min_dist_ + max_dist_;
  double* Qb = ws.Q.data();
  double* dQb = ws.dQ.data();
  double* fb = ws.f.data();
  double* dfb = ws.df.data();
  const size_t RB = static_cast<size_t>(R_) * B_;
  const double* cbase = &radial_[static_cast<size_t>(itype) * S_ * RB];
  for (int j0 = 0; j0 < P; j0 += K) {
    double xi[K], sm[K], dsm[K], t0[K], t1[K], dt0[K], dt1[K];
    for (int l = 0; l < K; ++l) {
      const double r = rr[j0 + l];
      xi[l] = (2.0 * r - mid) / span;
      const double d = rc - r;
      sm[l] = scaling_ * d * d;
      dsm[l] = -2.0 * scaling_ * d;
      t0[l] = 1.0;
      t1[l] = xi[l];
      dt0[l] = 0.0;
      dt1[l] = dxi;
      Qb[j0 + l] = sm[l];
      dQb[j0 + l] = dsm[l];
    }
    if (B_ > 1)
      for (int l = 0; l < K; ++l) {
        Qb[Pz + j0 + l] = t1[l] * sm[l];
        dQb[Pz + j0 + l] = dt1[l] * sm[l] + t1[l] * dsm[l];
      }
    for (int b = 2; b < B_; ++b) {
      double* Qr = Qb + b * Pz + j0;
      double* dQr = dQb + b * Pz + j0;
      for (int l = 0; l < K; ++l) {
        const double t2 = 2.0 * xi[l] * t1[l] - t0[l];
        const double dt2 = 2.0 * (dxi * t1[l] + xi[l] * dt1[l]) - dt0[l];
        Qr[l] = t2 * sm[l];
        dQr[l] = dt2 * sm[l] + t2 * dsm[l];
        t0[l] = t1[l];
        t1[l] = t2;
        dt0[l] = dt1[l];
        dt1[l] = dt2;
      }
    }
    const double* cp[K];
    for (int l = 0; l < K; ++l) cp[l] = cbase + static_cast<size_t>(jt[j0 + l]) * RB;
    for (int mu = 0; mu < R_; ++mu) {
      double sv[K], sd[K];
      for (int l = 0; l < K; ++l) sv[l] = sd[l] = 0.0;
      for (int b = 0; b < B_; ++b) {
        const double* Qr = Qb + b * Pz + j0;
        const double* dQr = dQb + b * Pz + j0;
        for (int l = 0; l < K; ++l) {
          const double c = cp[l][mu * B_ + b];
          sv[l] += c * Qr[l];
          sd[l] += c * dQr[l];
        }
      }
      for (int l = 0; l < K; ++l) {
        fb[mu * Pz + j0 + l] = sv[l];
        dfb[mu * Pz + j0 + l] = sd[l];
      }
    }
  }
  return nn;
}

void Model::basic_moments(const Workspace& ws, int nn, double* M, int L) const {
  // M_a += f_mu(r_j) * mono_a(u_j) over the pairs in order, four moments at a
  // time (independent sums, so the additions overlap)
  constexpr int K = 4;
  const size_t P = static_cast<size_t>(ws.P);
  const double* f = ws.f.data();
  const double* mono = ws.mono.data();
  const int* ba = by_mu_a_.data();
  const int* bm = by_mu_mono_.data();
  const int* mu_of = basic_mu_.data();
  for (int q0 = 0; q0 < n_basic_; q0 += K) {
    const int kc = std::min(K, n_basic_ - q0);
    double acc[K];
    const double* fp[K];
    const double* mp[K];
    for (int k = 0; k < K; ++k) {
      const int q = q0 + std::min(k, kc - 1);
      acc[k] = M[ba[q] * L];
      fp[k] = f + static_cast<size_t>(mu_of[ba[q]]) * P;
      mp[k] = mono + static_cast<size_t>(bm[q]) * P;
    }
    for (int j = 0; j < nn; ++j)
      for (int k = 0; k < K; ++k) acc[k] += fp[k][j] * mp[k][j];
    for (int k = 0; k < kc; ++k) M[ba[q0 + k] * L] = acc[k];
  }
}

template <int L>
void Model::times_forward(double* M) const {
  const int ng = static_cast<int>(grp_k_.size());
  const TimesRow* tr = trow_.data();
  for (int gi = 0; gi < ng; ++gi) {
    double acc[L];
    for (int s = 0; s < L; ++s) acc[s] = 0.0;
    for (int t = grp_start_[gi]; t < grp_start_[gi + 1]; ++t) {
      const double m = tr[t].mult;
      const double* mi = M + tr[t].i * L;
      const double* mj = M + tr[t].j * L;
      for (int s = 0; s < L; ++s) acc[s] += m * mi[s] * mj[s];
    }
    double* mk = M + grp_k_[gi] * L;
    for (int s = 0; s < L; ++s) mk[s] += acc[s];
  }
}

template <int L>
void Model::times_reverse(const double* M, double* g) const {
  const TimesRow* tr = trow_.data();
  for (int gi = static_cast<int>(grp_k_.size()); gi-- > 0;) {
    double gk[L];
    bool any = false;
    for (int s = 0; s < L; ++s) {
      gk[s] = g[grp_k_[gi] * L + s];
      any |= (gk[s] != 0.0);
    }
    if (!any) continue;
    for (int t = grp_start_[gi + 1]; t-- > grp_start_[gi];) {
      const double m = tr[t].mult;
      double* gi_ = g + tr[t].i * L;
      double* gj_ = g + tr[t].j * L;
      const double* mi = M + tr[t].i * L;
      const double* mj = M + tr[t].j * L;
      for (int s = 0; s < L; ++s) {
        const double c = m * gk[s];
        gi_[s] += c * mj[s];
        gj_[s] += c * mi[s];
      }
    }
  }
}

template <int L>
void Model::times_forward_tangent(double* M, double* Mt) const {
  const TimesRow* tr = trow_.data();
  const int ng = static_cast<int>(grp_k_.size());
  for (int gi = 0; gi < ng; ++gi) {
    double acc[L], acct[L];
    for (int s = 0; s < L; ++s) acc[s] = acct[s] = 0.0;
    for (int t = grp_start_[gi]; t < grp_start_[gi + 1]; ++t) {
      const double m = tr[t].mult;
      const double* mi = M + tr[t].i * L;
      const double* mj = M + tr[t].j * L;
      const double* ti = Mt + tr[t].i * L;
      const double* tj = Mt + tr[t].j * L;
      for (int s = 0; s < L; ++s) {
        acc[s] += m * mi[s] * mj[s];
        acct[s] += m * (ti[s] * mj[s] + mi[s] * tj[s]);
      }
    }
    double* mk = M + grp_k_[gi] * L;
    double* tk = Mt + grp_k_[gi] * L;
    for (int s = 0; s < L; ++s) {
      mk[s] += acc[s];
      tk[s] += acct[s];
    }
  }
}

template <int L>
void Model::times_reverse_mixed(const double* M, const double* Mt, double* gb, double* gh) const {
  const TimesRow* tr = trow_.data();
  for (int gi = static_cast<int>(grp_k_.size()); gi-- > 0;) {
    const int k = grp_k_[gi];
    double ghk[L], gbk[L];
    bool any = false;
    for (int s = 0; s < L; ++s) {
      ghk[s] = gh[k * L + s];
      gbk[s] = gb[k * L + s];
      any |= (ghk[s] != 0.0) || (gbk[s] != 0.0);
    }
    if (!any) continue;
    for (int t = grp_start_[gi + 1]; t-- > grp_start_[gi];) {
      const int i = tr[t].i, j = tr[t].j;
      const double m = tr[t].mult;
      for (int s = 0; s < L; ++s) {
        const double mi = M[i * L + s], mj = M[j * L + s];
        const double ti = Mt[i * L + s], tj = Mt[j * L + s];
        gh[i * L + s] += m * ghk[s] * mj;
        gh[j * L + s] += m * ghk[s] * mi;
        gb[i * L + s] += m * (gbk[s] * mj + ghk[s] * tj);
        gb[j * L + s] += m * (gbk[s] * mi + ghk[s] * ti);
      }
    }
  }
}

void Model::forward_moments(Workspace& ws, int nn) const {
  double* M = ws.M.data();
  std::fill(M, M + amc_, 0.0);
  basic_moments(ws, nn, M, 1);
  times_forward<1>(M);
}

// g = dE/dM (adjoint of the moment values); requires ws.M from forward_moments.
void Model::reverse_moments(Workspace& ws) const {
  double* g = ws.g.data();
  std::fill(g, g + amc_, 0.0);
  const int ns = n_scalar();
  for (int k = 0; k < ns; ++k) g[map_[k]] += moment_[k];
  times_reverse<1>(ws.M.data(), g);
}

// dE/dr_ij from the moment adjoints g[a * L] (basic moments only).
void Model::neighbor_gradients(Workspace& ws, int nn, const double* g, int L, int n,
                               double* dE_drij) const {
  constexpr int K = kPairBlock;
  std::fill(dE_drij, dE_drij + 3 * static_cast<size_t>(n), 0.0);
  const int* ba = by_mu_a_.data();
  const int* bm = by_mu_mono_.data();
  const int* dl = dlow_.data();
  const double* dc = dcoef_.data();
  const double* kd = mono_k_.data();
  // adjoints of the basic moments as a dense (mu, monomial) table
  const int nm = n_mono_;
  grow(ws.gt, static_cast<size_t>(R_) * nm);
  double* G = ws.gt.data();
  std::fill(G, G + static_cast<size_t>(R_) * nm, 0.0);
  for (int mu = 0; mu < R_; ++mu)
    for (int q = mu_start_[mu]; q < mu_start_[mu + 1]; ++q) G[mu * nm + bm[q]] += g[ba[q] * L];
  const size_t P = static_cast<size_t>(ws.P);
  const double* f = ws.f.data();
  const double* df = ws.df.data();
  const double* mono = ws.mono.data();
  const double* U = ws.u.data();
  const double* IR = ws.inv_r.data();
  const int* idx = ws.idx.data();
  // per pair j: w_m = sum_mu f_mu G[mu][m], wd_m = sum_mu f'_mu G[mu][m];
  // s0 = sum_m wd_m mono_m, s1 = sum_m w_m k_m mono_m, g_c = sum_m w_m p_c mono_{m - e_c}
  // (terms with k_m = 0 or p_c = 0 are exactly zero and skipped)
  for (int j0 = 0; j0 < nn; j0 += K) {
    double s0[K], s1[K], gx[K], gy[K], gz[K];
    for (int l = 0; l < K; ++l) s0[l] = s1[l] = gx[l] = gy[l] = gz[l] = 0.0;
    for (int id = 0; id < nm; ++id) {
      double w[K], wd[K];
      {
        const double G0 = G[id];
        const double* f0 = f + j0;
        const double* d0 = df + j0;
        for (int l = 0; l < K; ++l) {
          w[l] = f0[l] * G0;
          wd[l] = d0[l] * G0;
        }
      }
      for (int mu = 1; mu < R_; ++mu) {
        const double Gm = G[mu * nm + id];
        const double* fm = f + mu * P + j0;
        const double* dfm = df + mu * P + j0;
        for (int l = 0; l < K; ++l) {
          w[l] += fm[l] * Gm;
          wd[l] += dfm[l] * Gm;
        }
      }
      const double* m = mono + id * P + j0;
      for (int l = 0; l < K; ++l) s0[l] += wd[l] * m[l];
      if (kd[id] != 0.0) {
        const double k = kd[id];
        for (int l = 0; l < K; ++l) s1[l] += w[l] * k * m[l];
      }
      if (dc[3 * id] != 0.0) {
        const double c = dc[3 * id];
        const double* ml = mono + dl[3 * id] * P + j0;
        for (int l = 0; l < K; ++l) gx[l] += w[l] * c * ml[l];
      }
      if (dc[3 * id + 1] != 0.0) {
        const double c = dc[3 * id + 1];
        const double* ml = mono + dl[3 * id + 1] * P + j0;
        for (int l = 0; l < K; ++l) gy[l] += w[l] * c * ml[l];
      }
      if (dc[3 * id + 2] != 0.0) {
        const double c = dc[3 * id + 2];
        const double* ml = mono + dl[3 * id + 2] * P + j0;
        for (int l = 0; l < K; ++l) gz[l] += w[l] * c * ml[l];
      }
    }
    const int lc = std::min(K, nn - j0);
    for (int l = 0; l < lc; ++l) {
      const int j = j0 + l;
      const double ir = IR[j];
      const double radial = s0[l] - s1[l] * ir;
      double* out = dE_drij + 3 * static_cast<size_t>(idx[j]);
      out[0] = U[j] * radial + gx[l] * ir;
      out[1] = U[P + j] * radial + gy[l] * ir;
      out[2] = U[2 * P + j] * radial + gz[l] * ir;
    }
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
  reverse_moments(ws);
  neighbor_gradients(ws, nn, ws.g.data(), 1, n, dE_drij);
  return e;
}

void Model::site_energies(BatchWorkspace& bw, int nsites, const int* itype, const int* n,
                          const double* const* rij, const int* const* jtypes,
                          double* const* dE_drij, double* energies) const {
  constexpr int L = kLanes;
  int nn[L];
  grow(bw.M, static_cast<size_t>(amc_) * L);
  grow(bw.g, static_cast<size_t>(amc_) * L);
  double* M = bw.M.data();
  std::fill(M, M + static_cast<size_t>(amc_) * L, 0.0);
  for (int s = 0; s < nsites; ++s) {
    nn[s] = prepare(bw.lane[s], itype[s], n[s], rij[s], jtypes[s], dE_drij != nullptr);
    basic_moments(bw.lane[s], nn[s], M + s, L);
  }
  times_forward<L>(M);
  const int ns = n_scalar();
  for (int s = 0; s < nsites; ++s) {
    double e = species_[itype[s]];
    for (int k = 0; k < ns; ++k) e += moment_[k] * M[map_[k] * L + s];
    energies[s] = e;
  }
  if (!dE_drij) return;
  double* g = bw.g.data();
  std::fill(g, g + static_cast<size_t>(amc_) * L, 0.0);
  for (int k = 0; k < ns; ++k)
    for (int s = 0; s < nsites; ++s) g[map_[k] * L + s] += moment_[k];
  times_reverse<L>(M, g);
  for (int s = 0; s < nsites; ++s) neighbor_gradients(bw.lane[s], nn[s], g + s, L, n[s], dE_drij[s]);
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
  const int* ba = by_mu_a_.data();
  const int* bm = by_mu_mono_.data();
  const size_t P = static_cast<size_t>(ws.P);
  for (int j = 0; j < nn; ++j) {
    const Col mono{&ws.mono[j], P};
    const Col Q{&ws.Q[j], P};
    double* gr = grad + (static_cast<size_t>(itype) * S_ + ws.jt[j]) * R_ * B_;
    for (int mu = 0; mu < R_; ++mu) {
      double h = 0.0;
      for (int q = mu_start_[mu]; q < mu_start_[mu + 1]; ++q) h += g[ba[q]] * mono[bm[q]];
      h *= weight;
      for (int b = 0; b < B_; ++b) gr[mu * B_ + b] += h * Q[b];
    }
  }
  return e;
}

// Basic moments and their tangents along drij; keeps r-dot and monomial dots
// in ws.tmp for mixed_radial_grad.
void Model::basic_moments_tangent(Workspace& ws, int nn, const double* drij, double* M,
                                  double* Mt, int L) const {
  grow(ws.tmp, static_cast<size_t>(nn) * (n_mono_ + 1));
  double* rdot = ws.tmp.data();
  double* mdot = rdot + nn;
  const int* ba = by_mu_a_.data();
  const int* bm = by_mu_mono_.data();
  const int* dl = dlow_.data();
  const double* dc = dcoef_.data();
  const size_t P = static_cast<size_t>(ws.P);
  for (int j = 0; j < nn; ++j) {
    const double* dr = drij + 3 * static_cast<size_t>(ws.idx[j]);
    const Col u{&ws.u[j], P};
    const double ir = ws.inv_r[j];
    const double rd = u[0] * dr[0] + u[1] * dr[1] + u[2] * dr[2];
    rdot[j] = rd;
    const double ux = (dr[0] - u[0] * rd) * ir, uy = (dr[1] - u[1] * rd) * ir,
                 uz = (dr[2] - u[2] * rd) * ir;  // u-dot
    const Col mono{&ws.mono[j], P};
    double* md = mdot + static_cast<size_t>(j) * n_mono_;
    for (int id = 0; id < n_mono_; ++id)
      md[id] = ux * dc[3 * id] * mono[dl[3 * id]] + uy * dc[3 * id + 1] * mono[dl[3 * id + 1]] +
               uz * dc[3 * id + 2] * mono[dl[3 * id + 2]];
    const Col f{&ws.f[j], P};
    const Col df{&ws.df[j], P};
    for (int mu = 0; mu < R_; ++mu) {
      const double fm = f[mu], tm = df[mu] * rd;
      for (int q = mu_start_[mu]; q < mu_start_[mu + 1]; ++q) {
        const int a = ba[q], id = bm[q];
        M[a * L] += fm * mono[id];
        Mt[a * L] += tm * mono[id] + fm * md[id];
      }
    }
  }
}

// Radial-coefficient part of the mixed gradient from adjoints gb, gh (stride L).
void Model::mixed_radial_grad(const Workspace& ws, int nn, int itype, const double* gb,
                              const double* gh, int L, double* grad) const {
  const double* rdot = ws.tmp.data();
  const double* mdot = rdot + nn;
  const int* ba = by_mu_a_.data();
  const int* bm = by_mu_mono_.data();
  const size_t P = static_cast<size_t>(ws.P);
  for (int j = 0; j < nn; ++j) {
    const Col mono{&ws.mono[j], P};
    const double* md = mdot + static_cast<size_t>(j) * n_mono_;
    const Col Q{&ws.Q[j], P};
    const Col dQ{&ws.dQ[j], P};
    const double rd = rdot[j];
    double* gr = grad + (static_cast<size_t>(itype) * S_ + ws.jt[j]) * R_ * B_;
    for (int mu = 0; mu < R_; ++mu) {
      double A = 0.0, C = 0.0;
      for (int q = mu_start_[mu]; q < mu_start_[mu + 1]; ++q) {
        const int a = ba[q] * L, id = bm[q];
        A += gb[a] * mono[id] + gh[a] * md[id];
        C += gh[a] * mono[id];
      }
      C *= rd;
      for (int b = 0; b < B_; ++b) gr[mu * B_ + b] += A * Q[b] + C * dQ[b];
    }
  }
}

double Model::site_mixed_param_grad(Workspace& ws, int itype, int n, const double* rij,
                                    const int* jtypes, const double* drij, double alpha,
                                    double beta, double* grad) const {
  const int nn = prepare(ws, itype, n, rij, jtypes, true);
  grow(ws.Mt, amc_);
  grow(ws.gt, amc_);
  double* M = ws.M.data();
  double* Mt = ws.Mt.data();
  std::fill(M, M + amc_, 0.0);
  std::fill(Mt, Mt + amc_, 0.0);
  basic_moments_tangent(ws, nn, drij, M, Mt, 1);
  times_forward_tangent<1>(M, Mt);
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
  times_reverse_mixed<1>(M, Mt, gb, gh);
  const int nr = n_radial_params();
  grad[nr + itype] += alpha;
  for (int k = 0; k < ns; ++k) grad[nr + S_ + k] += alpha * M[map_[k]] + beta * Mt[map_[k]];
  mixed_radial_grad(ws, nn, itype, gb, gh, 1, grad);
  return e;
}

void Model::site_mixed_param_grads(BatchWorkspace& bw, int nsites, const int* itype,
                                   const int* n, const double* const* rij,
                                   const int* const* jtypes, const double* const* drij,
                                   const double* alpha, const double* beta,
                                   double* grad) const {
  constexpr int L = kLanes;
  const size_t sz = static_cast<size_t>(amc_) * L;
  grow(bw.M, sz);
  grow(bw.Mt, sz);
  grow(bw.g, sz);
  grow(bw.gt, sz);
  double* M = bw.M.data();
  double* Mt = bw.Mt.data();
  std::fill(M, M + sz, 0.0);
  std::fill(Mt, Mt + sz, 0.0);
  int nn[L];
  for (int s = 0; s < nsites; ++s) {
    nn[s] = prepare(bw.lane[s], itype[s], n[s], rij[s], jtypes[s], true);
    basic_moments_tangent(bw.lane[s], nn[s], drij[s], M + s, Mt + s, L);
  }
  times_forward_tangent<L>(M, Mt);
  double* gb = bw.g.data();
  double* gh = bw.gt.data();
  std::fill(gb, gb + sz, 0.0);
  std::fill(gh, gh + sz, 0.0);
  const int ns = n_scalar();
  for (int k = 0; k < ns; ++k)
    for (int s = 0; s < nsites; ++s) {
      gb[map_[k] * L + s] += alpha[s] * moment_[k];
      gh[map_[k] * L + s] += beta[s] * moment_[k];
    }
  times_reverse_mixed<L>(M, Mt, gb, gh);
  const int nr = n_radial_params();
  for (int s = 0; s < nsites; ++s) {
    grad[nr + itype[s]] += alpha[s];
    for (int k = 0; k < ns; ++k)
      grad[nr + S_ + k] += alpha[s] * M[map_[k] * L + s] + beta[s] * Mt[map_[k] * L + s];
    mixed_radial_grad(bw.lane[s], nn[s], itype[s], gb + s, gh + s, L, grad);
  }
}

void Model::site_basis_jacobian(Workspace& ws, int itype, int n, const double* rij,
                                const int* jtypes, double* dB_drij, double* basis_row) const {
  const int nn = prepare(ws, itype, n, rij, jtypes, true);
  const size_t L = 3 * static_cast<size_t>(nn);  // derivative vector length
  grow(ws.tmp, static_cast<size_t>(amc_) * L);
  double* dM = ws.tmp.data();
  std::fill(dM, dM + amc_ * L, 0.0);
  double* M = ws.M.data();
  std::fill(M, M + amc_, 0.0);
  const int* dl = dlow_.data();
  const double* dc = dcoef_.data();
  const size_t P = static_cast<size_t>(ws.P);
  for (int j = 0; j < nn; ++j) {
    const Col f{&ws.f[j], P};
    const Col df{&ws.df[j], P};
    const Col mono{&ws.mono[j], P};
    const Col u{&ws.u[j], P};
    const double ir = ws.inv_r[j];
    for (int a = 0; a < n_basic_; ++a) {
      const int mu = basic_mu_[a], id = basic_mono_[a];
      const double m = mono[id];
      M[a] += f[mu] * m;
      const double gx = dc[3 * id] * mono[dl[3 * id]];
      const double gy = dc[3 * id + 1] * mono[dl[3 * id + 1]];
      const double gz = dc[3 * id + 2] * mono[dl[3 * id + 2]];
      const double radial = df[mu] * m - f[mu] * mono_k_[id] * m * ir;
      const double fr = f[mu] * ir;
      double* d = dM + a * L + 3 * j;
      d[0] = u[0] * radial + fr * gx;
      d[1] = u[1] * radial + fr * gy;
      d[2] = u[2] * radial + fr * gz;
    }
  }
  const size_t nt = trow_.size();
  const int ng = static_cast<int>(grp_k_.size());
  (void)nt;
  for (int gi = 0; gi < ng; ++gi) {
    const int k = grp_k_[gi];
    double* dk = dM + k * L;
    double acc = 0.0;
    for (int t = grp_start_[gi]; t < grp_start_[gi + 1]; ++t) {
      const int i = trow_[t].i, j = trow_[t].j;
      const double m = trow_[t].mult;
      const double mi = m * M[i], mj = m * M[j];
      acc += mi * M[j];
      const double* di = dM + i * L;
      const double* dj = dM + j * L;
      for (size_t q = 0; q < L; ++q) dk[q] += mj * di[q] + mi * dj[q];
    }
    M[k] += acc;
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

void packed_site_energies(const Model& model, int64_t nsites, const int* site_types,
                          const int64_t* offsets, const int* pair_types, const double* rij,
                          double* site_e, double* pair_grad,
                          std::vector<BatchWorkspace>& workspaces, int nthreads) {
  const int64_t nbatch = (nsites + kLanes - 1) / kLanes;
#if defined(_OPENMP)
  int nt = nthreads > 0 ? nthreads : omp_get_max_threads();
#else
  int nt = 1;
#endif
  nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nt, nbatch)));
  if (static_cast<int>(workspaces.size()) < nt) workspaces.resize(nt);
  // a workspace growing inside the region can throw std::bad_alloc: caught per
  // batch, re-thrown after the region
  OmpErrors errors;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(nt) schedule(dynamic, 2)
#endif
  for (int64_t bt = 0; bt < nbatch; ++bt) {
    errors.run([&] {
#if defined(_OPENMP)
      BatchWorkspace& bw = workspaces[omp_get_thread_num()];
#else
      BatchWorkspace& bw = workspaces[0];
#endif
      const int64_t s0 = bt * kLanes;
      const int ns = static_cast<int>(std::min<int64_t>(kLanes, nsites - s0));
      failpoint(Failpoint::site, s0, s0 + ns);
      int it[kLanes], cnt[kLanes];
      const double* r[kLanes];
      const int* jp[kLanes];
      double* g[kLanes];
      for (int l = 0; l < ns; ++l) {
        const int64_t o = offsets[s0 + l];
        it[l] = site_types[s0 + l];
        cnt[l] = static_cast<int>(offsets[s0 + l + 1] - o);
        r[l] = rij + 3 * o;
        jp[l] = pair_types + o;
        g[l] = pair_grad ? pair_grad + 3 * o : nullptr;
      }
      model.site_energies(bw, ns, it, cnt, r, jp, pair_grad ? g : nullptr, site_e + s0);
    });
  }
  errors.rethrow();
}

}  // namespace mtpkit
