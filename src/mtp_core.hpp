// mtpkit compiled core: Moment Tensor Potential (MLIP-2 layout) site energies,
// their gradients with respect to neighbour displacements, and the linear basis.
//
// Plain C++17, no Python: this header is shared by the Python extension
// (src/bindings.cpp) and the LAMMPS plugin (src/pair_mtp.cpp).
//
// Units: lengths in Angstrom, energies in eV, gradients in eV/Angstrom.
//
// Math (same as mtpkit/potentials/model.py). For a central atom i of type s_i
// with neighbours j of type s_j at r_ij = x_j - x_i, r = |r_ij|, u = r_ij / r:
//
//   Q_b(r)     = scaling * T_b(xi) * (max_dist - r)^2        (0 for r >= max_dist)
//   xi         = (2 r - (min_dist + max_dist)) / (max_dist - min_dist)
//   f_mu(r)    = sum_b radial_coeffs[s_i][s_j][mu][b] * Q_b(r)
//   M_a        = sum_j f_mu(r_ij) * ux^px * uy^py * uz^pz    (a = row (mu,px,py,pz)
//                                                            of alpha_index_basic)
//   M_k       += mult * M_i * M_j       for each row (i, j, mult, k) of
//                                       alpha_index_times, in order
//   B_k        = M[alpha_moment_mapping[k]]
//   E_i        = species_coeffs[s_i] + sum_k moment_coeffs[k] * B_k
//
// Typical use (e.g. from a LAMMPS pair style):
//
//   mtpkit::ModelSpec spec;            // fill from a parsed .mtp file
//   ...
//   mtpkit::Model model(spec);         // validates, throws std::invalid_argument
//   // one Workspace per thread (not shared between threads):
//   mtpkit::Workspace ws;
//   double grad[3 * n];
//   double e_i = model.site_energy(ws, itype, n, rij, jtypes, grad);
//   // force on j: -grad[3j..3j+2]; force on i: +sum_j grad[3j..3j+2]
//   // virial (eV): W_ab -= rij[3j+a] * grad[3j+b] summed over j and sites.
//
// Thread safety: a Model is immutable after construction except through
// set_params(); concurrent const calls (site_energy etc.) on one Model are
// safe as long as each thread uses its own Workspace / BatchWorkspace.
// set_params() must not run while the Model is evaluated: the Python extension
// never changes a Model in use; it copies it, sets the copy's parameters and
// swaps a shared_ptr (src/bindings.cpp, PyModel).
//
// Faster at high levels: Model::site_energies() evaluates up to kLanes sites
// in one call (bitwise the same results as site_energy).
//
// Whole configurations (own neighbour search, forces, virial, training-set
// loss and gradients, linear design rows): see neighbors.hpp and
// mtp_system.hpp.
#pragma once

#include <cstdint>
#include <vector>

namespace mtpkit {

int core_version();

// Raw MLIP-2 arrays, exactly as in a .mtp file (row-major, C order).
struct ModelSpec {
  int species_count = 0;
  double min_dist = 0.0;         // Angstrom
  double max_dist = 0.0;         // Angstrom (cutoff)
  int radial_basis_size = 0;     // number of Chebyshev functions Q_b
  int radial_funcs_count = 0;    // number of radial functions f_mu
  // [species_count][species_count][radial_funcs_count][radial_basis_size],
  // indexed [central][neighbour][mu][b]
  std::vector<double> radial_coeffs;
  std::vector<int> alpha_index_basic;      // n_basic x 4: (mu, px, py, pz)
  std::vector<int> alpha_index_times;      // n_times x 4: (i, j, mult, k)
  std::vector<int> alpha_moment_mapping;   // n_scalar
  int alpha_moments_count = 0;
  std::vector<double> species_coeffs;      // species_count (eV)
  std::vector<double> moment_coeffs;       // n_scalar (eV)
  double scaling = 1.0;
};

// Pairs handled together by the per-pair kernels (SIMD across pairs).
constexpr int kPairBlock = 4;

// Per-thread scratch memory. Grows on demand (no allocation once it has seen
// the largest neighbour count). Never share one Workspace between threads.
class Workspace {
 public:
  Workspace() = default;

