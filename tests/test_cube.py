"""Fitting the tiny formula (tinynet_ms.formula, python cube.py fit) and designing from a fitted file."""
import json
import subprocess
import sys

import pytest

from helpers import ROOT, SCRIPT_ENV
from tinynet_ms.formula import FORMAT, fit_knots, isotonic, read_formula, write_formula


def test_isotonic_regression_pools_violators_and_keeps_monotone_data():
    assert isotonic([1.0, 2.0, 3.0]) == [1.0, 2.0, 3.0]
    assert isotonic([1.0, 3.0, 2.0, 4.0]) == [1.0, 2.5, 2.5, 4.0]
    assert isotonic([3.0, 1.0], weights=[1.0, 3.0]) == [1.5, 1.5]  # weighted mean of the pooled pair


def test_fit_is_monotone_in_c_and_exact_on_monotone_points():
    points = [(0.3, 0.8, 0.9), (0.1, 0.5, 0.6), (0.2, 0.7, 0.5)]  # d dips at c = 0.2
    knots = fit_knots(points)
    assert [k[0] for k in knots] == [0.1, 0.2, 0.3]
    assert [k[1] for k in knots] == [0.5, 0.7, 0.8]  # r was monotone: kept
    assert [k[2] for k in knots] == pytest.approx([0.55, 0.55, 0.9])  # d pooled
    assert fit_knots([(0.1, 0.5, 0.6), (0.1, 0.7, 0.8)]) == [(0.1, pytest.approx(0.6), pytest.approx(0.7))]
    with pytest.raises(ValueError, match="positive finite"):
        fit_knots([(0.1, float("nan"), 0.5)])


def test_formula_file_round_trips_and_bad_files_name_the_problem(tmp_path):
    knots = [(0.05, 0.4, 0.5), (0.2, 0.7, 0.8)]
    path = write_formula(tmp_path / "f.json", knots, ["here"])
    assert read_formula(path) == knots and json.loads(path.read_text())["format"] == FORMAT
    with pytest.raises(FileNotFoundError, match="python cube.py fit"):
        read_formula(tmp_path / "missing.json")
    for text, message in (("{", "not JSON"), ('{"format": "x"}', "not a tinynet_ms.formula"),
                          (json.dumps({"format": FORMAT, "knots": [{"c": 1}]}), "list of {c, r, d}"),
                          (json.dumps({"format": FORMAT, "knots": []}), "empty"),
                          (json.dumps({"format": FORMAT, "knots": [{"c": 0.1, "r": 0.5, "d": 0.5},
                                                                   {"c": 0.2, "r": 0.4, "d": 0.6}]}),
                           "never decreasing")):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            read_formula(bad)


def _search(path, budget, candidates):
    path.mkdir(parents=True, exist_ok=True)
    (path / "cube.json").write_text(json.dumps({"format": "tinynet_ms.cube/1", "budget_macs": budget,
                                                "candidates": candidates}))
    return path


def test_best_candidate_is_the_highest_top1_and_unfinished_searches_are_refused(tmp_path):
    from src.cube import best_candidate

    search = _search(tmp_path / "s", 50e6, [
        {"r": 0.5, "w": 1.0, "d": 0.5, "macs": 49e6, "top1": 0.6},
        {"r": 0.7, "w": 0.6, "d": 0.7, "macs": 50.5e6, "top1": 0.7},
        {"r": 0.8, "w": 0.5, "d": 0.6, "macs": 50.1e6, "top1": 0.7},  # tie: nearer the budget wins
        {"r": 0.9, "w": 0.4, "d": 0.9, "macs": 50e6, "top1": None}])  # not trained yet
    assert best_candidate(search)["r"] == 0.8
    with pytest.raises(ValueError, match="no trained candidate"):
        best_candidate(_search(tmp_path / "t", 50e6, [{"r": 0.5, "w": 1.0, "d": 0.5, "macs": 49e6, "top1": None}]))
    with pytest.raises(FileNotFoundError, match="cube.json"):
        best_candidate(tmp_path / "nowhere")


@pytest.mark.slow
def test_fit_on_the_published_points_reproduces_designs_default_formula(tmp_path):
    from src.cube import fit
    from tinynet_ms.design import design, published_knots
    from tinynet_ms.models import VARIANTS
    from tinynet_ms.profile import profile_model

    knots = fit([], tmp_path / "published.json", published=True)
    assert knots == list(published_knots())
    fitted = read_formula(tmp_path / "published.json")
    for name in ("tinynet_a", "tinynet_e"):  # at the published points: the same r, d and network
        macs = profile_model(name).macs
        ours, default = design(macs, knots=fitted), design(macs)
        assert (ours.r, ours.d, ours.w, ours.macs) == (default.r, default.d, default.w, default.macs)
        assert (ours.r, ours.d) == (VARIANTS[name].spec.r, VARIANTS[name].spec.d)


@pytest.mark.slow
def test_design_cli_uses_a_fitted_formula(tmp_path):
    from tinynet_ms.design import b0_macs

    # one search at 25% of B0 whose best network has a much higher resolution than the published formula's
    b0 = b0_macs()
    search = _search(tmp_path / "s", 0.25 * b0, [{"r": 0.95, "w": 0.5, "d": 0.5, "macs": 0.25 * b0, "top1": 0.8},
                                                  {"r": 0.6, "w": 0.9, "d": 0.9, "macs": 0.25 * b0, "top1": 0.5}])
    out = tmp_path / "f.json"
    fit_run = subprocess.run([sys.executable, "cube.py", "fit", str(search), "--out", str(out)],
                             cwd=ROOT, env=SCRIPT_ENV, capture_output=True, text=True, timeout=300)
    assert fit_run.returncode == 0, fit_run.stderr
    assert read_formula(out) == [(pytest.approx(0.25), 0.95, 0.5)]

    def designed(*extra):
        run = subprocess.run([sys.executable, "-m", "tinynet_ms.design", "--macs", str(int(0.25 * b0)), "--json",
                              *extra], cwd=ROOT, env=SCRIPT_ENV, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)

    ours, default = designed("--formula", str(out)), designed()
    assert (ours["r"], ours["d"]) == (0.95, 0.5) and ours["r"] != default["r"]
    assert abs(ours["error"]) <= 0.02  # w still solved for the budget on the built network
    bad = subprocess.run([sys.executable, "-m", "tinynet_ms.design", "--macs", "50M", "--formula",
                          str(tmp_path / "none.json")], cwd=ROOT, env=SCRIPT_ENV, capture_output=True, text=True)
    assert bad.returncode != 0 and "none.json not found (written by python cube.py fit)" in bad.stderr
