// O(N) neighbour search with explicit periodic images and a Cartesian cell list
// (bins of half the cutoff; each atom scans only the bin rows its cutoff sphere reaches).
#include "neighbors.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "omp_errors.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mtpkit {

namespace {
// at most this many image points (atoms x periodic copies), ~2.4 GB of coordinates
constexpr double kMaxImagePoints = 1e8;
using V3 = std::array<double, 3>;
inline V3 cross(const V3& a, const V3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
inline double dot(const V3& a, const V3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
inline double norm(const V3& a) { return std::sqrt(dot(a, a)); }
inline V3 scale(const V3& a, double s) { return {a[0] * s, a[1] * s, a[2] * s}; }

// Any unit vector orthogonal to a (|a| > 0).
V3 orthogonal_unit(const V3& a) {
  V3 t = std::fabs(a[0]) < 0.9 * norm(a) ? V3{1, 0, 0} : V3{0, 1, 0};
  V3 c = cross(a, t);
  return scale(c, 1.0 / norm(c));
}
}  // namespace

NeighborList build_neighbor_list(int n, const double* positions, const double* cell,
                                 const bool* pbc, double cutoff) {
  if (!(cutoff > 0.0)) throw std::invalid_argument("neighbour list: cutoff must be > 0");
  if (n < 0) throw std::invalid_argument("neighbour list: negative atom count");
  NeighborList nl;
  nl.n_atoms = n;
  nl.cutoff = cutoff;
  nl.offsets.assign(static_cast<size_t>(n) + 1, 0);
  nl.min_r = std::numeric_limits<double>::infinity();
  if (n == 0) return nl;
  for (int i = 0; i < 3 * n; ++i)
    if (!std::isfinite(positions[i]))
      throw std::invalid_argument("neighbour list: non-finite atomic position");

  // Effective full-rank basis E (rows): periodic lattice vectors, completed by
  // orthogonal unit vectors in non-periodic directions.
  std::array<V3, 3> a, E;
  int np = 0;
  std::array<int, 3> per{};
  for (int d = 0; d < 3; ++d) {
    a[d] = {cell[3 * d], cell[3 * d + 1], cell[3 * d + 2]};
    if (pbc[d]) per[np++] = d;
  }
  E = a;
  if (np == 0) {
    E = {V3{1, 0, 0}, V3{0, 1, 0}, V3{0, 0, 1}};
  } else if (np == 1) {
    const int p = per[0];
    if (norm(a[p]) <= 0.0) throw std::invalid_argument("neighbour list: zero periodic lattice vector");
    V3 e1 = orthogonal_unit(a[p]);
    V3 e2 = cross(a[p], e1);
    e2 = scale(e2, 1.0 / norm(e2));
    E[(p + 1) % 3] = e1;
    E[(p + 2) % 3] = e2;
  } else if (np == 2) {
    int q = 3 - per[0] - per[1];
    V3 c = cross(a[per[0]], a[per[1]]);
    if (norm(c) <= 1e-12 * norm(a[per[0]]) * norm(a[per[1]]))
      throw std::invalid_argument("neighbour list: periodic lattice vectors are parallel");
    E[q] = scale(c, 1.0 / norm(c));
  }
  const double det = dot(E[0], cross(E[1], E[2]));
  if (!(std::fabs(det) > 1e-12 * norm(E[0]) * norm(E[1]) * norm(E[2])))
    throw std::invalid_argument("neighbour list: periodic cell is singular");
  // reciprocal vectors b_d (columns of E^-1): frac_d = x . b_d
  std::array<V3, 3> b = {scale(cross(E[1], E[2]), 1.0 / det), scale(cross(E[2], E[0]), 1.0 / det),
                         scale(cross(E[0], E[1]), 1.0 / det)};

  // wrapped positions (integer lattice shifts only in periodic directions)
  std::vector<double> xw(3 * static_cast<size_t>(n));
  std::vector<double> frac(3 * static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    V3 x = {positions[3 * i], positions[3 * i + 1], positions[3 * i + 2]};
    for (int d = 0; d < 3; ++d) {
      double f = dot(x, b[d]);
      if (pbc[d]) {
        const double fl = std::floor(f);
        if (fl != 0.0) {
          x = {x[0] - fl * a[d][0], x[1] - fl * a[d][1], x[2] - fl * a[d][2]};
          f -= fl;
        }
      }
      frac[3 * i + d] = f;
    }
    xw[3 * i] = x[0];
    xw[3 * i + 1] = x[1];
    xw[3 * i + 2] = x[2];
  }

  // image points: first the n real atoms, then ghosts
  std::array<int, 3> nimg{0, 0, 0};
  std::array<double, 3> delta{0, 0, 0};
  double images = 1.0;  // periodic copies of the cell the search must look through
  for (int d = 0; d < 3; ++d) {
    if (!pbc[d]) continue;
    delta[d] = cutoff * norm(b[d]);  // cutoff / plane spacing
    images *= 2.0 * std::ceil(delta[d]) + 1.0;
  }
  // a cell much thinner than the cutoff (a Supercell in the wrong unit, a collapsed box) would need
  // an astronomical number of images: refuse it instead of exhausting memory
  if (!(images * n <= kMaxImagePoints)) {
    char count[32];
    std::snprintf(count, sizeof count, "%.3g", images);
    throw std::invalid_argument(std::string("neighbour list: the periodic cell is too small for the cutoff (") +
                                count + " periodic images of " + std::to_string(n) +
                                " atoms; are the cell vectors in Å?)");
  }
  double keep_frac = 1.0;  // expected fraction of the image copies' atoms kept as ghosts
  for (int d = 0; d < 3; ++d)
    if (pbc[d]) {
      nimg[d] = static_cast<int>(std::ceil(delta[d]));
      keep_frac *= 1.0 + 2.0 * delta[d];
    }
  std::vector<double> pts;
  std::vector<int> owner;
  {
    const double est = std::min(images, keep_frac * 1.1 + 0.05) * n + 64;
    pts.reserve(3 * static_cast<size_t>(est));
    owner.reserve(static_cast<size_t>(est));
  }
  pts.assign(xw.begin(), xw.end());
  owner.resize(n);
  for (int i = 0; i < n; ++i) owner[i] = i;
  for (int s0 = -nimg[0]; s0 <= nimg[0]; ++s0)
    for (int s1 = -nimg[1]; s1 <= nimg[1]; ++s1)
      for (int s2 = -nimg[2]; s2 <= nimg[2]; ++s2) {
        if (s0 == 0 && s1 == 0 && s2 == 0) continue;
        const int s[3] = {s0, s1, s2};
        const V3 sh = {s0 * a[0][0] + s1 * a[1][0] + s2 * a[2][0],
                       s0 * a[0][1] + s1 * a[1][1] + s2 * a[2][1],
                       s0 * a[0][2] + s1 * a[1][2] + s2 * a[2][2]};
        for (int i = 0; i < n; ++i) {
          bool keep = true;
          for (int d = 0; d < 3 && keep; ++d) {
            if (!pbc[d]) continue;
            const double f = frac[3 * i + d] + s[d];
            keep = (f >= -delta[d]) && (f <= 1.0 + delta[d]);
          }
          if (!keep) continue;
          pts.push_back(xw[3 * i] + sh[0]);
          pts.push_back(xw[3 * i + 1] + sh[1]);
          pts.push_back(xw[3 * i + 2] + sh[2]);
          owner.push_back(i);
        }
      }
  const size_t npts = owner.size();

  // Cartesian bins of edge >= cutoff / kSub over the bounding box (coarser where
  // there would be more than ~2 bins per point); each atom searches only the bins
  // that reach within the cutoff of it, row by row (see below)
  constexpr double kSub = 2.0;
  constexpr int kReach = 2 * static_cast<int>(kSub) + 3;  // bins within the cutoff along one axis, at most
  V3 lo{pts[0], pts[1], pts[2]}, hi = lo;
  for (size_t p = 0; p < npts; ++p)
    for (int d = 0; d < 3; ++d) {
      lo[d] = std::min(lo[d], pts[3 * p + d]);
      hi[d] = std::max(hi[d], pts[3 * p + d]);
    }
  std::array<int64_t, 3> nb;
  std::array<double, 3> bsize, inv;
  for (int d = 0; d < 3; ++d) {
    nb[d] = std::max<int64_t>(1, static_cast<int64_t>(std::floor((hi[d] - lo[d]) * kSub / cutoff)));
  }
  const int64_t cap = 2 * static_cast<int64_t>(npts) + 64;
  while (nb[0] * nb[1] * nb[2] > cap) {
    int dmax = 0;
    for (int d = 1; d < 3; ++d)
      if (nb[d] > nb[dmax]) dmax = d;
    nb[dmax] = std::max<int64_t>(1, nb[dmax] / 2);
  }
  for (int d = 0; d < 3; ++d) {
    bsize[d] = std::max((hi[d] - lo[d]) / static_cast<double>(nb[d]), cutoff / kSub);
    inv[d] = 1.0 / bsize[d];
  }
  auto bin_of = [&](double x, int d) {
    const double c = (x - lo[d]) * inv[d];
    if (!(c > 0.0)) return int64_t{0};
    return std::min<int64_t>(static_cast<int64_t>(c), nb[d] - 1);
  };
  const int64_t nbins = nb[0] * nb[1] * nb[2];
  std::vector<int64_t> bin_start(nbins + 1, 0);
  std::vector<int64_t> pbin(npts);
  for (size_t p = 0; p < npts; ++p) {
    const double* x = &pts[3 * p];
    pbin[p] = (bin_of(x[0], 0) * nb[1] + bin_of(x[1], 1)) * nb[2] + bin_of(x[2], 2);
    ++bin_start[pbin[p] + 1];
  }
  for (int64_t c = 0; c < nbins; ++c) bin_start[c + 1] += bin_start[c];
  // points in bin order (stable: original point order within a bin): coordinates and owner atom
  std::vector<double> spts(3 * npts);
  std::vector<int> sown(npts);
  std::vector<int64_t> self_q(n);  // sorted position of each real atom's own point
  {
    std::vector<int64_t> fill(bin_start.begin(), bin_start.end() - 1);
    for (size_t p = 0; p < npts; ++p) {
      const int64_t q = fill[pbin[p]]++;
      spts[3 * q] = pts[3 * p];
      spts[3 * q + 1] = pts[3 * p + 1];
      spts[3 * q + 2] = pts[3 * p + 2];
      sown[q] = owner[p];
      if (p < static_cast<size_t>(n)) self_q[p] = q;
    }
  }
  std::vector<double>().swap(pts);
  std::vector<int>().swap(owner);
  std::vector<int64_t>().swap(pbin);

  const double rc2 = cutoff * cutoff;
  // the bin search only skips bins; pairs are decided by r2 < rc2 alone. The slack covers
  // rounding in the bin bounds, so that no bin holding a pair is skipped.
  const double slack = 1e-9 * (cutoff + std::max({std::fabs(lo[0]), std::fabs(lo[1]), std::fabs(lo[2]),
                                                  std::fabs(hi[0]), std::fabs(hi[1]), std::fabs(hi[2])}));
  // squared distance from x to bin b along d (0 inside), less the slack
  auto gap2 = [&](double x, int d, int64_t b) {
    const double blo = lo[d] + static_cast<double>(b) * bsize[d];
    const double g = std::max(blo - x, x - (blo + bsize[d])) - slack;
    return g > 0.0 ? g * g : 0.0;
  };
  // pairs per atom to reserve: point density times the cutoff sphere (capped by the point count)
  size_t per_atom = npts;
  {
    const double vol = (bsize[0] * nb[0]) * (bsize[1] * nb[1]) * (bsize[2] * nb[2]);  // the bin grid
    const double est = 1.2 * static_cast<double>(npts) / vol * (4.18879 * rc2 * cutoff) + 8.0;
    if (est < static_cast<double>(npts)) per_atom = static_cast<size_t>(est);
  }
  std::vector<int64_t> count(n, 0);
  int nthreads = 1;
#ifdef _OPENMP
  nthreads = omp_get_max_threads();
#endif
  if (nthreads > n) nthreads = std::max(1, n);
  std::vector<std::vector<int>> tj(nthreads);
  std::vector<std::vector<double>> tr(nthreads);
  std::vector<double> tmin(nthreads, std::numeric_limits<double>::infinity());
  std::vector<int> tmi(nthreads, -1), tmj(nthreads, -1);
  // exceptions (std::bad_alloc as the per-thread lists grow) are kept and
  // re-thrown after the region; every thread still reaches the barrier
  OmpErrors errors;
  int team = 1;  // threads the region really got (1 when nested in another parallel region)
#pragma omp parallel num_threads(nthreads)
  {
    int tid = 0, nth = 1;
#ifdef _OPENMP
    tid = omp_get_thread_num();
    nth = omp_get_num_threads();
#endif
    if (tid == 0) team = nth;
    // contiguous block of atoms per thread: results concatenate in atom order
    const int i0 = static_cast<int>((static_cast<int64_t>(n) * tid) / nth);
    const int i1 = static_cast<int>((static_cast<int64_t>(n) * (tid + 1)) / nth);
    auto& J = tj[tid];
    auto& Rv = tr[tid];
    double best = std::numeric_limits<double>::infinity();
    int bi = -1, bj = -1;
    errors.run([&] {
      J.reserve(static_cast<size_t>(i1 - i0) * per_atom);
      Rv.reserve(static_cast<size_t>(i1 - i0) * per_atom * 3);
      std::vector<std::array<int64_t, 2>> rows;  // [q0, q1) of the bin rows an atom scans
      size_t m = 0;                               // pairs so far (J, Rv are longer: scratch room)
      for (int i = i0; i < i1; ++i) {
        failpoint(Failpoint::neighbor, i, i + 1);
        const double x0 = xw[3 * static_cast<size_t>(i)], x1 = xw[3 * static_cast<size_t>(i) + 1],
                     x2 = xw[3 * static_cast<size_t>(i) + 2];
        // bins (b0, b1, b2lo..b2hi) are contiguous in the sorted arrays; each row's
        // b2 range covers the part of the cutoff sphere that the row's (b0, b1) cross section allows
        rows.clear();
        size_t cand = 0;
        // squared gaps to the bins in reach along x and y (the rows' cross sections)
        const int64_t b0lo = bin_of(x0 - cutoff, 0), b0hi = bin_of(x0 + cutoff, 0);
        const int64_t b1lo = bin_of(x1 - cutoff, 1), b1hi = bin_of(x1 + cutoff, 1);
        double g0[kReach], g1[kReach];
        for (int64_t b = b0lo; b <= b0hi; ++b) g0[b - b0lo] = gap2(x0, 0, b);
        for (int64_t b = b1lo; b <= b1hi; ++b) g1[b - b1lo] = gap2(x1, 1, b);
        for (int64_t b0 = b0lo; b0 <= b0hi; ++b0) {
          const double rem0 = rc2 - g0[b0 - b0lo];
          if (!(rem0 > 0.0)) continue;
          for (int64_t b1 = b1lo; b1 <= b1hi; ++b1) {
            const double rem1 = rem0 - g1[b1 - b1lo];
            if (!(rem1 > 0.0)) continue;
            const double h2 = std::sqrt(rem1) + slack;
            const int64_t row = (b0 * nb[1] + b1) * nb[2];
            const int64_t q0 = bin_start[row + bin_of(x2 - h2, 2)];
            const int64_t q1 = bin_start[row + bin_of(x2 + h2, 2) + 1];
            if (q1 > q0) {
              rows.push_back({q0, q1});
              cand += static_cast<size_t>(q1 - q0);
            }
          }
        }
        // every candidate is written at slot m and kept (m advances) only when it is a pair:
        // no unpredictable branch per candidate
        if (J.size() < m + cand) {
          J.resize(m + cand);
          Rv.resize(3 * (m + cand));
        }
        int* Jp = J.data();
        double* Rp = Rv.data();
        const size_t first = m;
        int zeros = 0;  // points at distance 0: the atom itself, more when atoms coincide
        for (const auto& rq : rows) {
          for (int64_t q = rq[0]; q < rq[1]; ++q) {
            const double dx = spts[3 * q] - x0, dy = spts[3 * q + 1] - x1, dz = spts[3 * q + 2] - x2;
            const double r2 = dx * dx + dy * dy + dz * dz;
            Jp[m] = sown[q];
            Rp[3 * m] = dx;
            Rp[3 * m + 1] = dy;
            Rp[3 * m + 2] = dz;
            zeros += (r2 == 0.0);
            m += (r2 < rc2) & (r2 > 0.0);
          }
        }
        // closest pair: smallest r2 in scan order with a strict <, as if compared in place
        for (size_t k = first; k < m; ++k) {
          const double r2 = Rp[3 * k] * Rp[3 * k] + Rp[3 * k + 1] * Rp[3 * k + 1] + Rp[3 * k + 2] * Rp[3 * k + 2];
          if (r2 < best) {
            best = r2;
            bi = i;
            bj = Jp[k];
          }
        }
        // a coinciding pair (r = 0, not in the list) is the closest one unless an earlier atom had one
        if (zeros > 1 && best > 0.0) {
          const int64_t me = self_q[i];
          for (const auto& rq : rows) {
            for (int64_t q = rq[0]; q < rq[1] && best > 0.0; ++q) {
              const double dx = spts[3 * q] - x0, dy = spts[3 * q + 1] - x1, dz = spts[3 * q + 2] - x2;
              if (q != me && dx * dx + dy * dy + dz * dz == 0.0) {
                best = 0.0;
                bi = i;
                bj = sown[q];
              }
            }
          }
        }
        count[i] = static_cast<int64_t>(m - first);
      }
      J.resize(m);
      Rv.resize(3 * m);
    });
    tmin[tid] = std::sqrt(best);
    tmi[tid] = bi;
    tmj[tid] = bj;
    if (nth > 1) {
#pragma omp barrier
#pragma omp single
      errors.run([&] {
        for (int i = 0; i < n; ++i) nl.offsets[i + 1] = nl.offsets[i] + count[i];
        nl.j.resize(nl.offsets[n]);
        nl.rij.resize(3 * nl.offsets[n]);
      });
      // (implicit barrier after single: every thread sees the same errors.failed())
      if (!errors.failed()) {
        const int64_t o = nl.offsets[i0];
        std::copy(J.begin(), J.end(), nl.j.begin() + o);
        std::copy(Rv.begin(), Rv.end(), nl.rij.begin() + 3 * o);
      }
    }
  }
  if (team == 1 && !errors.failed()) {  // one block: its lists are the result
    for (int i = 0; i < n; ++i) nl.offsets[i + 1] = nl.offsets[i] + count[i];
    nl.j = std::move(tj[0]);
    nl.rij = std::move(tr[0]);
  }
  errors.rethrow();
  // closest pair: smallest distance, ties to the lowest atom index (thread blocks are ordered)
  for (int t = 0; t < nthreads; ++t) {
    if (tmi[t] < 0) continue;
    if (tmin[t] < nl.min_r) {
      nl.min_r = tmin[t];
      nl.min_i = tmi[t];
      nl.min_j = tmj[t];
    }
  }
  return nl;
}

}  // namespace mtpkit
