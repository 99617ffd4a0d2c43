"""The seeds a comparison needs, against standard table values and closed forms, and the plan command."""
from __future__ import annotations

import math

import pytest
from scipy import stats as scipy_stats

from rsb.sweep import cli, power


@pytest.mark.parametrize("effect, seeds", [(1.0, 17), (0.8, 26), (0.5, 64), (0.2, 394)])
def test_two_sample_seeds_match_the_standard_table(effect, seeds):
    """Cohen (1988), Table 2.4.1, two-sided alpha 0.05, power 0.80: n per group 17 (d = 1.0), 26 (0.8), 64 (0.5),
    393 (0.2, from the normal approximation; the noncentral t gives 394)."""
    assert power.seeds_needed(effect * 0.1, 0.1) == seeds
    assert power.seeds_needed(effect, 1.0) == seeds  # only delta / std matters


@pytest.mark.parametrize("effect, seeds", [(1.0, 10), (0.5, 34)])
def test_one_sample_and_paired_seeds_match_the_standard_table(effect, seeds):
    # One-sample (and paired) t-test, two-sided 0.05, power 0.80: 10 at d = 1, 34 at d = 0.5 (G*Power's values).
    assert power.seeds_needed(effect, 1.0, design="one-sample") == seeds
    assert power.seeds_needed(effect, 1.0, design="paired") == seeds


def test_seeds_needed_is_the_smallest_n_with_the_power():
    for delta, std, alpha, target in [(0.1, 0.1, 0.05, 0.8), (0.1, 0.23, 0.05, 0.9), (0.2, 0.1, 0.01, 0.8)]:
        n = power.seeds_needed(delta, std, alpha, target)
        assert power.power(n, delta, std, alpha) >= target > power.power(n - 1, delta, std, alpha)


def test_power_against_closed_forms():
    # Under no difference, a two-sided test rejects with probability alpha, for any n.
    assert power.power(5, 0.0, 1.0, 0.05) == pytest.approx(0.05, abs=1e-12)
    # With many seeds the t-test's power tends to the normal closed form Phi(d sqrt(n/2) - z) + Phi(-d sqrt(n/2) - z).
    n, d, z = 2000, 0.1, scipy_stats.norm.ppf(0.975)
    normal = scipy_stats.norm.cdf(d * math.sqrt(n / 2) - z) + scipy_stats.norm.cdf(-d * math.sqrt(n / 2) - z)
    assert power.power(n, d, 1.0) == pytest.approx(normal, abs=2e-4)
    # At few seeds the normal approximation overstates the power: that is why the noncentral t is used.
    n = 5
    normal = scipy_stats.norm.cdf(1.0 * math.sqrt(n / 2) - z)
    assert power.power(n, 1.0, 1.0) < normal - 0.05


def test_detectable_delta_inverts_the_power():
    d = power.detectable_delta(17, 0.1)
    assert power.power(17, d, 0.1) == pytest.approx(0.8, abs=1e-6)
    assert 0.09 < d < 0.1  # 17 per side detect 0.1 at std 0.1 with a little more than 80% power
    assert power.detectable_delta(1, 0.1) is None
    assert power.seeds_needed(0.0, 0.1) is None and power.seeds_needed(1e-9, 1.0) is None  # beyond any study


def test_plan_command(capsys):
    assert cli.main(["plan", "--std", "0.1", "--delta", "0.1", "0.2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("to detect 0.1 points at std 0.1: 17 seeds per side (80% power, alpha 0.05")
    assert out[1].startswith("to detect 0.2 points at std 0.1: 6 seeds per side")
    assert cli.main(["plan", "--std", "0.23", "--delta", "0.1", "--power", "0.9", "--alpha", "0.01"]) == 0
    n = power.seeds_needed(0.1, 0.23, 0.01, 0.9)
    assert f" {n} seeds per side (90% power, alpha 0.01" in capsys.readouterr().out


@pytest.mark.parametrize("flags", [["--std", "0"], ["--std", "0.1", "--power", "1.5"],
                                   ["--std", "0.1", "--delta", "-1"]])
def test_plan_rejects_bad_numbers(flags, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["plan", *flags])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("python -m rsb.sweep plan: error:")