 private:
  friend class Model;
  friend struct ModelKernels;
  // Per-pair data of the in-cutoff neighbours, stored by quantity: row q of a
  // table holds pair j at [q * P + j], P = in-cutoff count rounded up to a
  // multiple of kPairBlock (the padding pairs are harmless dummies), so the
  // kernels run over pairs with unit stride, kPairBlock pairs at a time.
  int P = 0;
  std::vector<double> x;                     // 3 x P: r_ij components (then padding)
  std::vector<double> r, inv_r, u;           // P, P, 3 x P
  std::vector<double> f, df;                 // R x P
  std::vector<double> Q, dQ;                 // B x P
  std::vector<double> mono;                  // n_ext x P (monomials of u)
  std::vector<double> pw;                    // 3 x (pmax+1) x P
  std::vector<double> M, g;                  // alpha_moments_count
  std::vector<double> Mt, gt;                // tangents / second adjoints
  std::vector<double> w, wd;                 // n_mono scratch
  std::vector<double> tmp;                   // misc
  std::vector<int> jt;                       // neighbour types (in cutoff)
  std::vector<int> idx;                      // index of in-cutoff neighbours
};

// Scratch memory for Model::site_energies / site_mixed_param_grads (up to
// kLanes sites evaluated together). One per thread, like Workspace.
constexpr int kLanes = 4;
class BatchWorkspace {
 public:
  BatchWorkspace() = default;

 private:
  friend class Model;
  Workspace lane[kLanes];
  std::vector<double> M, g, Mt, gt;  // alpha_moments_count x kLanes (interleaved)
};

class Model {
 public:
  explicit Model(const ModelSpec& spec);

  // --- sizes -------------------------------------------------------------
  int species_count() const { return S_; }
  double min_dist() const { return min_dist_; }
  double cutoff() const { return max_dist_; }
  int radial_basis_size() const { return B_; }
  int radial_funcs_count() const { return R_; }
  int n_basic() const { return n_basic_; }
  int n_times() const { return static_cast<int>(trow_.size()); }
  int alpha_moments_count() const { return amc_; }
  int n_scalar() const { return static_cast<int>(map_.size()); }
  // length of a linear basis row: species_count + n_scalar
  int n_linear() const { return S_ + n_scalar(); }
  // number of parameters: S*S*R*B (radial) + S (species) + n_scalar (moment)
  int n_params() const { return S_ * S_ * R_ * B_ + S_ + n_scalar(); }
  int n_radial_params() const { return S_ * S_ * R_ * B_; }

  // Parameters in mtpkit order: radial_coeffs (C order), species_coeffs,
  // moment_coeffs. `p` has n_params() values. Not thread safe w.r.t.
  // concurrent evaluation.
  void set_params(const double* p);
  void get_params(double* p) const;

  // Site energy E_i (eV) of a central atom of type `itype` with `n`
  // neighbours. `rij` holds n x 3 displacement vectors x_j - x_i (Angstrom),
  // `jtypes` the n neighbour types. Neighbours with |r_ij| >= cutoff() are
  // ignored (contribute zero), so a LAMMPS list with skin can be passed as is.
  // A neighbour at r = 0 gives non-finite results (callers must exclude self).
  //
  // Outputs (each may be nullptr when not needed):
  //   dE_drij   n x 3: dE_i / d r_ij (eV/Angstrom); zero rows beyond cutoff.
  //   basis_row n_linear(): [one-hot(itype) | B_0 .. B_{n_scalar-1}] so that
  //             E_i = dot(basis_row, [species_coeffs | moment_coeffs]).
  double site_energy(Workspace& ws, int itype, int n, const double* rij,
                     const int* jtypes, double* dE_drij = nullptr,
                     double* basis_row = nullptr) const;

  // The same as site_energy for `nsites` (1..kLanes) central atoms at once;
  // faster at high levels (the alpha_index_times sweeps run on all sites
  // together, SIMD across sites). Per site s: itype[s], n[s], rij[s] (n[s] x 3),
  // jtypes[s], dE_drij[s] (n[s] x 3 or nullptr for the whole call: pass
  // dE_drij == nullptr to skip gradients). Energies go to energies[s].
  // Results are bitwise identical to site_energy.
  void site_energies(BatchWorkspace& bw, int nsites, const int* itype, const int* n,
                     const double* const* rij, const int* const* jtypes,
                     double* const* dE_drij, double* energies) const;

  // dE_i/d(theta) for all parameters (n_params(), mtpkit order), ADDED into
  // `grad` (scaled by `weight`). Returns E_i.
  double site_energy_param_grad(Workspace& ws, int itype, int n, const double* rij,
                                const int* jtypes, double weight, double* grad) const;

  // Forward-over-reverse kernel for force/virial training terms.
  // Given per-neighbour tangent displacements `drij` (n x 3), computes
  //   J = alpha * E_i + beta * D,   D = sum_j dE_i/dr_ij . drij_j
  // and ADDS dJ/d(theta) into `grad` (n_params()). Also returns E_i and
  // writes dE_i/dr_ij into dE_drij if not nullptr.
  double site_mixed_param_grad(Workspace& ws, int itype, int n, const double* rij,
                               const int* jtypes, const double* drij, double alpha,
                               double beta, double* grad) const;

