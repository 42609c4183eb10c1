"""Property test (issue 17): no input ends in a traceback.

Random extreme values (integers near 0, 1, 2^31, 2^53, 2^63, 2^64 and negative; floats 0, 1e-300, 1e300,
inf, nan and negative; junk strings) go into the numeric flags of every subcommand, one flag at a time
on top of small base sizes. Each call runs ``phasejax.cli.main`` in-process and must either

* exit 0 with a JSON result whose every number is finite (no NaN, no inf, no null where a number belongs), or
* exit 2 with exactly one line on stderr and no traceback.

Any exception escaping ``main`` fails the test (that is a traceback). ``reproduce`` runs the whole paper
pipeline, so there only its argument parsing is exercised (``--seed``). A fixed budget of examples
(``derandomize=True``) keeps the default run short; ``test_cli_property_large`` (slow) runs more.
"""

from __future__ import annotations

import contextlib
import io
import json
import math

import jax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phasejax import cli

pytestmark = pytest.mark.bad_input

_INTS = [0, 1, 2, 3, -1, -(2**31), 2**31 - 1, 2**31, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30]
_FLOATS = ["0", "0.0", "1e-300", "-1e-300", "1e300", "-1e300", "inf", "-inf", "nan", "-2.5", "0.5", "1e-45",
           "5e-324", "1.5", "1e6"]
_JUNK = ["", "abc", "1,2", "0x10", "1e", "--", "None"]

# subcommand -> (base argv with small sizes, numeric flags); the value replaces the flag's default
COMMANDS = {
    "theory": (["theory"], ["--d", "--alpha", "--C", "--lambda", "--beta", "--n", "--seed", "--sigma", "--rho"]),
    "heat": (["heat", "--N", "200", "--seeds", "2", "--beta", "5"],
             ["--d", "--l", "--eps", "--N", "--beta", "--beta-min", "--beta-max", "--beta-points", "--seeds",
              "--seed"]),
    "sweep": (["sweep", "--n", "200", "--seeds", "2", "--beta-points", "3"],
              ["--n", "--beta-min", "--beta-max", "--beta-points", "--seeds", "--top-k", "--chunk", "--nearest-m",
               "--d", "--alpha", "--seed"]),
    "scaling": (["scaling", "--n-min", "100", "--n-max", "300", "--n-points", "2", "--seeds", "4",
                 "--grid-points", "6"],
                ["--n-min", "--n-max", "--n-points", "--seeds", "--m", "--lambda-min", "--lambda-max",
                 "--grid-points", "--d", "--seed"]),
    "learn": (["learn", "--task", "regression", "--n-min", "50", "--n-max", "50", "--n-points", "1", "--steps",
               "16", "--runs", "2", "--batch", "4", "--contexts", "1"],
              ["--d", "--n-min", "--n-max", "--n-points", "--steps", "--runs", "--lr", "--batch", "--contexts",
               "--beta0", "--seed"]),
    "limit-laws": (["limit-laws", "--n-max", "100", "--seeds", "50", "--entropy-n", "1000"],
                   ["--d", "--beta", "--lambda", "--n-max", "--seeds", "--entropy-n", "--seed"]),
    "schedules": (["schedules", "--n-min", "1000", "--n-max", "10000"],
                  ["--d", "--alpha", "--C", "--train-length", "--ssmax-s", "--llama4-floor-scale",
                   "--llama4-attn-scale", "--yarn-factor", "--critical-lambda", "--n-min", "--n-max"]),
    "diagnose": (["diagnose", "KEYS", "--no-measure"], ["--queries", "--beta", "--level", "--n-min", "--n-points",
                                                         "--n-max", "--seeds", "--seed"]),
    "reproduce": (["reproduce"], ["--seed"]),
}
PARSE_ONLY = {"reproduce"}
# sizes that would be accepted and then take minutes at these extremes: the flags here get only values that
# must be refused (<= 0, non-integers, junk) or are modest, so the default budget stays small
SIZE_FLAGS = {"--N", "--n", "--n-max", "--n-min", "--seeds", "--runs", "--steps", "--batch", "--contexts",
              "--beta-points", "--chunk", "--nearest-m", "--m", "--grid-points", "--n-points", "--queries",
              "--entropy-n", "--top-k", "--train-length", "--l"}


