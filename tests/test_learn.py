"""Learned temperature (phasejax.learn, `phasejax learn`): the head against NumPy, its gradient against the
closed form, the regression MSE theory against closed forms and Monte Carlo, training against the
minimisers, retrieval growth, errors and the CLI contract.

References are independent: NumPy softmax code, the d = 3 closed forms (a_2 = 1 + 3/b^2 - 3 coth(b)/b,
R = b coth b), the n = 1 and beta -> 0 limits of the exact MSE, and Monte Carlo with stated standard errors.
"""

from __future__ import annotations

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phasejax import cli
from phasejax import learn as L
from phasejax._checks import InputError
from phasejax.laws import gaps_from_keys
from phasejax.runtime import load_dataset

# --------------------------------------------------------------------------- NumPy references


def _np_softmax_predict(beta, q, keys, values):
    q, keys, values = (np.asarray(a, np.float64) for a in (q, keys, values))
    u = 0.5 * np.sum((keys - q) ** 2, axis=1)
    z = -beta * u
    w = np.exp(z - z.max())
    w /= w.sum()
    return float(w @ values), w, u


def _random_problem(seed, n=37, d=4):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=d)
    q /= np.linalg.norm(q)
    k = rng.normal(size=(n, d))
    k /= np.linalg.norm(k, axis=1, keepdims=True)
    v = rng.normal(size=n)
    return q, k, v


def _a2_d3(b):
    return 1.0 + 3.0 / b**2 - 3.0 / (b * np.tanh(b))


def _r_d3(b):
    return b / np.tanh(b)


# --------------------------------------------------------------------------- the head


@pytest.mark.parametrize("beta", [0.3, 7.0, 250.0])
def test_forward_matches_numpy(dtype, beta):
    q, k, v = _random_problem(1)
    ref, _, _ = _np_softmax_predict(beta, q, k, v)
    head = L.AttentionHead(beta)
    assert head.log_beta.dtype == jnp.dtype(dtype)
    out = head(jnp.asarray(q, dtype), jnp.asarray(k, dtype), jnp.asarray(v, dtype))
    assert out.dtype == jnp.dtype(dtype)
    tol = 1e-12 if dtype == "float64" else 2e-5 * max(1.0, beta * 0.01)
    assert abs(float(out) - ref) <= tol * (1 + abs(ref)) + (1e-5 if dtype == "float32" else 0)


def test_padding_with_infinite_gaps_is_exact(dtype):
    q, k, v = _random_problem(2)
    head = L.AttentionHead(3.0)
    dt = jnp.dtype(dtype)
    u = gaps_from_keys(jnp.asarray(q, dt), jnp.asarray(k, dt))
    vals = jnp.asarray(v, dt)
    padded_u = u.at[20:].set(jnp.inf)
    a = head.predict(u[:20], vals[:20])
    b = head.predict(padded_u, vals)
    assert float(a) == pytest.approx(float(b), rel=1e-6 if dtype == "float32" else 1e-14)
    g = jax.grad(lambda h: h.predict(padded_u, vals))(head).log_beta
    assert np.isfinite(float(g))


def test_gradient_in_log_beta_closed_form(x64):
    """d (yhat - y)^2 / d log beta = 2 (yhat - y) (-beta sum_i w_i (u_i - <u>_w) v_i) (docs/theory.md §e)."""
    q, k, v = _random_problem(3)
    target = 0.3
    for beta in (0.5, 12.0, 400.0):
        yhat, w, u = _np_softmax_predict(beta, q, k, v)
        ref = 2 * (yhat - target) * (-beta * np.sum(w * (u - w @ u) * v))
        head = L.AttentionHead(beta)
        g = jax.grad(lambda h: (h(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v)) - target) ** 2)(head).log_beta
        assert float(g) == pytest.approx(ref, rel=1e-10, abs=1e-14)
    from jax.test_util import check_grads

    gaps = 0.5 * np.sum((k - q) ** 2, axis=1)
    check_grads(lambda lb: L.AttentionHead.from_log_beta(lb).predict(jnp.asarray(gaps), jnp.asarray(v)),
                (jnp.asarray(math.log(5.0)),), order=1, modes=["rev"])


