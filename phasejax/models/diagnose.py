"""Where the heads of a real checkpoint sit on the phase diagram (docs/theory.md §c, §d, §h; docs/models.md).

:func:`diagnose_model` runs one forward pass (:meth:`Model.capture`) and, per layer n and query head h, from the
captured Q, K (L, D_h), scale s and probabilities P (L, L):

* **beta_eff** = s |Q_i| |K_j| over the (query, key) pairs the query sees (all pairs for encoders, j <= i for
  causal models), as quantiles; and **beta at the nearest key**, beta_i = s |Q_i| |K_j*(i)| with j*(i) the
  visible key of largest cosine. The head's beta is the median of beta_i over the query set.
* **alpha +- se, C** and the goodness-of-fit verdict from :func:`phasejax.estimate.fit_tail` (the existing pooled
  Hill estimator, k by its goodness-of-fit rule) on the gaps u_ij = 1 - <q_i, k_j> (unit vectors) of the query
  set. Query set: every position for encoders (at most ``max_queries``, drawn with ``seed``), with all L keys;
  for causal models the positions t >= L/2 with the keys s <= L/2 that all of them see (n = floor(L/2) + 1).
* **theory at the real context length** n (L for encoders, the mean number of keys the causal query set sees):
  lambda = beta / n^{2/alpha}, lambda/lambda*, and the Poisson-limit E[max weight] and E[entropy]
  (:func:`phasejax.theory.regime`, :func:`phasejax.theory.poisson_expected_entropy`, rho = C lambda^{-alpha/2}).
* **measured**: max_j P_ij and the entropy -sum_j P_ij log P_ij of the head's own attention rows, mean +- se
  (sd / sqrt(Q)) over the query set; the disagreement (predicted - measured) in se units and relative.
* **forecast**: the context length n_exit above which the head is subcritical (Poisson-limit E[max weight] below
  ``band[0]``): with no schedule, n_exit = (beta / lambda_lo)^{alpha/2} (:func:`band_context_lengths`); with the
  model's own schedule (:func:`phasejax.schedules.from_config`), beta(n) = beta g(n) / g(n_now) and n_exit is where
  beta(n) / n^{2/alpha} falls below lambda_lo (log grid up to 1e15, interpolated in log n; inf if never).

The theory is that of a pure softmax beta <q, k> with a power-law gap law; real heads have varying key norms and
correlated keys, which the disagreement columns measure rather than hide.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence

import numpy as np

from .._checks import InputError, check_int, check_real
from ..estimate.tail import fit_tail
from ..runtime.io import jsonable
from ..schedules import from_config
from ..theory.poisson import poisson_expected_entropy
from ..theory.regimes import DEFAULT_BAND, band_context_lengths, max_weight_band, regime

__all__ = ["HeadReport", "ModelDiagnosis", "diagnose_model", "head_quantities"]

QUANTILE_LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)
_N_MAX = 1e15


@dataclasses.dataclass(frozen=True)
class HeadReport:
    """One head's diagnosis (see the module docstring for every quantity)."""

    layer: int
    head: int
    beta_eff_quantiles: tuple[float, ...]
    beta_nearest_quantiles: tuple[float, ...]
    beta: float
    alpha: float
    alpha_se: float
    C: float
    C_se: float
    k: int
    gof_ok: bool
    ks_pvalue: float
    trend_pvalue: float
    stability_pvalue: float
    n: float
    lambda_star: float
    lambda_ratio: float
    E_max_weight: float
    E_entropy: float
    max_weight: float
    max_weight_se: float
    entropy: float
    entropy_se: float
    max_weight_z: float
    max_weight_rel: float
    entropy_z: float
    entropy_rel: float
    regime: str
    lambda_band: tuple[float, float]
    n_exit: float
    n_exit_schedule: float
    note: str = ""


