"""Keys given as data: :class:`Empirical` resamples an array or a .npy file (pickles refused) and
estimates alpha and C from the nearest-neighbour gaps to a query (the Hill estimate of
:func:`phasejax.estimate.fit_tail` at a fixed k; docs/theory.md §d).
"""

from __future__ import annotations

import math
import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import InputError, check_array, check_int, check_unit_vectors
from .._numerics.tail import hill
from .base import KeyLaw, gaps_from_keys

__all__ = ["Empirical", "load_npy"]


class Empirical(KeyLaw):
    """Keys given as data (an array or a .npy file; pickles are refused).

    ``sample_keys`` draws n rows (without replacement when n <= number of rows, else with
    replacement). ``alpha`` and ``C`` are estimated from the ``k`` smallest gaps to
    ``query`` by maximum likelihood (Hill): with u_(1) <= ... <= u_(k+1),
    1/h = mean_i log(u_(k+1)/u_(i)), alpha = 2h, log C = psi(k+1) - psi(N+1) - h log u_(k+1) (unbiased given
    h), se(alpha) = alpha/sqrt(k): the estimator of :func:`phasejax.estimate.fit_tail` at a fixed k.
    """

    keys: Float[Array, "N d"]
    query: Float[Array, " d"] | None
    k: int = eqx.field(static=True)

    def __init__(self, keys, query=None, *, k: int | None = None, normalize_keys: bool = True):
        if isinstance(keys, (str, os.PathLike)):
            keys = load_npy(keys, "keys")
        check_array("keys", keys, ndim=2)
        arr = np.asarray(keys, dtype=np.float64)
        d = check_int("keys.shape[1] (d)", arr.shape[1], minimum=2)
        norms = np.linalg.norm(arr, axis=1)
        if np.any(norms == 0):
            raise InputError(f"keys has a zero vector (row {int(np.argmin(norms))}); keys must be nonzero")
        if normalize_keys:
            arr = arr / norms[:, None]
        else:
            check_unit_vectors("keys", arr)
        self.d = d
        self.keys = jnp.asarray(arr, dtype=jnp.result_type(float))
        if query is not None:
            if isinstance(query, (str, os.PathLike)):
                query = load_npy(query, "query")
            check_array("query", query, ndim=1, last_dim=d)
            q = np.asarray(query, dtype=np.float64)
            if np.linalg.norm(q) == 0:
                raise InputError("query is the zero vector; it must be nonzero")
            self.query = jnp.asarray(q / np.linalg.norm(q), dtype=self.keys.dtype)
        else:
            self.query = None
        n_keys = arr.shape[0]
        default_k = max(2, min(n_keys - 1, int(round(math.sqrt(n_keys)))))
        self.k = check_int("k", default_k if k is None else k, minimum=2, maximum=max(2, n_keys - 1))

    def _tail(self):
        if self.query is None:
            raise InputError("Empirical: alpha and C need a query; pass query=... to Empirical(keys, query)")
        u = np.sort(np.asarray(gaps_from_keys(self.query, self.keys), dtype=np.float64))
        if u[0] <= 0:
            raise InputError("Empirical: the query coincides with a key (zero gap); alpha is undefined")
        est = hill(u, self.k, u.size)
        return est.h, math.exp(float(est.log_c[0]))

    @property
    def alpha(self) -> float:
        return 2.0 * self._tail()[0]

    @property
    def alpha_se(self) -> float:
        return self.alpha / math.sqrt(self.k)

    @property
    def C(self) -> float:
        return float(self._tail()[1])

    def sample_keys(self, key, query=None, n: int | None = None):
        n_rows = self.keys.shape[0]
        n = n_rows if n is None else check_int("n", n, minimum=1)
        if n <= n_rows:
            idx = jax.random.permutation(key, n_rows)[:n]
        else:
            idx = jax.random.randint(key, (n,), 0, n_rows)
        return self.keys[idx]

    def sample_gaps(self, key, n: int | None = None, *, dtype=None):
        """Gaps to ``self.query`` of n resampled keys."""
        if self.query is None:
            raise InputError("Empirical.sample_gaps needs a query; pass query=... to Empirical(keys, query)")
        keys = self.sample_keys(key, None, n)
        return gaps_from_keys(self.query, keys).astype(dtype or keys.dtype)

    @property
    def has_gap_law(self) -> bool:
        return False


def load_npy(path, name: str = "file"):
    """Load a .npy array with pickles refused; unreadable files raise :class:`InputError`."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{name}: no such file {path!r}")
    if os.path.isdir(path):
        raise InputError(f"{name}: {path!r} is a folder, not a .npy file")
    try:
        arr = np.load(path, allow_pickle=False)
    except EOFError:
        raise InputError(f"{name}: {path!r} is empty or truncated (not a complete .npy array)") from None
    except ValueError as e:
        raise InputError(f"{name}: {path!r} is not a plain .npy array (pickles are refused): {e}") from None
    except OSError as e:
        raise InputError(f"{name}: cannot read {path!r}: {e}") from None
    if not isinstance(arr, np.ndarray):  # np.load opens an .npz archive whatever the file is called
        if hasattr(arr, "close"):
            arr.close()
        raise InputError(f"{name}: {path!r} is an .npz archive, not a .npy array; save one array with np.save")
    return arr
