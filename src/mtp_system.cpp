// Whole-configuration evaluation, training-set loss and gradients.
#include "mtp_system.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace mtpkit {

namespace {

constexpr int64_t kChunk = 32;  // atoms per gradient partial sum (thread-count independent)

void check_types(const Model& model, int64_t n, const int* types) {
  for (int64_t i = 0; i < n; ++i)
    if (types[i] < 0 || types[i] >= model.species_count())
      throw std::invalid_argument("atom " + std::to_string(i) + " has type " +
                                  std::to_string(types[i]) + " outside 0.." +
                                  std::to_string(model.species_count() - 1));
}

// Sum of per-chunk partial vectors (length len) in chunk order into out.
void reduce_chunks(const std::vector<double>& parts, int64_t nchunks, int64_t len, double* out) {
  std::fill(out, out + len, 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t q = 0; q < len; ++q) {
    double s = 0.0;
    for (int64_t c = 0; c < nchunks; ++c) s += parts[c * len + q];
    out[q] = s;
  }
}

// Site energies and pair gradients for atoms [0, n) of a packed pair list.
void sites_and_pair_grads(const Model& model, int64_t n, const int* types,
                          const int64_t* offsets, const int* pj, const double* rij,
                          double* site_e, double* pair_grad) {
  std::vector<int> pair_types(static_cast<size_t>(offsets[n]));
  for (int64_t p = 0; p < offsets[n]; ++p) pair_types[p] = types[pj[p]];
  std::vector<BatchWorkspace> workspaces;
  packed_site_energies(model, n, types, offsets, pair_types.data(), rij, site_e, pair_grad,
                       workspaces);
}

// Forces and virial of atoms [a0, a1) from pair gradients (serial, fixed order).
void accumulate_fv(int64_t a0, int64_t a1, const int64_t* offsets, const int* pj,
                   const double* rij, const double* pair_grad, int64_t atom_base,
                   double* forces, double* virial) {
  std::fill(virial, virial + 9, 0.0);
  for (int64_t i = a0; i < a1; ++i) {
    for (int64_t p = offsets[i]; p < offsets[i + 1]; ++p) {
      const double* g = pair_grad + 3 * p;
      const double* r = rij + 3 * p;
      const int64_t j = pj[p] - atom_base;
      const int64_t il = i - a0;
      for (int a = 0; a < 3; ++a) {
        forces[3 * il + a] += g[a];
        forces[3 * j + a] -= g[a];
        for (int b = 0; b < 3; ++b) virial[3 * a + b] -= g[a] * r[b];
      }
    }
  }
}

}  // namespace

EFS evaluate(const Model& model, const NeighborList& nl, const int* types) {
  const int64_t n = nl.n_atoms;
  check_types(model, n, types);
  if (nl.cutoff < model.cutoff())
    throw std::invalid_argument("neighbour list cutoff is smaller than the model cutoff");
  EFS out;
  out.site_energies.assign(n, 0.0);
  out.forces.assign(3 * n, 0.0);
  out.virial.assign(9, 0.0);
  std::vector<double> pg(3 * static_cast<size_t>(nl.n_pairs()));
  sites_and_pair_grads(model, n, types, nl.offsets.data(), nl.j.data(), nl.rij.data(),
                       out.site_energies.data(), pg.data());
  double e = 0.0;
  for (int64_t i = 0; i < n; ++i) e += out.site_energies[i];
  out.energy = e;
  accumulate_fv(0, n, nl.offsets.data(), nl.j.data(), nl.rij.data(), pg.data(), 0,
                out.forces.data(), out.virial.data());
  return out;
}

std::vector<double> site_basis(const Model& model, const NeighborList& nl, const int* types) {
  const int64_t n = nl.n_atoms;
  check_types(model, n, types);
  const int K = model.n_linear();
  std::vector<double> rows(static_cast<size_t>(n) * K);
#pragma omp parallel
  {
    Workspace ws;
    std::vector<int> jt;
#pragma omp for schedule(dynamic, 8)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t o = nl.offsets[i];
      const int cnt = static_cast<int>(nl.offsets[i + 1] - o);
      jt.resize(cnt);
      for (int q = 0; q < cnt; ++q) jt[q] = types[nl.j[o + q]];
      model.site_energy(ws, types[i], cnt, nl.rij.data() + 3 * o, jt.data(), nullptr,
                        rows.data() + i * K);
    }
  }
  return rows;
}

