"""Generate untrained MTP templates (the moment-tensor basis) for any level.

Level of the moment tensor ``M_{mu,nu}`` (radial function ``mu``, rank
``nu``) is ``2 + 4 mu + nu``; a contraction's level is the sum of its
factors' levels. The basis of level ``L`` holds every scalar obtained by
contracting moment tensors with total level ``<= L`` (products of scalars
included), with linear dependencies removed. Like MLIP's own templates, a
basis function contracts at most four moment tensors by default
(``max_factors``); with that cap the generated bases span exactly the same
function space as MLIP's ``untrained_mtps`` (checked for levels 2-20), while
MLIP's files carry a few linearly dependent functions that are dropped here.

Construction, in MLIP's own representation:

* every tensor is symmetric and stored by its components, indexed by
  exponent triples ``(px, py, pz)`` (``px + py + pz = rank``); the basic
  components are MLIP's ``alpha_index_basic`` rows ``(mu, px, py, pz)``;
* a new tensor is the symmetrised contraction of two tensors ``A`` and ``B``
  over ``c`` index pairs; its component ``p`` is an integer combination of
  products ``A_i B_j`` -- MLIP's ``alpha_index_times`` rows ``(i, j, mult, k)``
  (the tensor is rescaled by a common factor so that all ``mult`` are integers);
* duplicates and linear dependencies are removed numerically: every
  candidate is evaluated on random neighbourhoods (random unit vectors and
  independent random values of the radial functions, which are arbitrary) and
  kept only if it is linearly independent of the tensors of the same rank and
  radial-function content already kept.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from mtpkit.potentials.model import MTP
from mtpkit.potentials.mtp_io import _default_coeffs

__all__ = ["basis_structure", "for_species", "make_template", "moment_level"]

_N_SAMPLES = 400  # random neighbourhoods used to detect linear dependencies
_N_NEIGHBOURS = 14
_TOL = 1e-7
# MLIP's own templates (untrained_mtps/*.mtp) contract at most four moment tensors per basis
# function; found by comparing the spans of generated and MLIP bases level by level.
MLIP_MAX_FACTORS = 4


def moment_level(mu: int, nu: int) -> int:
    """Level of ``M_{mu,nu}``: ``2 + 4 mu + nu``."""
    return 2 + 4 * mu + nu


@functools.cache
def _triples(rank: int) -> tuple[tuple[int, int, int], ...]:
    """Exponent triples of a symmetric rank-``rank`` tensor, in MLIP's order."""
    return tuple((px, py, rank - px - py) for px in range(rank, -1, -1) for py in range(rank - px, -1, -1))


def _multinomial(p: tuple[int, int, int]) -> int:
    return math.factorial(sum(p)) // (math.factorial(p[0]) * math.factorial(p[1]) * math.factorial(p[2]))


