"""Library-independent references shared by the phasejax.heat tests (imported as ``_heat_ref``)."""

from __future__ import annotations

from scipy import special


def p_ref(t, d, l):
    """Normalised Gegenbauer polynomial from SciPy (Legendre for d = 3, Chebyshev T for d = 2)."""
    if d == 2:
        return special.eval_chebyt(l, t)
    a = (d - 2) / 2
    return special.eval_gegenbauer(l, a, t) / special.eval_gegenbauer(l, a, 1.0)