def _value():
    return st.one_of(st.sampled_from([str(v) for v in _INTS]), st.sampled_from(_FLOATS), st.sampled_from(_JUNK),
                     st.integers(-(2**65), 2**65).map(str),
                     st.floats(allow_nan=True, allow_infinity=True).map(repr))


def _finite(obj) -> bool:
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return True
    if isinstance(obj, (int, float)):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(_finite(v) for k, v in obj.items() if k not in ("files", "provenance", "parallel"))
    if isinstance(obj, (list, tuple)):
        return all(_finite(v) for v in obj)
    return True


def _too_big(flag: str, value: str) -> bool:
    """A size flag with a valid value far beyond the small base sizes (minutes of work, not an error)."""
    if flag not in SIZE_FLAGS:
        return False
    try:
        v = float(value)
    except ValueError:
        return False
    return math.isfinite(v) and v > (2000 if flag in ("--N", "--n", "--n-max", "--entropy-n", "--train-length")
                                      else 64)


def run_case(command: str, flag: str, value: str, tmp, keys_path) -> str:
    """Run one case; returns 'ok', 'error' or raises AssertionError for a traceback or a bad result."""
    base, _ = COMMANDS[command]
    argv = [keys_path if a == "KEYS" else a for a in base]
    if flag in argv:  # replace the base value
        i = argv.index(flag)
        argv[i + 1] = value
    else:
        argv += [flag, value]
    if command in PARSE_ONLY:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                cli.build_parser().parse_args(argv)
            except SystemExit as e:
                lines = err.getvalue().strip().splitlines()
                assert e.code == 2 and len(lines) == 1 and "Traceback" not in lines[0], (argv, lines)
                return "error"
        return "ok"
    if command != "theory":
        argv += ["--out", str(tmp), "--quiet"]
    argv += ["--json"]
    out, err = io.StringIO(), io.StringIO()
    old = jax.config.jax_enable_x64
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = cli.main(argv)
            except SystemExit as e:
                rc = e.code
    except Exception as e:  # noqa: BLE001 -- a traceback: the failure this test exists for
        raise AssertionError(f"traceback for {argv}: {type(e).__name__}: {e}") from e
    finally:
        jax.config.update("jax_enable_x64", old)
    lines = [ln for ln in err.getvalue().strip().splitlines() if ln.strip()]
    if rc == 2:
        assert len(lines) == 1 and "Traceback" not in lines[0], (argv, lines)
        return "error"
    assert rc == 0, (argv, rc, lines)
    result = json.loads(out.getvalue())
    assert _finite(result), (argv, "non-finite value in the result")
    return "ok"


@pytest.fixture(scope="module")
def keys_path(tmp_path_factory):
    import numpy as np

    p = tmp_path_factory.mktemp("keys") / "keys.npy"
    x = np.random.default_rng(0).normal(size=(400, 3))
    np.save(p, x / np.linalg.norm(x, axis=1, keepdims=True))
    return str(p)


COUNTS = {"tried": 0, "ok": 0, "error": 0, "skipped_big": 0}


def _property(data, tmp_path_factory, keys_path):
    command = data.draw(st.sampled_from(sorted(COMMANDS)), label="command")
    flag = data.draw(st.sampled_from(COMMANDS[command][1]), label="flag")
    value = data.draw(_value(), label="value")
    if _too_big(flag, value):
        COUNTS["skipped_big"] += 1
        return
    COUNTS["tried"] += 1
    COUNTS[run_case(command, flag, value, tmp_path_factory.mktemp("out"), keys_path)] += 1


@settings(max_examples=15, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_cli_property(data, tmp_path_factory, keys_path):
    _property(data, tmp_path_factory, keys_path)


@pytest.mark.slow
@settings(max_examples=600, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_cli_property_large(data, tmp_path_factory, keys_path):
    _property(data, tmp_path_factory, keys_path)


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    """Print the counts of this module's property runs at its end (the closing note quotes them)."""
    yield
    print(f"\nproperty counts: {COUNTS}")
