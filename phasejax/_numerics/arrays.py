"""Array namespaces: each formula is written once and evaluated on the host or on the device.

The theory functions are written against a :class:`Namespace`: an array module ``xp`` (NumPy or
``jax.numpy``) with its special functions ``sp`` (``scipy.special`` or ``jax.scipy.special``).
:func:`namespace` picks it from the arguments:

* any JAX array or tracer selects JAX: the dtype follows the input (float32 by default, float64 under
  ``jax_enable_x64``), and the result is jittable and differentiable;
* anything else (Python numbers, NumPy arrays) selects NumPy, in float64, on the host.

So a host result (lambda*, an exact beta_peak, a critical window) is float64 whatever JAX's configuration,
and the library never toggles it (docs/design.md: no global config in library code). Derivatives on the
host come from :mod:`phasejax._numerics.peak` (Chebyshev interpolation), on the device from JAX autodiff.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp
import numpy as np
import scipy.special as ssp
from jax import lax


class Namespace(NamedTuple):
    """An array module and its special functions (``xp``, ``sp``); ``is_jax`` tells which."""

    xp: Any
    sp: Any
    is_jax: bool

    def asarray(self, x, dtype=None):
        """x as a floating array: NumPy float64 on the host; on the device x's own floating dtype, else the
        default float (float32 unless x64 is on)."""
        if not self.is_jax:
            return np.asarray(x, dtype=dtype or np.float64)
        if dtype is None:
            dtype = x.dtype if (hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)) else default_float()
        return jnp.asarray(x, dtype=dtype)

    def logsumexp(self, x, axis=None):
        return self.sp.logsumexp(x, axis=axis)

    def softplus(self, x):
        """log(1 + e^x), stable for both signs."""
        return self.xp.logaddexp(0.0, x)

    def fori(self, n: int, body, init):
        """``lax.fori_loop`` on the device (one compiled loop), a Python loop on the host."""
        if self.is_jax:
            return lax.fori_loop(0, n, body, init)
        acc = init
        for i in range(n):
            acc = body(i, acc)
        return acc



HOST = Namespace(np, ssp, False)
DEVICE = Namespace(jnp, jsp, True)


def is_jax(x) -> bool:
    """Whether ``x`` is a JAX array or tracer."""
    return isinstance(x, jax.Array)


def namespace(*xs) -> Namespace:
    """:data:`DEVICE` if any argument is a JAX array (or tracer), else :data:`HOST` (NumPy float64).

    >>> import jax.numpy as jnp
    >>> namespace(1.0).is_jax, namespace(1.0, jnp.ones(2)).is_jax
    (False, True)
    """
    return DEVICE if any(is_jax(x) for x in xs) else HOST


def default_float():
    """JAX's default floating dtype: float32, or float64 when ``jax_enable_x64`` is on."""
    return jnp.result_type(float)


def as_float(x):
    """x as a floating JAX array (the default float dtype unless x is already floating)."""
    if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating):
        return jnp.asarray(x)
    return jnp.asarray(x, dtype=default_float())
