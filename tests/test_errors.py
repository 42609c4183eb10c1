"""Bad input: a clear error naming the parameter, the value and what is accepted; the CLI exits 2."""

from __future__ import annotations

import math
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phasejax import cli
from phasejax._checks import InputError
from phasejax.laws import Empirical, PowerLawCap, Subsphere, UniformSphere, law_from_name, normalize
from phasejax.observables import gap_observables, key_observables, sampled_observables
from phasejax.runtime import ensemble

pytestmark = pytest.mark.bad_input  # phasejax's own errors (module docstring)


Q3 = jnp.array([0.0, 0.0, 1.0])


def test_n_below_one():
    with pytest.raises(InputError, match=r"n must be an integer >= 1, got 0"):
        UniformSphere(3).sample_gaps(jax.random.key(0), 0)
    with pytest.raises(InputError, match="n must be"):
        sampled_observables(UniformSphere(3), jax.random.key(0), -5, jnp.ones(2))


def test_d_below_two():
    with pytest.raises(InputError, match=r"d must be an integer >= 2, got 1"):
        UniformSphere(1)


def test_alpha_not_positive():
    with pytest.raises(InputError, match=r"alpha must be > 0, got -1"):
        PowerLawCap(3, -1.0)
    with pytest.raises(InputError, match=r"alpha must be > 0, got 0"):
        PowerLawCap(3, 0)


def test_subsphere_m_out_of_range():
    with pytest.raises(InputError, match=r"m must be an integer <= 3, got 4"):
        Subsphere(3, 4)


@pytest.mark.parametrize("beta", [-1.0, float("nan"), float("inf")])
def test_bad_beta(beta):
    with pytest.raises(InputError, match="betas must be"):
        gap_observables(jnp.ones(3), jnp.array([1.0, beta]))


def test_beta_wrong_shape():
    with pytest.raises(InputError, match="betas must be a scalar or a 1-D array"):
        gap_observables(jnp.ones(3), jnp.ones((2, 2)))


def test_negative_or_nan_gaps():
    with pytest.raises(InputError, match="gaps must be >= 0"):
        gap_observables(jnp.array([0.1, -0.2]), 1.0)
    with pytest.raises(InputError, match="gaps must be finite"):
        gap_observables(jnp.array([0.1, jnp.nan]), 1.0)


def test_shape_mismatch_keys_query():
    keys = UniformSphere(4).sample_keys(jax.random.key(0), jnp.eye(4)[0], 10)
    with pytest.raises(InputError, match=r"keys must have shape \(n, 3\)"):
        key_observables(Q3, keys, 1.0)
    with pytest.raises(InputError, match="query must have last dimension 3"):
        UniformSphere(3).sample_keys(jax.random.key(0), jnp.eye(4)[0], 5)


def test_values_row_mismatch():
    keys = UniformSphere(3).sample_keys(jax.random.key(0), Q3, 10)
    with pytest.raises(InputError, match="values must have one row per key"):
        key_observables(Q3, keys, 1.0, values=jnp.ones((9, 2)))


def test_nan_keys():
    keys = UniformSphere(3).sample_keys(jax.random.key(0), Q3, 10).at[3, 1].set(jnp.nan)
    with pytest.raises(InputError, match="keys must be finite, got 1 NaN/inf entry"):
        key_observables(Q3, keys, 1.0)
    with pytest.raises(InputError, match="keys must be finite"):
        Empirical(np.asarray(keys))


def test_zero_vectors():
    with pytest.raises(InputError, match="zero vector"):
        Empirical(np.zeros((5, 3)))
    with pytest.raises(InputError, match="zero vector"):
        key_observables(Q3, jnp.zeros((4, 3)), 1.0)
    with pytest.raises(InputError, match="zero vector"):
        normalize(jnp.zeros((2, 3)))


def test_non_unit_query():
    with pytest.raises(InputError, match="query must be unit vectors"):
        UniformSphere(3).sample_keys(jax.random.key(0), 2 * Q3, 5)


def test_unknown_option():
    with pytest.raises(InputError,
                       match="geometry must be one of 'uniform', 'powerlaw', 'subsphere', 'gaussian'; got 'cube'"):
        law_from_name("cube", d=3)
    with pytest.raises(InputError, match="needs --alpha"):
        law_from_name("powerlaw", d=3)