std::vector<double> energy_param_grads(const Model& model, const NeighborList& nl,
                                       const int* types, bool per_atom) {
  const int64_t n = nl.n_atoms;
  check_types(model, n, types);
  const int64_t P = model.n_params();
  const int64_t nchunks = (n + kChunk - 1) / kChunk;
  std::vector<double> parts(static_cast<size_t>(per_atom ? n : nchunks) * P, 0.0);
#pragma omp parallel
  {
    Workspace ws;
    std::vector<int> jt;
#pragma omp for schedule(dynamic, 1)
    for (int64_t c = 0; c < nchunks; ++c) {
      for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) {
        const int64_t o = nl.offsets[i];
        const int cnt = static_cast<int>(nl.offsets[i + 1] - o);
        jt.resize(cnt);
        for (int q = 0; q < cnt; ++q) jt[q] = types[nl.j[o + q]];
        double* g = parts.data() + (per_atom ? i : c) * P;
        model.site_energy_param_grad(ws, types[i], cnt, nl.rij.data() + 3 * o, jt.data(), 1.0,
                                     g);
      }
    }
  }
  if (per_atom) return parts;
  std::vector<double> out(P);
  reduce_chunks(parts, nchunks, P, out.data());
  return out;
}

int TrainingSet::max_type() const {
  int m = -1;
  for (int t : types) m = std::max(m, t);
  return m;
}

TrainingSet TrainingSet::build(const std::vector<const double*>& positions,
                               const std::vector<int>& counts, const double* cells,
                               const bool* pbc, const std::vector<const int*>& types,
                               double cutoff) {
  TrainingSet ts;
  const int nc = static_cast<int>(counts.size());
  ts.n_configs = nc;
  ts.cutoff = cutoff;
  ts.atom_offset.assign(nc + 1, 0);
  for (int c = 0; c < nc; ++c) ts.atom_offset[c + 1] = ts.atom_offset[c] + counts[c];
  ts.n_atoms = ts.atom_offset[nc];
  ts.types.resize(ts.n_atoms);
  ts.min_r.assign(nc, 0.0);
  std::vector<NeighborList> nls(nc);
  std::string err;
#pragma omp parallel for schedule(dynamic, 1)
  for (int c = 0; c < nc; ++c) {
    try {
      nls[c] = build_neighbor_list(counts[c], positions[c], cells + 9 * c, pbc + 3 * c, cutoff);
    } catch (const std::exception& e) {
#pragma omp critical
      if (err.empty()) err = "configuration " + std::to_string(c) + ": " + e.what();
    }
  }
  if (!err.empty()) throw std::invalid_argument(err);
  ts.pair_offset.assign(ts.n_atoms + 1, 0);
  for (int c = 0; c < nc; ++c) {
    std::copy(types[c], types[c] + counts[c], ts.types.begin() + ts.atom_offset[c]);
    ts.min_r[c] = nls[c].min_r;
    const int64_t a0 = ts.atom_offset[c];
    for (int i = 0; i < counts[c]; ++i)
      ts.pair_offset[a0 + i + 1] = ts.pair_offset[a0 + i] + (nls[c].offsets[i + 1] - nls[c].offsets[i]);
  }
  const int64_t np = ts.pair_offset[ts.n_atoms];
  ts.pair_j.resize(np);
  ts.rij.resize(3 * np);
#pragma omp parallel for schedule(dynamic, 1)
  for (int c = 0; c < nc; ++c) {
    const int64_t a0 = ts.atom_offset[c];
    const int64_t p0 = ts.pair_offset[a0];
    const auto& nl = nls[c];
    for (int64_t p = 0; p < nl.n_pairs(); ++p) ts.pair_j[p0 + p] = static_cast<int>(a0 + nl.j[p]);
    std::copy(nl.rij.begin(), nl.rij.end(), ts.rij.begin() + 3 * p0);
  }
  return ts;
}