@dataclasses.dataclass(frozen=True)
class ModelDiagnosis:
    """Every head of a model on one text: :class:`HeadReport` per (layer, head), and what was run."""

    path: str
    model_type: str
    dtype: str
    num_tokens: int
    causal: bool
    num_layers: int
    num_heads: int
    layer_index: tuple[int, ...]
    head_index: tuple[int, ...]
    scale: float
    context_length: float
    num_queries: int
    quantile_levels: tuple[float, ...]
    band: tuple[float, float]
    schedule_constant: bool
    schedule_note: str
    heads: tuple[HeadReport, ...]

    def field(self, name: str) -> np.ndarray:
        """A per-head quantity as an array (num_layers, num_heads) over the diagnosed layers and heads."""
        vals = np.array([getattr(h, name) for h in self.heads], dtype=np.float64)
        return vals.reshape(self.num_layers, self.num_heads)

    def regime_at(self, n, *, schedule: bool = True, config: dict | None = None) -> dict:
        """lambda/lambda* and Poisson-limit E[max weight] per head at context length(s) n, shapes (N, H, len(n)).

        ``schedule``: beta follows the schedule that ``config`` (the model's config.json, a dict or path) deploys,
        g(n) / g(n_now); else beta stays at its measured value.
        """
        ns = np.atleast_1d(np.asarray(n, np.float64))
        if schedule and config is None:
            raise InputError("config must be given (the model's config.json) when schedule=True")
        sched = from_config(config) if schedule else None
        lam, ew = [], []
        for h in self.heads:
            if not math.isfinite(h.alpha):  # no theory for this head
                lam.append(np.full(ns.shape, np.nan))
                ew.append(np.full(ns.shape, np.nan))
                continue
            b = h.beta * _schedule_ratio(sched, h.layer, ns, self.context_length)
            r = regime(b, ns, h.alpha, h.C, band=self.band)
            lam.append(r.lambda_ratio)
            ew.append(r.E_max_weight)
        shape = (self.num_layers, self.num_heads, ns.size)
        return {"n": ns, "lambda_ratio": np.reshape(lam, shape), "E_max_weight": np.reshape(ew, shape)}

    def to_dict(self) -> dict:
        """JSON-ready dict: the run's fields, ``heads`` (a list of per-head dicts) and per-field (N, H) tables."""
        d = dataclasses.asdict(self)
        d["tables"] = {name: self.field(name) for name in
                       ("alpha", "lambda_ratio", "E_max_weight", "max_weight", "entropy", "beta", "n_exit",
                        "n_exit_schedule")}
        return jsonable(d)

    def to_json(self, **kwargs) -> str:
        """:meth:`to_dict` as a JSON string (non-finite numbers as JSON null via :func:`runtime.io.jsonable`)."""
        return json.dumps(self.to_dict(), **kwargs)


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    x = np.asarray(x, np.float64)
    se = float(np.std(x, ddof=1) / math.sqrt(x.size)) if x.size > 1 else float("nan")
    return float(np.mean(x)), se


def _layer_type_of(sched, layer: int):
    for lt in sched.layer_types:
        if layer in lt.layers or lt.name == "all":
            return lt
    return sched.layer_types[0]


def _schedule_ratio(sched, layer: int, ns: np.ndarray, n_now: float) -> np.ndarray:
    """g(n) / g(n_now) of the layer's type (1 without a schedule)."""
    if sched is None:
        return np.ones_like(ns)
    lt = _layer_type_of(sched, layer)
    return lt.logit_factor(ns) / lt.logit_factor(np.array([n_now]))[0]


def _n_exit_schedule(beta, alpha, lam_lo, ratio_fn, n_now) -> float:
    grid = np.geomspace(1.0, _N_MAX, 1501)
    lam = beta * ratio_fn(grid) / grid ** (2 / alpha)
    above = np.nonzero(lam >= lam_lo)[0]
    if above.size == 0:
        return 1.0
    i = int(above[-1])
    if i == grid.size - 1:
        return math.inf
    x0, x1 = math.log(grid[i]), math.log(grid[i + 1])
    y0, y1 = math.log(lam[i] / lam_lo), math.log(lam[i + 1] / lam_lo)
    return float(math.exp(x0 + (x1 - x0) * y0 / (y0 - y1)))


