"""Key laws by the names the command line uses (``--geometry``).
"""

from __future__ import annotations

import math

from .._checks import InputError, check_int
from .base import KeyLaw
from .sphere import PowerLawCap, Subsphere, UniformSphere

__all__ = ["law_from_name"]


LAW_NAMES = ("uniform", "powerlaw", "subsphere", "gaussian")


def law_from_name(name: str, *, d: int, alpha: float | None = None, m: int | None = None,
                  sigma: float | None = None) -> KeyLaw:
    """Build a key law from its CLI name: ``uniform``, ``powerlaw`` (needs alpha), ``subsphere`` (needs m)
    or ``gaussian`` (i.i.d. N(0, sigma^2) scores, :class:`phasejax.laws.GaussianScores`; sigma defaults
    to 1/sqrt(d), the score spread of uniform keys on S^{d-1}; d is then ignored otherwise)."""
    if name == "uniform":
        return UniformSphere(d)
    if name == "powerlaw":
        if alpha is None:
            raise InputError("geometry 'powerlaw' needs --alpha (the local exponent, > 0)")
        return PowerLawCap(d, alpha)
    if name == "subsphere":
        if m is None:
            raise InputError("geometry 'subsphere' needs --subsphere-dim M (2 <= M <= d)")
        return Subsphere(d, m)
    if name == "gaussian":
        from .scores import GaussianScores

        if sigma is None:
            d = check_int("d", d, minimum=1)
            sigma = 1.0 / math.sqrt(d)
        return GaussianScores(sigma)
    raise InputError(f"geometry must be one of {', '.join(map(repr, LAW_NAMES))}; got {name!r}")
