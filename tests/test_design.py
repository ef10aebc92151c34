"""The tiny formula (and the inverse giant formula) as a design tool: budgets hit, A…E reproduced."""
import json
import math
import subprocess
import sys

import pytest

from helpers import ROOT, SCRIPT_ENV
from tinynet_ms.design import design, published_knots
from tinynet_ms.models import VARIANTS
from tinynet_ms.models import TinyNetSpec
from tinynet_ms.profile import count_spec, profile_model
from tinynet_ms.scaling import BASE_RESOLUTION, giant_multipliers, tiny_rd

BUDGETS = {"15M": 15e6, "50M": 50e6, "150M": 150e6, "300M": 300e6}


def test_tiny_rd_is_monotone_exact_at_knots_and_floored_outside():
    knots = [(0.06, 0.475, 0.6), (0.13, 0.68, 0.695), (0.26, 0.825, 0.85), (0.52, 0.84, 1.1), (0.87, 0.86, 1.2)]
    for c, r, d in knots:
        assert tiny_rd(c, knots) == (r, d)
    cs = [0.001 * 1.05 ** i for i in range(200)]
    rds = [tiny_rd(c, knots) for c in cs]
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(rds, rds[1:]))
    r, d = tiny_rd(1e-6, knots)
    assert int(BASE_RESOLUTION * r) == 32 and d == pytest.approx(0.1)
    r, _ = tiny_rd(0.09, knots)  # between E and D: linear in log c
    t = (math.log(0.09) - math.log(0.06)) / (math.log(0.13) - math.log(0.06))
    assert r == pytest.approx(0.475 + t * (0.68 - 0.475))
    with pytest.raises(ValueError, match="increasing"):
        tiny_rd(0.1, [(0.1, 0.5, 0.6), (0.2, 0.4, 0.7)])


def test_table_count_equals_the_count_on_the_built_network():
    for v in VARIANTS.values():  # the records hold the built networks' counts (test_architecture re-counts them)
        assert (count_spec(v.spec).params, count_spec(v.spec).macs) == (v.params, v.macs)
    # odd points, class counts and input sizes: every rounding path of the table against the hooks
    for (r, w, d), classes, size in (((0.311, 1.47, 1.36), 10, None), ((0.96, 0.27, 0.21), 7, 65),
                                     ((0.5, 0.8, 0.9), 1000, 97)):
        built = profile_model("tinynet", image_size=size, num_classes=classes, r=r, w=w, d=d)
        counted = count_spec(TinyNetSpec(r=r, w=w, d=d), classes, size)
        assert (counted.params, counted.macs) == (built.params, built.macs), (r, w, d)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_published_budgets_give_the_published_variants(name):
    spec = VARIANTS[name].spec
    macs = profile_model(name).macs
    knot_c = [c for c, r, d in published_knots() if (r, d) == (spec.r, spec.d)][0]
    budgets = (macs, round(macs, -5)) if name == "tinynet_e" else (macs,)  # exact, and as a user would type it
    for budget in budgets:
        x = design(budget)
        assert (x.image_size, x.repeats, x.channels) == (
            spec.image_size, [s.repeats for s in spec.stages], [s.channels for s in spec.stages])
    assert design(macs).macs == macs and knot_c == pytest.approx(macs / profile_model("tinynet").macs)


@pytest.mark.slow
@pytest.mark.parametrize("budget", ["15M", "150M"])
def test_tiny_formula_hits_the_budget_on_the_built_network(budget):
    x = design(int(BUDGETS[budget]))
    assert abs(x.error) <= 0.02
    # Counted again on a freshly built network, the way a user would.
    assert profile_model("tinynet", r=x.r, w=x.w, d=x.d).macs == x.macs


@pytest.mark.slow
def test_giant_formula_follows_phi():
    x = design(int(50e6), "giant")
    r, w, d = giant_multipliers(x.phi)
    assert (x.r, x.d) == (pytest.approx(r, rel=1e-5), pytest.approx(d, rel=1e-5))
    assert abs(x.w / w - 1) < 0.1 and abs(x.error) <= 0.02
    tiny = design(int(50e6))
    assert tiny.image_size > x.image_size and tiny.d > x.d and tiny.w < x.w  # r and d before w


@pytest.mark.slow
@pytest.mark.parametrize("budget", ["50M"])
def test_cli_json(budget):
    run = subprocess.run([sys.executable, "-m", "tinynet_ms.design", "--macs", budget, "--json"], cwd=ROOT,
                         env=SCRIPT_ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    x = json.loads(run.stdout)
    assert abs(x["macs"] / BUDGETS[budget] - 1) <= 0.02 and x["method"] == "tiny"
    assert {"r", "w", "d", "image_size", "repeats", "channels", "params", "macs", "error"} <= set(x)


@pytest.mark.slow
def test_bad_budgets_are_refused_clearly():
    for args, message in ((["--macs", "lots"], "cannot read MACs budget"), (["--macs", "5G"], "above EfficientNet-B0's")):
        run = subprocess.run([sys.executable, "-m", "tinynet_ms.design", *args], cwd=ROOT, env=SCRIPT_ENV,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 2 and message in run.stderr, run.stderr
    with pytest.raises(ValueError, match="below the smallest network"):
        design(1000)


@pytest.mark.slow
def test_designed_model_trains_evaluates_and_exports(demo_data, tmp_path):
    """A designed network goes through train.py / eval.py / export.py by config overrides alone."""
    x = design(int(15e6))
    model = ["--model", "tinynet", "--r", str(x.r), "--w", str(x.w), "--d", str(x.d), "--num_classes", "4",
             "--image_size", "32", "--device_target", "CPU"]
    common = ["--config_path", "configs/demo.yaml", "--data_path", str(demo_data), *model]
    out = tmp_path / "out"

    def run(*cmd):
        done = subprocess.run([sys.executable, *cmd], cwd=ROOT, env=SCRIPT_ENV, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout

    run("train.py", *common, "--epochs", "1", "--batch_size", "8", "--num_parallel_workers", "1",
        "--output_dir", str(out))
    ckpt = out / "checkpoints" / "best.ckpt"
    assert "top1: " in run("eval.py", *common, "--checkpoint_path", str(ckpt), "--output_dir", str(out))
    assert "re-loaded: max abs diff" in run("export.py", *common, "--checkpoint_path", str(ckpt),
                                            "--file_name", str(tmp_path / "designed"), "--file_format", "ONNX")
    from tinynet_ms.export import model_io_shapes
    assert model_io_shapes(tmp_path / "designed.onnx") == ([1, 3, 32, 32], [[1, 4]])