def test_tasks_shapes_and_targets():
    b = jax.jit(lambda k: L.RegressionTask(3).sample(k, 64, 5))(jax.random.key(0))
    assert b.gaps.shape == (5, 64) and b.values.shape == (64,) and b.targets.shape == (5,)
    assert np.all(np.asarray(b.targets) >= -0.5 - 1e-6) and np.all(np.asarray(b.targets) <= 1 + 1e-6)
    r = jax.jit(lambda k: L.RetrievalTask(5).sample(k, 64, 5, n_active=10))(jax.random.key(1))
    gaps, vals = np.asarray(r.gaps), np.asarray(r.values)
    assert np.all(np.isinf(gaps[:, 10:])) and np.all(np.isfinite(gaps[:, :10]))
    np.testing.assert_array_equal(np.asarray(r.targets), vals[np.argmin(gaps[:, :10], axis=1)])


# --------------------------------------------------------------------------- regression theory


def test_large_n_formula_matches_d3_closed_form():
    n, sigma = 5000.0, 0.5
    for beta in (2.0, 15.0, 300.0):
        a2, a22, r = _a2_d3(beta), _a2_d3(2 * beta), _r_d3(beta)
        bias2 = (1 - a2) ** 2 / 5
        var = r / n * (sigma**2 + (1 - 2 * a2 * a22 + a2**2) / 5)
        mse, b2, v = L.regression_mse_large_n(beta, n, 3, parts=True)
        assert b2 == pytest.approx(bias2, rel=1e-9) and v == pytest.approx(var, rel=1e-9)


def test_beta_opt_coefficient_closed_form_and_limit():
    # c = [2 d^2 / (N_2 sigma^2 r_d h)]^{2/(d+3)}: d=3 (N=5, r=1, h=1), d=5 (N=14, r=1/6, h=2)
    assert L.beta_opt_coefficient(3) == pytest.approx((2 * 9 / (5 * 0.25)) ** (1 / 3), rel=1e-12)
    assert L.beta_opt_coefficient(5) == pytest.approx((2 * 25 / (14 * 0.25 * (1 / 6) * 2)) ** (1 / 4), rel=1e-12)
    for d in (3, 5):
        # the minimiser of the full large-n formula tends to c n^{2/(d+3)} (corrections O(1/beta))
        r1 = L.beta_opt_large_n(1e8, d) / L.beta_opt_asymptotic(1e8, d)
        r2 = L.beta_opt_large_n(1e14, d) / L.beta_opt_asymptotic(1e14, d)
        assert abs(r2 - 1) < abs(r1 - 1) < 0.05 and abs(r2 - 1) < 0.005
        # bias^2 / MSE -> h/(h+2) at the optimum
        b = L.beta_opt_large_n(1e14, d)
        mse, bias2, _ = L.regression_mse_large_n(b, 1e14, d, parts=True)
        h = (d - 1) / 2
        assert bias2 / mse == pytest.approx(h / (h + 2), abs=0.01)


@pytest.mark.parametrize("d", [3, 5])
def test_exact_mse_limits(d):
    n2 = (d + 2) * (d - 1) / 2
    # n = 1: the single key's value: E(f(k) - f(q))^2 + sigma^2 = 2/N_2 + sigma^2, for every beta
    for beta in (0.1, 5.0, 60.0):
        assert L.regression_mse_exact(beta, 1, d) == pytest.approx(2 / n2 + 0.25, rel=1e-9)
    # beta -> 0: uniform weights: (1 + 1/n)/N_2 + sigma^2/n
    n = 40
    assert L.regression_mse_exact(1e-5, n, d) == pytest.approx((1 + 1 / n) / n2 + 0.25 / n, rel=1e-5)
    # large n: the exact MSE approaches the bias-variance formula
    b = 20.0
    assert L.regression_mse_exact(b, 10**7, d) == pytest.approx(L.regression_mse_large_n(b, 10**7, d), rel=2e-3)


def test_exact_mse_quadrature_precision_and_minimiser():
    """Halving the x step and the z panels changes the MSE by < 1e-9 relative, and the minimiser by < 1e-5:
    the 1% location target is met with four orders of magnitude to spare."""
    for beta, n, d in ((10.0, 100, 3), (43.6, 100_000, 5), (112.0, 100_000, 3)):
        a = L.regression_mse_exact(beta, n, d)
        b = L.regression_mse_exact(beta, n, d, dx=0.05, panel=0.5, order=12)
        assert abs(a - b) <= 1e-9 * b
    b1 = L.beta_opt_exact(300, 3)
    b2 = L.beta_opt_exact(300, 3, dx=0.05, panel=0.5, order=12)
    assert abs(b1 / b2 - 1) < 1e-5