namespace {
void check_set(const Model& model, const TrainingSet& ts) {
  if (ts.cutoff < model.cutoff())
    throw std::invalid_argument("training set was built with a cutoff smaller than the model's");
  check_types(model, ts.n_atoms, ts.types.data());
}

// pass 1: predictions and pair gradients
void predict_impl(const Model& model, const TrainingSet& ts, Predictions& pred,
                  std::vector<double>& pair_grad) {
  const int64_t n = ts.n_atoms;
  std::vector<double> site_e(n);
  pair_grad.assign(ts.rij.size(), 0.0);
  sites_and_pair_grads(model, n, ts.types.data(), ts.pair_offset.data(), ts.pair_j.data(),
                       ts.rij.data(), site_e.data(), pair_grad.data());
  pred.energy.assign(ts.n_configs, 0.0);
  pred.forces.assign(3 * n, 0.0);
  pred.virial.assign(9 * static_cast<size_t>(ts.n_configs), 0.0);
#pragma omp parallel for schedule(dynamic, 1)
  for (int c = 0; c < ts.n_configs; ++c) {
    const int64_t a0 = ts.atom_offset[c], a1 = ts.atom_offset[c + 1];
    double e = 0.0;
    for (int64_t i = a0; i < a1; ++i) e += site_e[i];
    pred.energy[c] = e;
    accumulate_fv(a0, a1, ts.pair_offset.data(), ts.pair_j.data(), ts.rij.data(),
                  pair_grad.data(), a0, pred.forces.data() + 3 * a0, pred.virial.data() + 9 * c);
  }
}
}  // namespace

Predictions predict(const Model& model, const TrainingSet& ts) {
  check_set(model, ts);
  Predictions pred;
  std::vector<double> pg;
  predict_impl(model, ts, pred, pg);
  return pred;
}

double loss_and_grad(const Model& model, const TrainingSet& ts, const double* e_target,
                     const double* f_target, const double* v_target, const double* a,
                     const double* b, const double* d, double* grad, Predictions* pred_out) {
  check_set(model, ts);
  Predictions pred;
  std::vector<double> pg;
  predict_impl(model, ts, pred, pg);
  const int nc = ts.n_configs;
  const int64_t n = ts.n_atoms;
  // residual weights
  std::vector<double> alpha(nc, 0.0), W(9 * static_cast<size_t>(nc), 0.0), w(3 * n, 0.0);
  std::vector<char> tangent(nc, 0);
  std::vector<double> lc(nc, 0.0);
#pragma omp parallel for schedule(dynamic, 1)
  for (int c = 0; c < nc; ++c) {
    double l = 0.0;
    if (a[c] != 0.0) {
      const double r = pred.energy[c] - e_target[c];
      l += a[c] * r * r;
      alpha[c] = 2.0 * a[c] * r;
    }
    if (b[c] != 0.0) {
      for (int64_t q = 3 * ts.atom_offset[c]; q < 3 * ts.atom_offset[c + 1]; ++q) {
        const double r = pred.forces[q] - f_target[q];
        l += b[c] * r * r;
        w[q] = 2.0 * b[c] * r;
      }
      tangent[c] = 1;
    }
    if (d[c] != 0.0) {
      for (int q = 0; q < 9; ++q) {
        const double r = pred.virial[9 * c + q] - v_target[9 * c + q];
        l += d[c] * r * r;
        W[9 * c + q] = 2.0 * d[c] * r;
      }
      tangent[c] = 1;
    }
    lc[c] = l;
  }
  double loss = 0.0;
  for (int c = 0; c < nc; ++c) loss += lc[c];
  // config of every atom
  std::vector<int> cfg(n);
  for (int c = 0; c < nc; ++c)
    std::fill(cfg.begin() + ts.atom_offset[c], cfg.begin() + ts.atom_offset[c + 1], c);

  const int64_t P = model.n_params();
  const int64_t nchunks = (n + kChunk - 1) / kChunk;
  std::vector<double> parts(static_cast<size_t>(nchunks) * P, 0.0);
#pragma omp parallel
  {
    Workspace ws;
    BatchWorkspace bw;
    std::vector<int> jt, bjt[kLanes];
    std::vector<double> bdr[kLanes];
#pragma omp for schedule(dynamic, 1)
    for (int64_t ch = 0; ch < nchunks; ++ch) {
      double* g = parts.data() + ch * P;
      // sites with force/virial terms go through the batched mixed kernel
      int nb = 0;
      int it[kLanes], cnt[kLanes];
      const double* r[kLanes];
      const int* jp[kLanes];
      const double* dp[kLanes];
      double al[kLanes], be[kLanes];
      auto flush = [&]() {
        if (nb) model.site_mixed_param_grads(bw, nb, it, cnt, r, jp, dp, al, be, g);
        nb = 0;
      };
      for (int64_t i = ch * kChunk; i < std::min(n, (ch + 1) * kChunk); ++i) {
        const int c = cfg[i];
        const int64_t o = ts.pair_offset[i];
        const int cn = static_cast<int>(ts.pair_offset[i + 1] - o);
        const double* ri = ts.rij.data() + 3 * o;
        if (!tangent[c]) {
          if (alpha[c] != 0.0) {
            jt.resize(cn);
            for (int q = 0; q < cn; ++q) jt[q] = ts.types[ts.pair_j[o + q]];
            model.site_energy_param_grad(ws, ts.types[i], cn, ri, jt.data(), alpha[c], g);
          }
          continue;
        }
        auto& bj = bjt[nb];
        auto& dr = bdr[nb];
        bj.resize(cn);
        for (int q = 0; q < cn; ++q) bj[q] = ts.types[ts.pair_j[o + q]];
        dr.resize(3 * static_cast<size_t>(cn));
        const double* Wc = W.data() + 9 * c;
        const double* wi = w.data() + 3 * i;
        for (int q = 0; q < cn; ++q) {
          const double* wj = w.data() + 3 * static_cast<int64_t>(ts.pair_j[o + q]);
          const double* rq = ri + 3 * q;
          for (int x = 0; x < 3; ++x)
            dr[3 * q + x] = wj[x] - wi[x] + Wc[3 * x] * rq[0] + Wc[3 * x + 1] * rq[1] +
                            Wc[3 * x + 2] * rq[2];
        }
        it[nb] = ts.types[i];
        cnt[nb] = cn;
        r[nb] = ri;
        jp[nb] = bj.data();
        dp[nb] = dr.data();
        al[nb] = alpha[c];
        be[nb] = -1.0;
        if (++nb == kLanes) flush();
      }
      flush();
    }
  }
  reduce_chunks(parts, nchunks, P, grad);
  if (pred_out) *pred_out = std::move(pred);
  return loss;
}

