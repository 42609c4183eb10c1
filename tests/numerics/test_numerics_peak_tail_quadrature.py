"""phasejax._numerics.{peak, tail, quadrature} against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from phasejax._numerics.peak import host_derivative, host_peak, newton_peak
from phasejax._numerics.quadrature import exp_sinh, tanh_sinh
from phasejax._numerics.tail import hill


def test_newton_peak_finds_root_of_closed_form():
    # g(x) = 2 - x^3 on [0, 3]: root 2^(1/3), with g' = -3x^2
    x, it, ok = newton_peak(lambda x: (2 - x**3, -3 * x**2), 0.0, 3.0, 2.5, tol=1e-14)
    assert ok and it < 20
    assert x == pytest.approx(2 ** (1 / 3), rel=1e-13)


def test_newton_peak_bisects_when_newton_leaves_the_bracket():
    # g(x) = atan(-x) + 0.2: Newton from far out overshoots; root tan(0.2)
    x, _, ok = newton_peak(lambda x: (math.atan(-x) + 0.2, -1 / (1 + x * x)), -50.0, 60.0, 55.0, tol=1e-14)
    assert ok and x == pytest.approx(math.tan(0.2), rel=1e-12)


def test_host_peak_of_logistic_is_its_midpoint():
    # f(x) = log(1 + e^{x - 1.7}): f' = sigmoid, f'' peaks... use f = sigmoid itself: f' peaks at 1.7, f'(1.7) = 1/4
    def f(x):
        return 1 / (1 + math.exp(-(x - 1.7)))

    x, fx, fpx = host_peak(f, -4.0, 0.0)  # the window must shift right to find it
    assert x == pytest.approx(1.7, abs=1e-9)
    assert fx == pytest.approx(0.5, abs=1e-10) and fpx == pytest.approx(0.25, abs=1e-10)


def test_host_derivative_of_analytic_function():
    assert host_derivative(math.exp, 0.3) == pytest.approx(math.exp(0.3), rel=1e-11)
    assert host_derivative(math.sin, 1.1, order=2) == pytest.approx(-math.sin(1.1), rel=1e-8)


def test_hill_matches_its_closed_form_and_recovers_a_pareto_exponent():
    # pure power law P(u <= s) = (s/s0)^h on (0, s0): u = s0 U^{1/h}; the Hill estimate at k over Q rows has
    # mean h Qk/(Qk - 1) and sd ~ h / sqrt(Qk)
    rng = np.random.default_rng(7)
    h, s0, q, n, k = 2.5, 0.3, 64, 4000, 100
    u = np.sort(s0 * rng.uniform(size=(q, n)) ** (1 / h), axis=1)[:, : k + 1]
    got = hill(u, k, n)
    lu = np.log(u)
    assert got.h == pytest.approx(q * k / np.sum(lu[:, k : k + 1] - lu[:, :k]), rel=1e-14)
    sd = h / math.sqrt(q * k)
    assert abs(got.h - h) < 4 * sd  # 4 sigma, sigma = h / sqrt(Qk) = 0.031
    # log C = -h log s0 to within the sd of its estimate (h's error times log u_(k+1) dominates)
    assert np.mean(got.log_c) == pytest.approx(-h * math.log(s0), abs=4 * sd * abs(np.mean(lu[:, k])) + 0.05)


def test_exp_sinh_integrates_gamma_function():
    logx, logw = exp_sinh(-90.0, 6.0, 0.05)  # the rule stops at e^-90: the s = 1/2 tail left out is 2 e^-45
    # int_0^inf x^{s-1} e^{-x} dx = Gamma(s)
    for s in (0.5, 1.0, 3.5):
        val = np.sum(np.exp(logw + (s - 1) * logx - np.exp(logx)))
        assert val == pytest.approx(math.gamma(s), rel=1e-10)


def test_tanh_sinh_integrates_beta_function_with_endpoint_singularities():
    log_s, log_1ms, logw = tanh_sinh(4.5, 0.02)  # nodes down to e^-140: the x^-0.7 end mass left out ~ e^-42
    for a, b in ((0.5, 0.5), (0.3, 2.0), (4.0, 4.0)):
        val = np.sum(np.exp(logw + (a - 1) * log_s + (b - 1) * log_1ms))
        assert val == pytest.approx(math.exp(math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)), rel=1e-9)