def test_exact_mse_against_monte_carlo():
    """Monte Carlo (common random numbers over beta), 400 key sets x 16 queries: |z| < 4 for the MSE and for
    its log-beta derivative at the exact minimiser (where the exact derivative is 0)."""
    n, d = 50, 3
    bo = L.beta_opt_exact(n, d)
    betas = [0.5 * bo, bo, 2.0 * bo]
    m, se, g, gse = L.regression_mse_mc(betas, n, d, key=jax.random.key(11), contexts=400, queries=16)
    exact = np.array([L.regression_mse_exact(b, n, d) for b in betas])
    assert np.all(np.abs(m - exact) < 4 * se), (m, exact, se)
    assert abs(g[1]) < 4 * gse[1]
    assert g[0] < 0 < g[2]  # the minimum is bracketed


def test_large_n_formula_against_monte_carlo():
    """n = 20000, beta = 15 (n_eff = n/R ~ 1300): 64 key sets x 32 queries; within 4 se plus the O(R/n)
    second-order correction (1%)."""
    n, d, beta = 20_000, 3, 15.0
    m, se, _, _ = L.regression_mse_mc([beta], n, d, key=jax.random.key(5), contexts=64, queries=32)
    ref = L.regression_mse_large_n(beta, n, d)
    assert abs(m[0] - ref) < 4 * se[0] + 0.01 * ref, (m, se, ref)


# --------------------------------------------------------------------------- training


class _FixedTask:
    """A finite data set: M stored key sets (Q queries each); each step draws stored key sets at random."""

    name = "fixed"
    has_optimum = True

    def __init__(self, batches, d):
        self.batches, self.d = batches, d

    def __hash__(self):
        return id(self)

    def sample(self, key, n, queries, n_active=None):
        i = jax.random.randint(key, (), 0, self.batches.gaps.shape[0])
        return L.Batch(*(x[i] for x in self.batches))


def _empirical_minimiser(gaps, values, targets):
    gaps, values, targets = (np.asarray(a, np.float64) for a in (gaps, values, targets))

    def loss(lb):
        z = -np.exp(lb) * gaps
        w = np.exp(z - z.max(-1, keepdims=True))
        w /= w.sum(-1, keepdims=True)
        pred = np.einsum("mqn,mn->mq", w, values)
        return float(np.mean((pred - targets) ** 2))

    from scipy.optimize import minimize_scalar

    grid = np.linspace(-1, 6, 71)
    i = int(np.argmin([loss(x) for x in grid]))
    return math.exp(minimize_scalar(loss, bracket=(grid[i - 1], grid[i], grid[i + 1]), tol=1e-10).x)


def test_training_converges_to_the_minimiser_of_fixed_keys():
    """Fixed keys (a finite data set): SGD on it converges to the data set's own loss minimiser, computed
    here by NumPy; agreement within 4 se (se from 8 independent runs) plus 1%."""
    n, q, m = 30, 4, 48
    batches = jax.vmap(lambda k: L.RegressionTask(3).sample(k, n, q))(jax.random.split(jax.random.key(3), m))
    target = _empirical_minimiser(*batches)
    task = _FixedTask(batches, 3)
    r = L.train(task, n, key=jax.random.key(4), steps=128, runs=8, contexts=4, queries=q, lr=0.1)
    z = (r.log_beta_mean - math.log(target)) / r.log_beta_se
    assert abs(r.log_beta_mean - math.log(target)) < 4 * r.log_beta_se + 0.01, (r.beta, target, z)
    assert r.se_method.startswith("spread of 8")


@pytest.mark.slow
@pytest.mark.parametrize("d,n", [(3, 300), (5, 1000)])
def test_training_finds_the_exact_optimum(d, n):
    r = L.train(L.RegressionTask(d), n, key=jax.random.key(d), steps=320, runs=8, contexts=2, queries=8)
    bo = L.beta_opt_exact(n, d)
    assert abs(r.log_beta_mean - math.log(bo)) < 4 * r.log_beta_se, (r.beta, r.beta_se, bo)
    assert r.converged


# --------------------------------------------------------------------------- errors