  // Batched site_mixed_param_grad: per-site alpha[s], beta[s], drij[s]; all
  // parameter gradients are ADDED into the one `grad`, in site order.
  void site_mixed_param_grads(BatchWorkspace& bw, int nsites, const int* itype, const int* n,
                              const double* const* rij, const int* const* jtypes,
                              const double* const* drij, const double* alpha,
                              const double* beta, double* grad) const;

  // d B_k / d r_ij for every scalar basis function (the linear design rows of
  // forces and virials). Writes n_scalar x n x 3 values into `dB_drij` and
  // the basis row (n_linear()) into `basis_row` (may be nullptr).
  void site_basis_jacobian(Workspace& ws, int itype, int n, const double* rij,
                           const int* jtypes, double* dB_drij, double* basis_row) const;

 private:
  friend struct ModelKernels;
  int prepare(Workspace& ws, int itype, int n, const double* rij, const int* jtypes,
              bool need_derivs) const;
  void forward_moments(Workspace& ws, int nn) const;
  void reverse_moments(Workspace& ws) const;
  // building blocks shared by the single-site and batched kernels; moment
  // arrays are laid out as X[index * L + lane]
  void basic_moments(const Workspace& ws, int nn, double* M, int L) const;
  void basic_moments_tangent(Workspace& ws, int nn, const double* drij, double* M, double* Mt,
                             int L) const;
  template <int L> void times_forward(double* M) const;
  template <int L> void times_forward_tangent(double* M, double* Mt) const;
  template <int L> void times_reverse(const double* M, double* g) const;
  template <int L> void times_reverse_mixed(const double* M, const double* Mt, double* gb,
                                            double* gh) const;
  void neighbor_gradients(Workspace& ws, int nn, const double* g, int L, int n,
                          double* dE_drij) const;
  void mixed_radial_grad(const Workspace& ws, int nn, int itype, const double* gb,
                         const double* gh, int L, double* grad) const;

  struct TimesRow {
    int i, j;
    double mult;
  };
  int S_, R_, B_, n_basic_, amc_, pmax_;
  double min_dist_, max_dist_, scaling_;
  std::vector<double> radial_;                 // S*S*R*B
  std::vector<double> species_;                // S
  std::vector<double> moment_;                 // n_scalar
  std::vector<int> map_;                       // n_scalar
  std::vector<int> basic_mu_, basic_mono_;     // n_basic (file order)
  std::vector<int> mu_start_;                  // R+1: basic moments sorted by mu
  std::vector<int> by_mu_a_, by_mu_mono_;      // n_basic: moment index / monomial id
  // monomials u^p: the first n_mono_ are those of alpha_index_basic, followed
  // by the lower-degree ones needed for derivatives (n_ext_ in all)
  int n_mono_ = 0, n_ext_ = 0;
  std::vector<int> ext_p_;                     // n_ext x 3 powers
  std::vector<double> mono_k_;                 // n_mono: degree
  std::vector<int> dlow_;                      // n_mono x 3: ext id of d/du_c (0 if p_c = 0)
  std::vector<double> dcoef_;                  // n_mono x 3: p_c
  // alpha_index_times in file order, grouped by runs of equal output index
  std::vector<TimesRow> trow_;
  std::vector<int> grp_k_, grp_start_;
};

// Site energies and pair gradients of many sites stored packed: site s (type
// site_types[s]) has the pairs [offsets[s], offsets[s+1]) of pair_types
// (neighbour MTP types) and rij (x_j - x_i, 3 per pair). Writes site_e[s] and,
// unless pair_grad is nullptr, dE_s/dr_ij into pair_grad (3 per pair). Sites are
// evaluated kLanes at a time (Model::site_energies) on `nthreads` OpenMP threads
// (0: OpenMP's default), each thread using its own entry of `workspaces`
// (resized as needed, so a caller can keep it between calls). Every site is
// computed the same way whatever the thread count, so results are bitwise
// independent of it. An exception thrown on a thread (std::bad_alloc while a
// workspace grows) is re-thrown after the parallel region. Shared by the Python
// extension and the LAMMPS pair style.
void packed_site_energies(const Model& model, int64_t nsites, const int* site_types,
                          const int64_t* offsets, const int* pair_types, const double* rij,
                          double* site_e, double* pair_grad,
                          std::vector<BatchWorkspace>& workspaces, int nthreads = 0);

}  // namespace mtpkit