void linear_rows(const Model& model, const TrainingSet& ts, double* e_rows, double* f_rows,
                 double* v_rows) {
  check_set(model, ts);
  const int S = model.species_count();
  const int K = model.n_linear();
  const int ns = model.n_scalar();
  const int nc = ts.n_configs;
  std::fill(e_rows, e_rows + static_cast<size_t>(nc) * K, 0.0);
  std::fill(f_rows, f_rows + static_cast<size_t>(3 * ts.n_atoms) * K, 0.0);
  std::fill(v_rows, v_rows + static_cast<size_t>(9 * nc) * K, 0.0);
#pragma omp parallel
  {
    Workspace ws;
    std::vector<int> jt;
    std::vector<double> dB, row(K);
#pragma omp for schedule(dynamic, 1)
    for (int c = 0; c < nc; ++c) {
      double* er = e_rows + static_cast<size_t>(c) * K;
      double* vr = v_rows + static_cast<size_t>(9 * c) * K;
      for (int64_t i = ts.atom_offset[c]; i < ts.atom_offset[c + 1]; ++i) {
        const int64_t o = ts.pair_offset[i];
        const int cnt = static_cast<int>(ts.pair_offset[i + 1] - o);
        jt.resize(cnt);
        for (int q = 0; q < cnt; ++q) jt[q] = ts.types[ts.pair_j[o + q]];
        dB.resize(static_cast<size_t>(ns) * 3 * cnt);
        const double* r = ts.rij.data() + 3 * o;
        model.site_basis_jacobian(ws, ts.types[i], cnt, r, jt.data(), dB.data(), row.data());
        for (int k = 0; k < K; ++k) er[k] += row[k];
        for (int k = 0; k < ns; ++k) {
          const double* dk = dB.data() + static_cast<size_t>(k) * 3 * cnt;
          for (int q = 0; q < cnt; ++q) {
            const int64_t j = ts.pair_j[o + q];
            const double* g = dk + 3 * q;
            const double* rq = r + 3 * q;
            for (int x = 0; x < 3; ++x) {
              f_rows[(3 * i + x) * K + S + k] += g[x];
              f_rows[(3 * j + x) * K + S + k] -= g[x];
              for (int y = 0; y < 3; ++y) vr[(3 * x + y) * K + S + k] -= g[x] * rq[y];
            }
          }
        }
      }
    }
  }
}

}  // namespace mtpkit
