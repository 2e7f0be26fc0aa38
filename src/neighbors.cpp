// O(N) neighbour search with explicit periodic images and a Cartesian cell list.
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
  for (int d = 0; d < 3; ++d)
    if (pbc[d]) nimg[d] = static_cast<int>(std::ceil(delta[d]));
  std::vector<double> pts(xw);
  std::vector<int> owner(n);
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

  // Cartesian bins of edge >= cutoff over the bounding box
  V3 lo{pts[0], pts[1], pts[2]}, hi = lo;
  for (size_t p = 0; p < npts; ++p)
    for (int d = 0; d < 3; ++d) {
      lo[d] = std::min(lo[d], pts[3 * p + d]);
      hi[d] = std::max(hi[d], pts[3 * p + d]);
    }
  std::array<int64_t, 3> nb;
  std::array<double, 3> bsize;
  for (int d = 0; d < 3; ++d) {
    nb[d] = std::max<int64_t>(1, static_cast<int64_t>(std::floor((hi[d] - lo[d]) / cutoff)));
  }
  const int64_t cap = 2 * static_cast<int64_t>(npts) + 64;
  while (nb[0] * nb[1] * nb[2] > cap) {
    int dmax = 0;
    for (int d = 1; d < 3; ++d)
      if (nb[d] > nb[dmax]) dmax = d;
    nb[dmax] = std::max<int64_t>(1, nb[dmax] / 2);
  }
  for (int d = 0; d < 3; ++d) {
    bsize[d] = std::max((hi[d] - lo[d]) / static_cast<double>(nb[d]), cutoff);
  }
  auto bin_of = [&](const double* x, int d) {
    int64_t c = static_cast<int64_t>((x[d] - lo[d]) / bsize[d]);
    return std::min<int64_t>(std::max<int64_t>(c, 0), nb[d] - 1);
  };
  const int64_t nbins = nb[0] * nb[1] * nb[2];
  std::vector<int64_t> bin_start(nbins + 1, 0);
  std::vector<int64_t> pbin(npts);
  for (size_t p = 0; p < npts; ++p) {
    const double* x = &pts[3 * p];
    pbin[p] = (bin_of(x, 0) * nb[1] + bin_of(x, 1)) * nb[2] + bin_of(x, 2);
    ++bin_start[pbin[p] + 1];
  }
  for (int64_t c = 0; c < nbins; ++c) bin_start[c + 1] += bin_start[c];
  std::vector<int64_t> fill(bin_start.begin(), bin_start.end() - 1);
  // points in bin order: coordinates, owner atom and original point index
  std::vector<double> spts(3 * npts);
  std::vector<int> sown(npts);
  std::vector<int64_t> sorig(npts);
  for (size_t p = 0; p < npts; ++p) {
    const int64_t q = fill[pbin[p]]++;
    spts[3 * q] = pts[3 * p];
    spts[3 * q + 1] = pts[3 * p + 1];
    spts[3 * q + 2] = pts[3 * p + 2];
    sown[q] = owner[p];
    sorig[q] = static_cast<int64_t>(p);
  }

  const double rc2 = cutoff * cutoff;
  std::vector<int64_t> count(n, 0);
  int nthreads = 1;
#ifdef _OPENMP
  nthreads = omp_get_max_threads();
#endif
  std::vector<std::vector<int>> tj(nthreads);
  std::vector<std::vector<double>> tr(nthreads);
  std::vector<double> tmin(nthreads, std::numeric_limits<double>::infinity());
  std::vector<int> tmi(nthreads, -1), tmj(nthreads, -1);
  // exceptions (std::bad_alloc as the per-thread lists grow) are kept and
  // re-thrown after the region; every thread still reaches the barrier
  OmpErrors errors;
#pragma omp parallel num_threads(nthreads)
  {
    int tid = 0, nth = 1;
#ifdef _OPENMP
    tid = omp_get_thread_num();
    nth = omp_get_num_threads();
#endif
    // contiguous block of atoms per thread: results concatenate in atom order
    const int i0 = static_cast<int>((static_cast<int64_t>(n) * tid) / nth);
    const int i1 = static_cast<int>((static_cast<int64_t>(n) * (tid + 1)) / nth);
    auto& J = tj[tid];
    auto& Rv = tr[tid];
    double best = std::numeric_limits<double>::infinity();
    int bi = -1, bj = -1;
    errors.run([&] {
      J.reserve(static_cast<size_t>(i1 - i0) * 64);
      Rv.reserve(static_cast<size_t>(i1 - i0) * 192);
      for (int i = i0; i < i1; ++i) {
        failpoint(Failpoint::neighbor, i, i + 1);
        const double* xi = &pts[3 * static_cast<size_t>(i)];
        const int64_t c0 = bin_of(xi, 0), c1 = bin_of(xi, 1), c2 = bin_of(xi, 2);
        const size_t before = J.size();
        for (int64_t b0 = std::max<int64_t>(0, c0 - 1); b0 <= std::min(nb[0] - 1, c0 + 1); ++b0)
          for (int64_t b1 = std::max<int64_t>(0, c1 - 1); b1 <= std::min(nb[1] - 1, c1 + 1); ++b1) {
            // bins (b0, b1, b2lo..b2hi) are contiguous in the sorted arrays
            const int64_t b2lo = std::max<int64_t>(0, c2 - 1), b2hi = std::min(nb[2] - 1, c2 + 1);
            const int64_t q0 = bin_start[(b0 * nb[1] + b1) * nb[2] + b2lo];
            const int64_t q1 = bin_start[(b0 * nb[1] + b1) * nb[2] + b2hi + 1];
            for (int64_t q = q0; q < q1; ++q) {
              const double dx = spts[3 * q] - xi[0], dy = spts[3 * q + 1] - xi[1],
                           dz = spts[3 * q + 2] - xi[2];
              const double r2 = dx * dx + dy * dy + dz * dz;
              if (r2 >= rc2 || sorig[q] == i) continue;
              if (r2 < best) {
                best = r2;
                bi = i;
                bj = sown[q];
              }
              if (r2 == 0.0) continue;
              J.push_back(sown[q]);
              Rv.push_back(dx);
              Rv.push_back(dy);
              Rv.push_back(dz);
            }
          }
        count[i] = static_cast<int64_t>(J.size() - before);
      }
    });
    tmin[tid] = std::sqrt(best);
    tmi[tid] = bi;
    tmj[tid] = bj;
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
