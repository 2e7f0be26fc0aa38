"""Weighted least-squares straight line, shared by the MSD → D fit and the Arrhenius fits.

``y = intercept + slope·x`` minimising ``χ² = Σ w (y − intercept − slope·x)²`` through
:func:`numpy.polyfit` (column-scaled least squares: stable for x = 1/T ≈ 1e-3 K⁻¹ next to
a column of ones).  ``y`` may hold several data sets as columns (one fit each, same x and
weights), e.g. the MSD curve of every ion.  Units are the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LineFit", "weighted_line_fit"]


@dataclass(frozen=True)
class LineFit:
    """Result of :func:`weighted_line_fit`.

    ``intercept``, ``slope``, ``chi2``: floats, or arrays with one entry per column of ``y``;
    ``cov_unscaled``: (XᵀWX)⁻¹ for (intercept, slope), the covariance when the weights are
    1/σ² with the σ right; ``n``: number of points.
    """

    intercept: float | np.ndarray
    slope: float | np.ndarray
    cov_unscaled: np.ndarray
    chi2: float | np.ndarray
    n: int

    @property
    def dof(self) -> int:
        """Degrees of freedom of the residual (n − 2)."""
        return self.n - 2

    def cov(self, scale: str = "reduced_chi2") -> np.ndarray:
        """Covariance of (intercept, slope) for a single data set.

        ``scale``: ``"none"`` (the weights are 1/σ² with the σ right), ``"reduced_chi2"``
        (σ known only up to a common factor: scale by χ²/(n−2), as
        ``scipy.optimize.curve_fit(absolute_sigma=False)``) or ``"birge"`` (σ given but
        possibly too small: scale by max(1, χ²/(n−2)), the Birge ratio).  With n = 2 no
        scaling is possible and the unscaled matrix is returned.
        """
        if np.ndim(self.chi2) != 0:
            raise ValueError("cov() is for a single data set")
        if scale not in ("none", "reduced_chi2", "birge"):
            raise ValueError(f"unknown covariance scaling {scale!r}")
        if scale == "none" or self.dof <= 0:
            return self.cov_unscaled.copy()
        red = float(self.chi2) / self.dof
        return self.cov_unscaled * (max(1.0, red) if scale == "birge" else red)


def weighted_line_fit(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> LineFit:
    """Weighted least-squares line through ``(x, y)``; ``weights`` (default 1) multiply the
    squared residuals.  ``y``: (n,) or (n, k) for k data sets.  Needs n ≥ 2 distinct x."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, float)
    if x.ndim != 1 or len(x) < 2 or y.shape[0] != len(x) or w.shape != x.shape:
        raise ValueError(f"weighted_line_fit: x {x.shape}, y {y.shape}, weights {w.shape} do not match")
    coef, cov = np.polyfit(x, y, 1, w=np.sqrt(w), cov="unscaled")
    if cov.ndim == 3:
        cov = cov[:, :, 0]
    slope, intercept = coef[0], coef[1]
    xcol = x if y.ndim == 1 else x[:, None]
    wcol = w if y.ndim == 1 else w[:, None]
    chi2 = np.sum(wcol * (y - intercept - slope * xcol) ** 2, axis=0)
    cov = cov[::-1, ::-1]  # polyfit orders (slope, intercept)
    if y.ndim == 1:
        return LineFit(float(intercept), float(slope), cov, float(chi2), len(x))
    return LineFit(intercept, slope, cov, chi2, len(x))