def test_seeds_and_top_k():
    with pytest.raises(InputError, match="seeds must be an integer >= 1, got 0"):
        ensemble(UniformSphere(3), jax.random.key(0), 10, [1.0], seeds=0)
    with pytest.raises(InputError, match="top_k must be an integer >= 1, got 0"):
        gap_observables(jnp.ones(3), 1.0, top_k=0)


def test_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        Empirical(str(tmp_path / "missing.npy"))
    pick = tmp_path / "pickled.npy"
    np.save(pick, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="pickles are refused"):
        Empirical(str(pick))
    junk = tmp_path / "junk.npy"
    junk.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(InputError, match="not a plain .npy array|cannot read"):
        Empirical(str(junk))


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["sweep", "--n", "0"], "--n: expected a positive integer"),
        (["sweep", "--d", "1"], "d must be an integer >= 2, got 1"),
        (["sweep", "--geometry", "cube"], "geometry must be one of"),
        (["sweep", "--beta-min", "-1"], "--beta-min: expected a number > 0"),
        (["sweep", "--beta-min", "nan"], "--beta-min: expected a finite number"),
        (["sweep", "--geometry", "powerlaw", "--alpha", "-2"], "--alpha: expected a number > 0"),
        (["sweep", "--beta-min", "10", "--beta-max", "1"], "--beta-max (1) must be larger than --beta-min (10)"),
        (["sweep", "--bogus"], "unrecognized arguments: --bogus"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(argv, fragment, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        rc = cli.main([*argv, "--out", str(tmp_path)] if argv[0] == "sweep" else argv)
        raise SystemExit(rc)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert fragment in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


# --- issue 17: seeds, exact integers, values that cannot be computed, files, bounds ------------------------------


def _cli_error(capsys, argv, tmp_path, match):
    """The CLI exits 2 with exactly one line on stderr that matches ``match``."""
    import re

    rc = cli.main([*argv, "--out", str(tmp_path), "--quiet"] if argv[0] != "theory" else argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and re.search(match, err[0]), (rc, err)
    assert "Traceback" not in err[0]


def test_check_seed_range():
    from phasejax._checks import check_seed

    assert check_seed(0) == 0 and check_seed(2**63 - 1) == 2**63 - 1
    for bad in (-1, 2**63, 2**64, 1.5, "3", True):
        with pytest.raises(InputError, match="seed must be an integer 0 <= seed < 2"):
            check_seed(bad)


@pytest.mark.parametrize("x64", [False, True])
def test_key_from_seed_keeps_all_64_bits(x64):
    """2^32 and 0 give different keys in both dtypes; a seed < 2^31 keeps jax.random.key(seed)'s stream;
    the key data are (seed >> 32, seed mod 2^32), what jax.random.key builds under x64."""
    from phasejax._random import key_from_seed

    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", x64)
    try:
        data = {s: np.asarray(jax.random.key_data(key_from_seed(s))).tolist()
                for s in (0, 7, 2**32, 2**32 + 7, 2**63 - 1)}
        assert data[0] == [0, 0] and data[7] == [0, 7] and data[2**32] == [1, 0] and data[2**32 + 7] == [1, 7]
        assert data[2**63 - 1] == [2**31 - 1, 2**32 - 1]
        assert jnp.array_equal(jax.random.key_data(key_from_seed(7)), jax.random.key_data(jax.random.key(7)))
        assert float(jax.random.uniform(key_from_seed(2**32))) != float(jax.random.uniform(key_from_seed(0)))
    finally:
        jax.config.update("jax_enable_x64", old)


@pytest.mark.parametrize("seed", ["-1", "18446744073709551616", "9223372036854775808", "1.5", "abc"])
def test_cli_seed_refused(seed, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["theory", "--seed", seed])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--seed" in err[0] and "2^63" in err[0]


def test_parse_int_exact():
    from phasejax._checks import parse_int

    assert parse_int("9007199254740993") == 2**53 + 1  # float() would round it to 2^53
    assert parse_int("1e6") == 10**6 and parse_int("2.5e1") == 25
    for bad in ("2.5", "1e-3", "inf", "nan", "1e999999", "x"):
        with pytest.raises(InputError, match="must be an integer"):
            parse_int(bad)


def test_lengths_exact_or_refused():
    from phasejax._checks import check_lengths

    assert check_lengths("n", 2**53)[0] == 2.0**53
    with pytest.raises(InputError, match=r"n = 9007199254740993 is not exactly representable as a float64"):
        check_lengths("n", 2**53 + 1)
    with pytest.raises(InputError, match="not exactly representable"):
        check_lengths("n", np.array([10, 2**60 + 1], dtype=np.int64))
    with pytest.raises(InputError, match="not exactly representable"):
        check_lengths("n", 10**30 + 1)


def test_cli_length_not_rounded(capsys):
    """theory keeps n exact where it is an integer: --n 9007199254740993 is printed as given."""
    import json

    assert cli.main(["theory", "--n", "9007199254740993", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 2**53 + 1
    with pytest.raises(SystemExit):
        cli.main(["theory", "--n", "2.5"])


def test_betas_underflowing_the_dtype_refused():
    from phasejax._checks import check_betas

    tiny = float(np.finfo(jnp.result_type(float)).tiny)
    check_betas(np.array([0.0, tiny, 1.0]))
    with pytest.raises(InputError, match=r"betas must be 0 or >= .*smallest normal"):
        check_betas(np.array([1e-300, 1.0]))


def test_cli_beta_min_underflow(tmp_path, capsys):
    _cli_error(capsys, ["sweep", "--n", "100", "--beta-min", "1e-300", "--beta-max", "1", "--beta-points", "3",
                        "--seeds", "2"], tmp_path, r"smallest normal")


def test_cli_alpha_tiny_overflows_grid(tmp_path, capsys):
    _cli_error(capsys, ["sweep", "--n", "1000", "--seeds", "2", "--beta-points", "2", "--geometry", "powerlaw",
                        "--alpha", "1e-300"], tmp_path, r"--alpha 1e-300: .*overflows float64")


@pytest.mark.parametrize("argv, match", [
    (["heat", "--d", "10000"], r"--d must be an integer 2 <= d <= 1024"),
    (["heat", "--l", "100000"], r"--l must be an integer 1 <= l <= 4096"),
    (["heat", "--N", "2", "--beta", "10"], r"--N 2 is too small .* needs N >= 81"),
    (["heat", "--N", "100", "--beta", "1e30"], r"--N 100 is too small"),
    (["heat", "--N", "100", "--beta", "1e30", "--no-self"], r"Q = 1e\+30 needs N >= 4e\+30"),
    (["heat", "--beta-points", "1000000000"], r"--beta-points must be <= 10000"),
    (["theory", "--n", "2"], r"--n 2 is too small for the fixed-beta entropy law .* -1.303"),
    (["theory", "--beta", "1e300"], r"log_M_d = -inf cannot be computed .*--beta"),
])
def test_cli_value_that_cannot_be_computed(argv, match, tmp_path, capsys):
    _cli_error(capsys, argv, tmp_path, match)


def test_heat_finite_n_scale_closed_form():
    """d = 3: M(beta) = sinh(beta)/beta, so S = e^beta/M = 2 beta/(1 - e^{-2 beta}) and
    Q = M(2 beta)/M(beta)^2 = beta sinh(2 beta) / (2 sinh(beta)^2)."""
    import math

    from phasejax.heat.theory import finite_n_scale

    b = 3.0
    s = 2 * b / (1 - math.exp(-2 * b))
    q = b * math.sinh(2 * b) / (2 * math.sinh(b) ** 2)
    assert finite_n_scale(3, b) == pytest.approx(max(s, q), rel=1e-12)
    assert finite_n_scale(3, b, self_interaction=False) == pytest.approx(q, rel=1e-12)


def test_theory_C_override_has_no_nulls(capsys):
    """--C overrides the law's own constant: the exact finite-n peak (which needs the gap law) is left out
    of the JSON rather than written as null, and every value present is finite."""
    import json
    import math

    assert cli.main(["theory", "--alpha", "2", "--C", "1e300", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "beta_peak_exact" not in out
    assert all(math.isfinite(v) for v in out.values() if isinstance(v, float))


def test_npy_files_refused_clearly(tmp_path, capsys):
    from phasejax.laws.empirical import load_npy

    (tmp_path / "empty.npy").write_bytes(b"")
    np.savez(tmp_path / "a.npz", x=np.ones((4, 3)))
    (tmp_path / "a.npz").rename(tmp_path / "renamed.npy")
    with pytest.raises(InputError, match="empty or truncated"):
        load_npy(tmp_path / "empty.npy", "keys")
    with pytest.raises(InputError, match=r"an \.npz archive, not a \.npy array"):
        load_npy(tmp_path / "renamed.npy", "keys")
    with pytest.raises(InputError, match="is a folder"):
        load_npy(tmp_path, "keys")
    out = tmp_path / "o"
    _cli_error(capsys, ["diagnose", str(tmp_path / "empty.npy"), "--no-measure"], out, "empty or truncated")
    _cli_error(capsys, ["diagnose", str(tmp_path / "renamed.npy"), "--no-measure"], out, r"\.npz archive")


def test_high_dimensional_key_file_clear_error(tmp_path, capsys):
    """(500, 5000) keys: the fitted exponent (~ d - 1) puts lambda*^(-h) C outside float64."""
    x = np.random.default_rng(0).normal(size=(500, 5000))
    np.save(tmp_path / "k.npy", x)
    _cli_error(capsys, ["diagnose", str(tmp_path / "k.npy"), "--no-measure"], tmp_path / "o",
               r"keys: the predicted beta_peak\(n\) .* is not finite")


def test_gegenbauer_traced_loop_matches_recurrence():
    """l > 16 on the device runs as a fori_loop (compile time independent of l); it matches the host
    float64 recurrence and SciPy's Legendre polynomial."""
    from scipy.special import eval_legendre

    from phasejax.heat.zonal import gegenbauer

    t = np.linspace(-1, 1, 9)
    for l in (17, 60):
        dev = np.asarray(gegenbauer(jnp.asarray(t, jnp.float32), 3, l), np.float64)
        np.testing.assert_allclose(dev, eval_legendre(l, t), atol=2e-5)
        np.testing.assert_allclose(gegenbauer(t, 3, l), eval_legendre(l, t), atol=1e-12)


def test_cli_scaling_peak_on_edge_refused(tmp_path, capsys):
    """The issue's case: lambda in [1000, 2000] (lambda* = 0.38): after widening 8-fold 3 times the peak is
    still on the lower edge at both n, so no fit is possible -- an error, not beta_peak/n = 2.24."""
    _cli_error(capsys, ["scaling", "--lambda-min", "1000", "--lambda-max", "2000", "--n-min", "100", "--n-max",
                        "1000", "--n-points", "2", "--seeds", "4", "--grid-points", "6"], tmp_path,
               r"peak stays on an edge of the lambda grid at n = [0-9, ]*1000 .* widen lambda_range")


@pytest.mark.slow  # ~9 s: a 3-n scaling run
def test_cli_scaling_edge_flagged_and_left_out(tmp_path, capsys, monkeypatch):
    """A peak reported on the edge (forced at the first n) is flagged in the JSON and the table and left
    out of both fits: the free fit then has 2 points and 0 degrees of freedom."""
    import dataclasses
    import json

    from phasejax import scaling
    from phasejax.runtime.io import jsonable

    real = scaling.find_peak
    calls = {"n0": 0}

    def fake(curve, grid, *data):
        p = real(curve, grid, *data)
        if data[0].shape[1] and calls["n0"] < 4:  # the 4 attempts at the first n (the widening loop)
            calls["n0"] += 1
            return dataclasses.replace(p, on_edge=True)
        return p

    monkeypatch.setattr(scaling, "find_peak", fake)
    argv = ["scaling", "--n-min", "20", "--n-max", "80", "--n-points", "3", "--seeds", "4", "--grid-points", "6",
            "--out", str(tmp_path), "--quiet"]
    args = cli.build_parser().parse_args(argv)
    r, table = args._run(args)  # one run: the result (what --json prints) and the table
    r = json.loads(json.dumps(jsonable(r)))
    assert r["on_edge"] == [True, False, False]
    assert r["fit_dof"] == 0
    # the fixed-exponent lambda* is the weighted mean over the two kept n only
    lam = np.asarray(r["lambda_peak"])[1:]
    w = (np.asarray(r["beta_peak"])[1:] / np.asarray(r["beta_peak_se"])[1:]) ** 2
    assert r["lambda_star_fixed_exponent"] == pytest.approx(float(np.exp(np.sum(w * np.log(lam)) / w.sum())))
    assert "EDGE" in table and "1 on a grid edge left out" in table


@pytest.mark.parametrize("argv, match", [
    (["sweep", "--n", "1000", "--seeds", "1e9", "--beta-points", "2"],
     r"--seeds: the results of 1000000000 seeds x 2 betas would take about .*GiB.*lower --seeds"),
    (["sweep", "--n", "1000", "--seeds", "2", "--beta-points", "1e9"], r"--beta-points: .* lower --beta-points"),
    (["sweep", "--n", "1e9", "--sampler", "exact", "--chunk", "1e8", "--seeds", "2", "--beta-points", "64"],
     r"--chunk: a working set of 64 betas x 100000000 keys .* lower --chunk"),
    (["sweep", "--n", "1e12", "--sampler", "nearest", "--nearest-m", "1e9", "--seeds", "2", "--beta-points", "2"],
     r"--nearest-m: .* lower --nearest-m"),
    (["learn", "--runs", "1e4"], r"--runs: 10000 runs .* lower --runs"),
    (["heat", "--N", "1e12", "--beta", "10"], r"--N: a cloud of 1000000000000 tokens .* lower --N"),
    (["scaling", "--seeds", "1e8", "--n-max", "1e4"],
     r"seeds \(or m\): 100000000 contexts x 256 nearest gaps x 16 betas would take about .*TiB.*lower seeds"),
    (["scaling", "--m", "5e7", "--n-max", "1e9"], r"seeds \(or m\): 256 contexts x 50000000 nearest gaps .*GiB"),
    (["limit-laws", "--seeds", "1e8"], r"seeds: 50000000 contexts x a chunk of 8192 keys in d = 3 .* lower seeds"),
])
def test_cli_memory_refused_up_front(argv, match, tmp_path, capsys, monkeypatch):
    """Sizes beyond memory are refused before compiling, naming the estimate and the flag that lowers it
    (the budget fixed at 16 GiB available here, so the test does not depend on the machine)."""
    from phasejax.runtime import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 16 * 2**30)
    _cli_error(capsys, argv, tmp_path, match)


def test_default_runs_pass_the_memory_checks(monkeypatch):
    """The checks do not refuse limit-laws' default 400 seeds at a 16 GiB budget, at d = 3, 8, 16 near lambda* and at
    the largest --lambda; a Poisson sample beyond memory is refused by critical_laws itself."""
    from phasejax import limits
    from phasejax.runtime import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 16 * 2**30)
    for d, lam in ((3, 0.4), (8, 3.7), (16, 20.0), (3, 1e6)):
        limits.check_limit_laws_memory(d, lam, 400)
    with pytest.raises(InputError, match=r"^seeds: 1000000000 Poisson samples x 256 points and 10 contexts"):
        limits.critical_laws(3, 0.4, [100], key=jax.random.key(0), seeds=10, ppp_seeds=10**9)


def test_chunk_valid_counts_every_key_once_past_int32():
    """The exact sampler's chunk mask: as c * chunk + i < n where that fits int32, and n keys in all at n >= 2^31
    (where c * chunk + i wraps)."""
    from phasejax.observables import _chunk_valid

    for n, chunk in ((10, 3), (12, 4), (1, 1), (7, 7)):
        valid = _chunk_valid(n, chunk)
        for c in range(-(-n // chunk)):
            assert np.array_equal(np.asarray(valid(jnp.asarray(c))), c * chunk + np.arange(chunk) < n)
    n, chunk = 2**31 + 1000, 2**22
    valid = _chunk_valid(n, chunk)
    last = -(-n // chunk) - 1
    counts = [int(np.sum(np.asarray(valid(jnp.asarray(c, jnp.int32))))) for c in (0, last - 1, last)]
    assert last == 512 and counts == [chunk, chunk, 1000]  # 2^31 + 1000 = 512 full chunks of 2^22, then 1000


def test_memory_helpers():
    from phasejax.runtime import memory

    assert memory.available_bytes() > 2**20
    assert memory.format_bytes(1536) == "1.5 KiB"
    memory.check_memory(1.0, "--x")
    with pytest.raises(InputError, match=r"^--x: .* would take about 1024.0 PiB"):
        memory.check_memory(2.0**60, "--x")


def test_cli_learn_saturated_beta0_refused(tmp_path, capsys):
    """--beta0 1e30: every head's softmax puts all weight on one key, the gradient in log beta is 0, the
    runs never move (se 0): an error, not 'converged'."""
    _cli_error(capsys, ["learn", "--beta0", "1e30", "--task", "regression", "--runs", "2", "--steps", "16",
                        "--n-min", "50", "--n-max", "50", "--n-points", "1", "--batch", "4", "--contexts", "1"],
               tmp_path, r"--beta0 1e\+30: the regression heads did not move .* se 0")


def test_sampled_observables_chunk_count_refused():
    with pytest.raises(InputError, match=r"more than the 2\^31 a scan can count; raise chunk or use the nearest"):
        sampled_observables(UniformSphere(3), jax.random.key(0), 2**40, jnp.ones(2), chunk=256)


@pytest.mark.slow
def test_sampled_observables_beyond_int32(x64):
    """n = 2^31 + 1000 keys with the exact sampler (chunks of 2^22): the key count is exact past int32. At
    beta = 0 every weight is 1/n, so n * max_weight = 1 and the log partition is log n (float64, rel 1e-12)."""
    import math

    n = 2**31 + 1000
    o = sampled_observables(UniformSphere(3), jax.random.key(0), n, jnp.array([0.0]), chunk=2**22)
    assert float(o.max_weight[0]) * n == pytest.approx(1.0, rel=1e-12)
    assert float(o.log_partition[0]) == pytest.approx(math.log(n), rel=1e-12)


def test_cli_limit_laws_beta_not_subcritical(tmp_path, capsys):
    """Found by the property test: --beta 1e300 reached the plots (a log axis of zeros) with a traceback."""
    _cli_error(capsys, ["limit-laws", "--n-max", "100", "--seeds", "50", "--beta", "1e300"], tmp_path,
               r"--beta 1e\+300 is not subcritical at --n-max 100")


@pytest.mark.parametrize("lam,match", [("5e-324", r"lambda = 4\.94066e-324 is too small .* lambda must be >= 0\.0003"),
                                       ("1e-45", r"too small for the critical law at d = 3"),
                                       ("1e300", r"--lambda must be <= 1e6")])
def test_cli_limit_laws_lambda_out_of_range(tmp_path, capsys, lam, match):
    """Found by the 600-example property run: a tiny --lambda overflowed rho = C lambda^(-h) (OverflowError, or a
    TypeError from JAX on a subnormal); a huge one overflowed beta. Both refused before any work."""
    _cli_error(capsys, ["limit-laws", "--n-max", "100", "--seeds", "50", "--lambda", lam], tmp_path, match)


def test_critical_lambda_bound_is_the_poisson_sample_size():
    from phasejax.limits import check_critical_lambda

    # d = 3: h = 1, C = 1/2; rho 60^h <= 1e5 <=> lambda >= 60 / (2 e5) = 3e-4 exactly
    assert check_critical_lambda(3, 3.0001e-4) == pytest.approx(math.log(0.5 / 3.0001e-4))
    with pytest.raises(InputError, match="lambda must be >= 0.0003"):
        check_critical_lambda(3, 2.9999e-4)


def test_regime_refuses_beta_whose_lambda_underflows():
    """Found by the 600-example property run: `diagnose --beta 5e-324` took log(0) (lambda = beta/n^(2/alpha)
    underflowed). Now computed in log space; a rho beyond float64 is an InputError naming beta."""
    from phasejax.theory import regime

    with pytest.raises(InputError, match=r"beta = 4\.941e-324.*beyond float64"):
        regime(5e-324, [256], 2.0, 0.5)
    assert regime(1e-30, [256], 2.0, 0.5).name == ("sub",)  # small but representable: computed
