"""Cube-search candidate planning (tinynet_ms.candidates) against a cheap analytic cost, so it runs in the quick
subset; the MACs-budget path (counted networks) is exercised by the cube search tests."""
import math

import pytest

from tinynet_ms.candidates import D_RANGE, R_RANGE, W_RANGE, halton, plan, spread_points


def _cost(rwd):  # a latency-like cost that grows with every multiplier, as the paper's MACs model does
    r, w, d = rwd
    return 50.0 * r * r * w * w * d + 0.5


def test_halton_is_the_van_der_corput_sequence():
    assert [halton(i, 2) for i in range(1, 5)] == [0.5, 0.25, 0.75, 0.125]
    assert [halton(i, 3) for i in range(1, 4)] == pytest.approx([1 / 3, 2 / 3, 1 / 9])


def test_spread_points_stay_in_the_box_and_spread_out():
    taken = [(0.5, 0.5)]
    points = []
    for p in spread_points(0.1, taken):
        points.append(p)
        taken.append(p)
        if len(points) == 6:
            break
    assert len(set(points)) == 6
    for r, d in points:
        assert R_RANGE[0] <= r <= R_RANGE[1] and D_RANGE[0] <= d <= D_RANGE[1]
        assert W_RANGE[0] <= math.sqrt(0.1 / (r * r * d)) <= W_RANGE[1]
    # farthest-first: the first pick is no closer to the seed than any later one
    gap = [math.hypot(math.log(r / 0.5), math.log(d / 0.5)) for r, d in points]
    assert gap[0] == max(gap)


def test_plan_puts_both_formulas_first_and_every_candidate_on_budget():
    budget = 5.0
    found = plan(5, budget, _cost, c=0.1, tolerance=0.02, macs_budget=False)
    assert [x.source for x in found] == ["tiny", "giant", "sample", "sample", "sample"]
    assert len({(x.r, x.d) for x in found}) == 5
    for x in found:
        assert x.cost == pytest.approx(_cost((x.r, x.w, x.d)))
        # the formula points are always in: their width is solved to design's precision, not held to the tolerance
        assert abs(x.cost / budget - 1) <= (0.02 if x.source == "sample" else 0.05), x
    for x in found[2:]:
        assert W_RANGE[0] <= x.w <= W_RANGE[1]


def test_plan_refuses_what_cannot_be_built():
    with pytest.raises(ValueError, match="at least 2 candidates"):
        plan(1, 5.0, _cost, c=0.1, tolerance=0.02, macs_budget=False)
    with pytest.raises(ValueError, match="only 2 candidates fit"):  # c so small no (r, d) in the box can build it
        plan(3, 5.0, _cost, c=1e-4, tolerance=0.02, macs_budget=False)


def test_plan_aims_again_when_the_report_disagrees_with_the_probes_and_drops_a_sample_that_still_misses():
    # a latency search solves widths with quick probes and reports a longer measurement, which reads lower (it is
    # the best of more samples): here always 20% below the probe, and the first sample's second report 25% above
    budget, reported = 5.0, []

    def report(rwd):
        reported.append(rwd)
        return _cost(rwd) * (1.25 if len(reported) == 6 else 0.8)

    found = plan(4, budget, _cost, c=0.1, tolerance=0.02, macs_budget=False, report=report)
    assert [x.source for x in found] == ["tiny", "giant", "sample", "sample"]
    for x in found:  # each reported twice: missed by 20%, then solved for budget / 0.8 and on budget
        assert x.cost == pytest.approx(0.8 * _cost((x.r, x.w, x.d))) and abs(x.cost / budget - 1) <= 0.02
        assert reported.count((x.r, x.w, x.d)) == 1 and _cost((x.r, x.w, x.d)) > budget / 0.8 * 0.97
    dropped = reported[4:6]  # the first sample's two networks: 20% under, then 56% over the budget
    assert not {(x.r, x.d) for x in found} & {(r, d) for r, _, d in dropped}
    assert len(reported) % 2 == 0  # every point reported at its first aim and at the corrected one