def head_quantities(queries, keys, scale: float, probabilities, *, causal: bool, max_queries: int = 512,
                    seed: int = 0, levels: Sequence[float] = QUANTILE_LEVELS) -> dict:
    """The raw per-head measurements of one head (host float64): the pieces :func:`diagnose_model` reports.

    Returns ``query_index`` (the query set), ``key_index`` (keys used by the fit), ``gaps`` (Q, n) for
    :func:`fit_tail`, ``n_fit``, ``beta_eff_quantiles``, ``beta_nearest`` (per query in the set), ``max_weight``,
    ``entropy`` (per query in the set), ``keys_seen`` (per query in the set).

    >>> rng = np.random.default_rng(0)
    >>> q, k = rng.normal(size=(16, 4)), rng.normal(size=(16, 4))
    >>> z = 0.5 * q @ k.T
    >>> p = np.exp(z - z.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
    >>> r = head_quantities(q, k, 0.5, p, causal=False)
    >>> r["gaps"].shape, bool(np.allclose(r["max_weight"], p.max(1)))
    ((16, 16), True)
    """
    q = np.asarray(queries, np.float64)
    k = np.asarray(keys, np.float64)
    p = np.asarray(probabilities, np.float64)
    L = q.shape[0]  # noqa: N806
    qn, kn = np.linalg.norm(q, axis=-1), np.linalg.norm(k, axis=-1)
    if np.any(qn == 0) or np.any(kn == 0):
        raise InputError("a captured query or key is the zero vector; its direction (and alpha) is undefined")
    cos = (q / qn[:, None]) @ (k / kn[:, None]).T
    beta = scale * qn[:, None] * kn[None, :]
    visible = np.tril(np.ones((L, L), bool)) if causal else np.ones((L, L), bool)
    if causal:
        cand = np.arange(L // 2, L)
        key_index = np.arange(L // 2 + 1)
    else:
        cand = np.arange(L)
        key_index = np.arange(L)
    if cand.size > max_queries:
        cand = np.sort(np.random.default_rng(seed).choice(cand, size=max_queries, replace=False))
    gaps = np.maximum(1.0 - cos[np.ix_(cand, key_index)], 0.0)
    masked_cos = np.where(visible, cos, -np.inf)
    nearest = np.argmax(masked_cos[cand], axis=1)
    pr = p[cand]
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.sum(np.where(pr > 0, pr * np.log(pr), 0.0), axis=1)
    return {
        "query_index": cand,
        "key_index": key_index,
        "gaps": gaps,
        "n_fit": int(key_index.size),
        "beta_eff_quantiles": np.quantile(beta[visible], np.asarray(levels, np.float64)),
        "beta_nearest": beta[cand, nearest],
        "max_weight": pr.max(axis=1),
        "entropy": ent,
        "keys_seen": visible[cand].sum(axis=1).astype(np.float64),
    }


def diagnose_model(
    model,
    text_or_ids,
    *,
    band: Sequence[float] = DEFAULT_BAND,
    k: int | str = "gof",
    level: float = 0.1,
    max_queries: int = 512,
    seed: int = 0,
    levels: Sequence[float] = QUANTILE_LEVELS,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
) -> ModelDiagnosis:
    """Diagnose every head of ``model`` (a :class:`phasejax.models.Model`) on a text or token ids.

    ``band``: the E[max weight] band called critical (default 0.1 to 0.9, as ``phasejax diagnose``); ``k`` and
    ``level``: the tail fit's k rule (:func:`phasejax.estimate.fit_tail`). ``layers`` / ``heads``: diagnose only
    these layer and head indices (default all; the theory costs ~0.3 s a head on one core). Needs at least 16 tokens
    (32 for causal models: the fit uses L/2 + 1 keys). See the module docstring for every quantity.
    """
    band = tuple(float(check_real("band", b, minimum=0.0, maximum=1.0)) for b in band)
    max_queries = check_int("max_queries", max_queries, minimum=2)
    ids = model.encode(text_or_ids) if isinstance(text_or_ids, str) else np.asarray(text_or_ids)
    cap = model.capture(ids)
    L = int(cap.ids.size)  # noqa: N806
    need = 32 if model.causal else 16
    if L < need:
        raise InputError(f"the text has {L} tokens; diagnosing a head needs at least {need} (enough gaps to fit alpha)")
    try:
        sched = from_config(model.config)
        const = all(np.allclose(lt.logit_factor(np.geomspace(1, _N_MAX, 31)), 1.0) for lt in sched.layer_types)
        note = ("the config deploys no temperature schedule (logit factor 1 at every n)" if const else
                "beta(n) follows schedules.from_config(config.json) (engine hf)")
    except InputError as e:
        sched, const, note = None, True, f"schedules.from_config refused the config ({e}); no schedule used"
    n_layers, n_heads = len(cap.layers), int(cap.layers[0].queries.shape[0])
    layer_sel = _selection("layers", layers, n_layers)
    head_sel = _selection("heads", heads, n_heads)
    reports = []
    n_now = None
    for li in layer_sel:
        lc = cap.layers[li]
        for hi in head_sel:
            r = head_quantities(lc.queries[hi], lc.keys[hi], lc.scale, lc.probabilities[hi], causal=lc.causal,
                                max_queries=max_queries, seed=seed + li * 1000 + hi, levels=levels)
            n_now = float(np.mean(r["keys_seen"]))
            beta = float(np.median(r["beta_nearest"]))
            mw, mw_se = _mean_se(r["max_weight"])
            en, en_se = _mean_se(r["entropy"])
            measured = dict(
                layer=li, head=hi, beta_eff_quantiles=tuple(map(float, r["beta_eff_quantiles"])),
                beta_nearest_quantiles=tuple(map(float, np.quantile(r["beta_nearest"], levels))), beta=beta, n=n_now,
                max_weight=mw, max_weight_se=mw_se, entropy=en, entropy_se=en_se)
            try:
                theory = _theory(r, beta, n_now, mw, mw_se, en, en_se, k, level, band, sched, const, li)
            except (InputError, ValueError, OverflowError, ZeroDivisionError, FloatingPointError) as e:
                # a degenerate head (e.g. repeated tokens: coinciding keys, alpha beyond float64): no theory for it
                theory = _no_theory(f"{type(e).__name__}: {e}")
            reports.append(HeadReport(**measured, **theory))
    first = cap.layers[0]
    return ModelDiagnosis(
        path=model.path, model_type=model.model_type, dtype=model.dtype, num_tokens=L, causal=model.causal,
        num_layers=len(layer_sel), num_heads=len(head_sel), layer_index=layer_sel, head_index=head_sel,
        scale=float(first.scale),
        context_length=float(n_now), num_queries=int(min(max_queries, L if not model.causal else L - L // 2)),
        quantile_levels=tuple(map(float, levels)), band=band, schedule_constant=bool(const), schedule_note=note,
        heads=tuple(reports))


def _theory(r, beta, n_now, mw, mw_se, en, en_se, k, level, band, sched, const, li) -> dict:
    fit = fit_tail(r["gaps"], n=r["n_fit"], k=k, level=level)
    if not (math.isfinite(fit.alpha) and fit.alpha > 0 and math.isfinite(fit.C) and fit.C > 0):
        raise ValueError(f"the tail fit gave alpha = {fit.alpha:.4g}, C = {fit.C:.4g}")
    reg = regime(beta, n_now, fit.alpha, fit.C, band=band)
    lam = float(reg.lam.ravel()[0])
    ew = float(reg.E_max_weight.ravel()[0])
    eh = float(poisson_expected_entropy(fit.alpha / 2, fit.C * lam ** (-fit.alpha / 2)))
    lo, _ = max_weight_band(fit.alpha, fit.C, band)
    _, n_exit = band_context_lengths(beta, fit.alpha, fit.C, band=band)
    n_exit_s = n_exit if sched is None or const else _n_exit_schedule(
        beta, fit.alpha, lo, lambda ns: _schedule_ratio(sched, li, ns, n_now), n_now)
    return dict(
        alpha=fit.alpha, alpha_se=fit.alpha_se, C=fit.C, C_se=fit.C_se, k=int(fit.k),
        gof_ok=bool(fit.gof_ok), ks_pvalue=fit.ks_pvalue, trend_pvalue=fit.trend_pvalue,
        stability_pvalue=fit.stability_pvalue, lambda_star=float(reg.lambda_star),
        lambda_ratio=float(reg.lambda_ratio.ravel()[0]), E_max_weight=ew, E_entropy=eh,
        max_weight_z=(ew - mw) / mw_se if mw_se > 0 else math.nan, max_weight_rel=ew / mw - 1,
        entropy_z=(eh - en) / en_se if en_se > 0 else math.nan, entropy_rel=eh / en - 1 if en > 0 else math.nan,
        regime=reg.name[0], lambda_band=tuple(map(float, reg.lambda_band)), n_exit=float(n_exit),
        n_exit_schedule=float(n_exit_s), note="")


def _no_theory(why: str) -> dict:
    nan = math.nan
    return dict(alpha=nan, alpha_se=nan, C=nan, C_se=nan, k=0, gof_ok=False, ks_pvalue=nan, trend_pvalue=nan,
                stability_pvalue=nan, lambda_star=nan, lambda_ratio=nan, E_max_weight=nan, E_entropy=nan,
                max_weight_z=nan, max_weight_rel=nan, entropy_z=nan, entropy_rel=nan, regime="undetermined",
                lambda_band=(nan, nan), n_exit=nan, n_exit_schedule=nan, note=f"no theory for this head: {why}")


def _selection(name: str, values, size: int) -> tuple[int, ...]:
    if values is None:
        return tuple(range(size))
    out = tuple(int(v) for v in values)
    if not out or len(set(out)) != len(out) or min(out) < 0 or max(out) >= size:
        raise InputError(f"{name} must be distinct indices in [0, {size}), got {list(values)}")
    return out
