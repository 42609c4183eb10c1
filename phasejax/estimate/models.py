"""Diagnosis of attention layers brought as flax modules: the queries and keys each head feeds its softmax,
beta_eff = s |Q| |K| per pair, the local exponent of the keys around the queries and the regime
(docs/theory.md §d; DESIGN conventions).

Shapes: inputs ``Float[Array, "B L features"]``; :func:`extract_qk` -> queries, keys
``Float[Array, "B L H D"]``; :class:`HeadDiagnosis` arrays have one entry per head.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from .._checks import InputError, check_array, check_real
from ..theory.regimes import DEFAULT_BAND, regime
from .tail import fit_tail, smallest_gaps

__all__ = ["extract_qk", "HeadDiagnosis", "diagnose_flax"]


def extract_qk(layer, params, inputs_q, inputs_k=None):
    """Per-head queries and keys exactly as a flax linen ``MultiHeadDotProductAttention`` feeds its attention.

    The layer is cloned with its ``attention_fn`` wrapped to record (query, key) and then call the original,
    so every projection detail (DenseGeneral kernels and biases, ``normalize_qk`` LayerNorms, dtypes,
    precision) is the layer's own. ``params`` is the layer's parameter dict (``variables['params']`` or the
    variables themselves). Returns (Q, K), each (B, L, H, D): batch, length, heads, head_dim.

    Why linen: it is what most published flax models use; ``flax.nnx`` layers can be converted with
    ``nnx.bridge`` (not done here).
    """
    import flax.linen as nn

    if not isinstance(layer, nn.MultiHeadDotProductAttention):
        raise InputError(f"layer must be a flax.linen.MultiHeadDotProductAttention, got {type(layer).__name__}")
    variables = params if (isinstance(params, dict) and "params" in params) else {"params": params}
    x = jnp.asarray(inputs_q)
    if x.ndim < 2:
        raise InputError(f"inputs_q must be (batch..., length, features), got shape {x.shape}")
    check_array("inputs_q", np.asarray(x))
    if inputs_k is not None:
        check_array("inputs_k", np.asarray(inputs_k))
    captured = {}
    original = layer.attention_fn

    @functools.wraps(original)
    def capture(query, key, *args, **kwargs):
        captured["q"], captured["k"] = query, key
        return original(query, key, *args, **kwargs)

    clone = layer.clone(attention_fn=capture, parent=None)
    try:
        clone.apply(variables, x, inputs_k)
    except (TypeError, ValueError, KeyError) as e:
        raise InputError(f"the layer could not be applied to inputs of shape {x.shape}: {e}") from None
    return captured["q"], captured["k"]


@dataclasses.dataclass(frozen=True)
class HeadDiagnosis:
    """Per-head report of :func:`diagnose_flax` (arrays have one entry per head, H)."""

    context_length: int
    scale: float
    beta_quantile_levels: np.ndarray  # (P,)
    beta_eff_quantiles: np.ndarray  # (H, P) of s |Q| |K| over (batch, query, key) pairs
    beta_typical: np.ndarray  # (H,) median of beta_eff
    fits: tuple  # H TailFit
    alpha: np.ndarray
    alpha_se: np.ndarray
    C: np.ndarray
    lambda_star: np.ndarray
    lambda_ratio: np.ndarray
    E_max_weight_poisson: np.ndarray
    mean_max_weight: np.ndarray  # measured from the layer's logits
    regime: tuple


def diagnose_flax(
    layer,
    params,
    inputs_q,
    inputs_k=None,
    *,
    scale: float | None = None,
    quantiles: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95),
    max_queries: int = 256,
    band: Sequence[float] = DEFAULT_BAND,
    seed: int = 0,
    **fit_kwargs,
) -> HeadDiagnosis:
    """Per head of a flax linen ``MultiHeadDotProductAttention``: beta_eff, alpha, regime (DESIGN conventions).

    For each head, with Q, K from :func:`extract_qk` and s = ``scale`` (default 1/sqrt(head_dim), the scale
    of flax's ``dot_product_attention``), the logit of (query i, key j) is s Q_i.K_j = beta_ij <q_i, k_j>
    with beta_ij = s |Q_i| |K_j| and q, k the unit directions. Reported per head:

    * quantiles of beta_eff = s |Q||K| over all (batch, query, key) pairs, and beta_typical (the median);
    * alpha, C from :func:`fit_tail` on the gaps |q_i - k_j|^2/2 of each unit query to the unit keys of its
      own sequence (pooled over the batch and at most ``max_queries`` queries; n = key length L);
    * the regime of beta_typical at n = L (:func:`regime`): lambda/lambda*, Poisson-limit E[max weight],
      name; and the measured mean max attention weight of the layer's own logits, for comparison.

    No mask is applied (full attention over the L keys); key norms that vary make a head's softmax differ
    from a pure beta <q,k> softmax, which the beta_eff spread shows.

    >>> import jax, jax.numpy as jnp, flax.linen as nn
    >>> layer = nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=8)
    >>> x = jax.random.normal(jax.random.key(0), (2, 64, 8))
    >>> params = layer.init(jax.random.key(1), x)["params"]
    >>> diagnose_flax(layer, params, x).alpha.shape
    (2,)
    """
    q, k = extract_qk(layer, params, inputs_q, inputs_k)
    q = np.asarray(q, np.float64)
    k = np.asarray(k, np.float64)
    if q.ndim == 3:  # no batch axis
        q, k = q[None], k[None]
    q = q.reshape((-1,) + q.shape[-3:])
    k = k.reshape((-1,) + k.shape[-3:])
    nb, lq, nh, hd = q.shape
    lk = k.shape[1]
    if lk < 8:
        raise InputError(f"the key length must be >= 8 to estimate alpha, got {lk}")
    s = 1.0 / math.sqrt(hd) if scale is None else check_real("scale", scale, positive=True)
    levels = np.asarray(quantiles, np.float64)
    qn = np.linalg.norm(q, axis=-1)  # (B, Lq, H)
    kn = np.linalg.norm(k, axis=-1)  # (B, Lk, H)
    if np.any(qn == 0) or np.any(kn == 0):
        raise InputError("a projected query or key is the zero vector; its direction (and alpha) is undefined")
    rng = np.random.default_rng(seed)
    fits, bq, btyp, mmw = [], [], [], []
    for head in range(nh):
        beta_pairs = s * qn[:, :, head, None] * kn[:, None, :, head]  # (B, Lq, Lk)
        bq.append(np.quantile(beta_pairs, levels))
        btyp.append(float(np.median(beta_pairs)))
        logits = s * np.einsum("bid,bjd->bij", q[:, :, head], k[:, :, head])
        logits -= logits.max(-1, keepdims=True)
        w = np.exp(logits)
        mmw.append(float(np.mean(1.0 / w.sum(-1))))  # max weight = e^0 / sum
        per_b = max(1, max_queries // nb)
        rows = []
        for b in range(nb):
            sel = rng.choice(lq, size=min(lq, per_b), replace=False)
            rows.append(smallest_gaps(q[b, sel, head], k[b, :, head]))
        fits.append(fit_tail(np.concatenate(rows, axis=0), n=lk, **fit_kwargs))
    alpha = np.array([f.alpha for f in fits])
    cc = np.array([f.C for f in fits])
    regs = [regime(bt, lk, f.alpha, f.C, band=band) for bt, f in zip(btyp, fits, strict=True)]
    return HeadDiagnosis(
        context_length=int(lk), scale=float(s), beta_quantile_levels=levels, beta_eff_quantiles=np.stack(bq),
        beta_typical=np.asarray(btyp), fits=tuple(fits), alpha=alpha, alpha_se=np.array([f.alpha_se for f in fits]),
        C=cc, lambda_star=np.array([r.lambda_star for r in regs]),
        lambda_ratio=np.array([float(r.lambda_ratio.ravel()[0]) for r in regs]),
        E_max_weight_poisson=np.array([float(r.E_max_weight.ravel()[0]) for r in regs]),
        mean_max_weight=np.asarray(mmw), regime=tuple(r.name[0] for r in regs),
    )