@functools.cache
def _contraction_rule(ra: int, rb: int, c: int):
    """Symmetrised contraction of symmetric tensors of ranks ``ra``, ``rb`` over ``c`` pairs.

    Component ``p`` of the result (rank ``ra + rb - 2c``) is
    ``sum m(a) m(b) m(q) / m(p) * A[a+q] B[b+q]`` over ``a + b = p``,
    ``|a| = ra - c``, ``|b| = rb - c``, ``|q| = c`` (``m`` = multinomial).
    Returns ``(ia, ib, ip, coeff)`` integer arrays with a common integer scale
    and the scale as a Fraction (result = rule / scale).
    """
    index_a = {t: i for i, t in enumerate(_triples(ra))}
    index_b = {t: i for i, t in enumerate(_triples(rb))}
    index_p = {t: i for i, t in enumerate(_triples(ra + rb - 2 * c))}
    terms: dict[tuple[int, int, int], Fraction] = {}
    for q in _triples(c):
        mq = _multinomial(q)
        for a in _triples(ra - c):
            ma = _multinomial(a)
            for b in _triples(rb - c):
                p = (a[0] + b[0], a[1] + b[1], a[2] + b[2])
                key = (index_a[(a[0] + q[0], a[1] + q[1], a[2] + q[2])],
                       index_b[(b[0] + q[0], b[1] + q[1], b[2] + q[2])], index_p[p])
                terms[key] = terms.get(key, Fraction(0)) + Fraction(ma * _multinomial(b) * mq, _multinomial(p))
    scale = math.lcm(*(f.denominator for f in terms.values()))
    ints = {k: int(f * scale) for k, f in terms.items()}
    g = math.gcd(*ints.values())
    keys = np.array(list(ints), dtype=np.int64).reshape(-1, 3)
    coeff = np.array([v // g for v in ints.values()], dtype=np.int64)
    return keys[:, 0], keys[:, 1], keys[:, 2], coeff


@dataclass
class _Tensor:
    level: int
    rank: int
    mus: tuple[int, ...]  # sorted radial-function indices of its factors (one per moment tensor)
    values: np.ndarray  # (n_samples, n_components) evaluation on the random neighbourhoods
    basic: tuple[int, int] | None = None  # (mu, nu) for a basic moment tensor
    parents: tuple[int, int, int] | None = None  # (tensor A, tensor B, c)


class _Span:
    """Orthonormal basis of accepted evaluation vectors (one per rank/radial-content group)."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []

    def accept(self, vector: np.ndarray) -> bool:
        norm = np.linalg.norm(vector)
        if not np.isfinite(norm) or norm == 0.0:
            return False
        v = vector / norm
        for _ in range(2):  # re-orthogonalise once for stability
            for row in self.rows:
                v = v - (row @ v) * row
        residual = np.linalg.norm(v)
        if residual < _TOL:
            return False
        self.rows.append(v / residual)
        return True


def _random_neighbourhoods(max_mu: int, seed: int = 20240917) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(_N_SAMPLES, _N_NEIGHBOURS, 3))
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    f = rng.normal(size=(_N_SAMPLES, _N_NEIGHBOURS, max_mu + 1))
    return u, f


@functools.cache
def basis_structure(level: int, max_factors: int | None = MLIP_MAX_FACTORS
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``(alpha_index_basic, alpha_index_times, alpha_moment_mapping, alpha_moments_count)`` of level ``level``.

    ``max_factors`` caps how many moment tensors one basis function
    contracts (its body order minus one); ``None`` = no cap. Cached per
    arguments (in memory); arrays are read-only.
    """
    if level < 2:
        raise ValueError(f"MTP level must be >= 2, got {level}")
    cap = level if max_factors is None else int(max_factors)
    max_mu = (level - 2) // 4
    u, f = _random_neighbourhoods(max_mu)
    tensors: list[_Tensor] = []
    spans: dict[tuple[tuple[int, ...], int], _Span] = {}

    def closable(lev: int, rank: int, factors: int) -> bool:
        # a rank > 0 tensor still needs a partner (level >= 2 + rank, one more factor) to become a scalar
        if rank == 0:
            return lev <= level and factors <= cap
        return lev + 2 + rank <= level and factors + 1 <= cap

    def add(t: _Tensor) -> None:
        span = spans.setdefault((t.mus, t.rank), _Span())
        if span.accept(t.values.ravel()):
            tensors.append(t)

    # basic moment tensors M_{mu,nu}
    for mu in range(max_mu + 1):
        for nu in range(level):
            lev = moment_level(mu, nu)
            if not closable(lev, nu, 1):
                continue
            trip = np.array(_triples(nu))
            mono = np.prod(u[:, :, None, :] ** trip[None, None, :, :], axis=-1)  # (S, n, comps)
            values = np.einsum("sn,snc->sc", f[:, :, mu], mono)
            add(_Tensor(lev, nu, (mu,), values, basic=(mu, nu)))

    # contractions, by increasing level of the result
    for lev in range(2, level + 1):
        count = len(tensors)
        for ia in range(count):
            a = tensors[ia]
            for ib in range(ia, count):
                b = tensors[ib]
                if a.level + b.level != lev:
                    continue
                for c in range(min(a.rank, b.rank), -1, -1):
                    rank = a.rank + b.rank - 2 * c
                    if c == 0 and rank != 0:
                        continue  # outer products of tensors are not needed
                    if not closable(lev, rank, len(a.mus) + len(b.mus)):
                        continue
                    ja, jb, jp, coeff = _contraction_rule(a.rank, b.rank, c)
                    terms = a.values[:, ja] * b.values[:, jb] * coeff
                    values = np.zeros((terms.shape[0], len(_triples(rank))))
                    np.add.at(values.T, jp, terms.T)
                    add(_Tensor(lev, rank, tuple(sorted(a.mus + b.mus)), values, parents=(ia, ib, c)))
    return _emit(tensors)


def _emit(tensors: list[_Tensor]):
    """MLIP arrays for the scalars among ``tensors`` and everything they are built from."""
    needed: set[int] = set()
    stack = [i for i, t in enumerate(tensors) if t.rank == 0]
    while stack:
        i = stack.pop()
        if i in needed:
            continue
        needed.add(i)
        if tensors[i].parents is not None:
            stack.extend(tensors[i].parents[:2])
    first: dict[int, int] = {}  # tensor -> alpha-moment index of its first component
    basic_rows: list[tuple[int, int, int, int]] = []
    for i in sorted(needed):
        t = tensors[i]
        if t.basic is not None:
            first[i] = len(basic_rows)
            basic_rows += [(t.basic[0], *trip) for trip in _triples(t.rank)]
    count = len(basic_rows)
    times: list[tuple[int, int, int, int]] = []
    for i in sorted(needed):
        t = tensors[i]
        if t.parents is None:
            continue
        ia, ib, c = t.parents
        first[i] = count
        ja, jb, jp, coeff = _contraction_rule(tensors[ia].rank, tensors[ib].rank, c)
        rows = sorted(zip(jp.tolist(), ja.tolist(), jb.tolist(), coeff.tolist()))
        for p, x, y, m in rows:
            xa, yb = first[ia] + x, first[ib] + y
            times.append((min(xa, yb), max(xa, yb), m, count + p))
        count += len(_triples(t.rank))
    # merge identical (i, j, k) rows (products of a tensor with itself)
    merged: dict[tuple[int, int, int], int] = {}
    for i, j, m, k in times:
        merged[(i, j, k)] = merged.get((i, j, k), 0) + m
    times_arr = np.array([(i, j, m, k) for (i, j, k), m in merged.items() if m != 0], dtype=np.int64)
    times_arr = times_arr.reshape(-1, 4)
    order = np.lexsort((times_arr[:, 1], times_arr[:, 0], times_arr[:, 3]))
    times_arr = times_arr[order]
    mapping = np.array(sorted(first[i] for i in needed if tensors[i].rank == 0), dtype=np.int64)
    basic = np.array(basic_rows, dtype=np.int64).reshape(-1, 4)
    for arr in (basic, times_arr, mapping):
        arr.setflags(write=False)
    return basic, times_arr, mapping, count


def make_template(level: int, species_count: int, radial_basis_size: int = 8,
                  min_dist: float = 1.0, max_dist: float = 5.0,
                  max_factors: int | None = MLIP_MAX_FACTORS) -> MTP:
    """An untrained MTP of the given level (2..28 and beyond) for ``species_count`` species.

    Distances in Å. Coefficients hold MLIP's default initial values and the
    potential is marked ``trained=False``. ``radial_funcs_count`` is one more
    than the largest radial-function index ``mu`` in the basis. By default a
    basis function contracts at most 4 moment tensors, as in MLIP's templates;
    ``max_factors=None`` keeps every contraction of level <= ``level``.
    """
    if species_count < 1:
        raise ValueError(f"species_count must be >= 1, got {species_count}")
    if radial_basis_size < 1:
        raise ValueError(f"radial_basis_size must be >= 1, got {radial_basis_size}")
    basic, times, mapping, count = basis_structure(int(level), max_factors)
    radial_funcs_count = int(basic[:, 0].max()) + 1
    radial, species_coeffs, moment_coeffs = _default_coeffs(species_count, radial_funcs_count,
                                                            radial_basis_size, len(mapping))
    return MTP(
        species_count=species_count,
        min_dist=float(min_dist),
        max_dist=float(max_dist),
        radial_basis_size=radial_basis_size,
        radial_funcs_count=radial_funcs_count,
        radial_coeffs=radial,
        alpha_index_basic=basic.copy(),
        alpha_index_times=times.copy(),
        alpha_moment_mapping=mapping.copy(),
        alpha_moments_count=count,
        species_coeffs=species_coeffs,
        moment_coeffs=moment_coeffs,
        trained=False,
    )


def for_species(template: MTP, species_count: int) -> MTP:
    """An untrained ``template`` set up for ``species_count`` species.

    MLIP-3's templates (``MTP_templates/*.almtp``) ship with
    ``species_count = 1``; ``mlp train`` ignores that count and takes the
    species of the training set. This keeps the template's basis, cutoff and
    radial basis and gives it MLIP's default coefficients for the new count.
    Raises ``ValueError`` for a trained potential (its fitted coefficients
    cannot be extended that way) or a count below 1.
    """
    from dataclasses import replace

    if template.trained:
        raise ValueError("only an untrained template can be set up for another number of species")
    if species_count < 1:
        raise ValueError(f"species_count must be >= 1, got {species_count}")
    radial, species_coeffs, moment_coeffs = _default_coeffs(
        species_count, template.radial_funcs_count, template.radial_basis_size, template.alpha_scalar_moments)
    return replace(template, species_count=species_count, radial_coeffs=radial, species_coeffs=species_coeffs,
                   moment_coeffs=moment_coeffs, active_set=None)