@pytest.mark.bad_input
def test_bad_input_raises():
    with pytest.raises(InputError, match="beta"):
        L.AttentionHead(-1.0)
    with pytest.raises(InputError, match="d"):
        L.RegressionTask(1)
    with pytest.raises(InputError, match="task"):
        L.task_from_name("classify", 3)
    with pytest.raises(InputError, match="n"):
        L.train(L.RegressionTask(3), 1, key=jax.random.key(0))
    with pytest.raises(InputError, match="steps"):
        L.train(L.RegressionTask(3), 10, key=jax.random.key(0), steps=4)
    with pytest.raises(InputError, match="share d"):
        L.train([L.RegressionTask(3), L.RetrievalTask(5)], 10, key=jax.random.key(0))
    with pytest.raises(InputError, match="beta"):
        L.regression_mse_exact(0.0, 10, 3)
    with pytest.raises(InputError, match="d"):
        L.regression_mse_large_n(1.0, 10, 2)
    with pytest.raises(InputError, match="sigma"):
        L.beta_opt_coefficient(3, sigma=0.0)
    with pytest.raises(InputError, match="same length"):
        L.AttentionHead(1.0)(jnp.ones(3) / math.sqrt(3), jnp.eye(3), jnp.ones(2))


@pytest.mark.parametrize("argv,msg", [
    (["--d", "2"], "--d"),
    (["--task", "classify"], "--task"),
    (["--n-min", "1000", "--n-max", "100"], "--n-max"),
    (["--batch", "10", "--contexts", "3"], "--batch"),
    (["--steps", "8"], "--steps"),
])
def test_cli_bad_input_exit_2(tmp_path, capsys, argv, msg):
    rc = cli.main(["learn", *argv, "--out", str(tmp_path), "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and msg in err and err.startswith("phasejax learn: error:")


def test_cli_argparse_rejects_non_counts(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["learn", "--n-max", "1e5.5"])
    assert e.value.code == 2


# --------------------------------------------------------------------------- the CLI, end to end


_CLI_ARGS = ["learn", "--d", "3", "--n-min", "30", "--n-max", "1e2", "--n-points", "2", "--steps", "96", "--runs", "6",
             "--batch", "8"]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("learn")
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main([*_CLI_ARGS, "--json", "--out", str(out)])
    return rc, json.loads(buf.getvalue())


def test_cli_json_contract(cli_run):
    rc, res = cli_run
    assert rc == 0
    for k in ("n", "beta_learned", "beta_learned_se", "beta_opt_theory", "d", "task", "exponent", "exponent_se",
              "exponent_theory", "lambda"):
        assert k in res, k
    assert res["n"] == [30, 100] and res["d"] == 3 and res["task"] == "both"
    assert res["exponent_theory"] == pytest.approx(1 / 3)
    assert set(res["by_task"]) == {"regression", "retrieval"}
    for key in ("results", "json", "figure"):
        assert os.path.exists(res["files"][key])
    ds = load_dataset(res["files"]["results"])
    assert ds["regression_log_beta"].dims == ("n", "run", "step_regression")
    np.testing.assert_allclose(ds["regression_beta_learned"].values, res["beta_learned"], rtol=1e-12)


def test_cli_regression_agrees_and_is_subcritical(cli_run):
    _, res = cli_run
    lb, se = np.log(res["beta_learned"]), np.asarray(res["beta_learned_se"]) / np.asarray(res["beta_learned"])
    assert np.all(np.abs(lb - np.log(res["beta_opt_theory"])) < 4 * se + 0.02)
    lam = np.asarray(res["lambda"])
    assert np.all(lam < res["lambda_star"]) and lam[1] < lam[0]  # subcritical, and lambda falls with n


def test_cli_retrieval_grows_and_is_supercritical(cli_run):
    _, res = cli_run
    r = res["by_task"]["retrieval"]
    assert np.all(np.asarray(r["lambda_final"]) > 3 * res["lambda_star"])
    assert np.all(np.asarray(r["growth_exponent"]) > 3 * np.asarray(r["growth_exponent_se"]))
    assert r["beta_final"][1] > r["beta_final"][0]
    assert not any(r["converged"])


def test_cli_table(cli_run, tmp_path, capsys):
    """The same configuration as the JSON run (the compiled training program is reused), as a table."""
    rc = cli.main([*_CLI_ARGS, "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    for word in ("regression", "retrieval", "beta_opt(exact)", "lambda_final", "fitted exponent", "learn.png"):
        assert word in text
