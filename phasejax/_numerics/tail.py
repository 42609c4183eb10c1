"""The Hill (maximum-likelihood) estimate of a power-law gap tail, P(u <= s) ~ C s^h (docs/theory.md §d).

One implementation, used by :class:`phasejax.laws.Empirical` (its ``alpha`` and ``C``) and by
:func:`phasejax.estimate.fit_tail` (which adds the choice of k, intervals and goodness of fit). Host,
NumPy float64.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Hill(NamedTuple):
    """Pooled Hill estimate from Q rows of sorted gaps at k.

    ``log_ratios`` (Q, k) = log(u_(k+1)/u_(i)), i.i.d. Exp(rate h) under a pure power law; ``h`` = Qk / T,
    T their sum; ``log_u_k1`` (Q,) = log u_(k+1); ``log_c`` (Q,) = psi(k+1) - psi(n+1) - h log u_(k+1), the
    estimate of log C that is unbiased given h (E log U_(k+1) = psi(k+1) - psi(n+1), U_(k+1) ~ Beta(k+1, n-k))."""

    h: float
    log_ratios: np.ndarray
    log_u_k1: np.ndarray
    log_c: np.ndarray


def hill(u_sorted, k: int, n) -> Hill:
    """The Hill estimate at k from gaps sorted ascending per row (Q, >= k+1), each row the smallest gaps of
    ``n`` keys (a number or one per row)."""
    from scipy.special import digamma

    u = np.asarray(u_sorted, np.float64)
    u = u[None, :] if u.ndim == 1 else u
    lu = np.log(u[:, : k + 1])
    logs = lu[:, k : k + 1] - lu[:, :k]
    h = logs.size / float(logs.sum())
    log_c = digamma(k + 1) - digamma(np.asarray(n, np.float64) + 1) - h * lu[:, k]
    return Hill(h, logs, lu[:, k], np.broadcast_to(log_c, (u.shape[0],)))
