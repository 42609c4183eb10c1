"""Bad input: a clear error naming the parameter, the value and what is accepted; the CLI exits 2."""

from __future__ import annotations

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
