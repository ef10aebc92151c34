"""The network is exactly the paper's: scaling rules, stage tables, params and MACs of A..E."""
import ast
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from tinynet_ms import create_model, list_models
from tinynet_ms.models import VARIANTS, TinyNetSpec
from tinynet_ms.profile import count_params, profile_model
from tinynet_ms.scaling import make_divisible, round_channels, round_repeats, scale_resolution

# DESIGN.md §1, measured on timm with 1000 classes.
EXPECTED = {
    "tinynet_a": (192, (1, 2, 2, 4, 4, 5, 1), (16, 24, 40, 80, 112, 192, 320), 6_187_972, 336.9e6),
    "tinynet_b": (188, (1, 2, 2, 3, 3, 4, 1), (16, 24, 32, 64, 88, 144, 240), 3_730_562, 200.7e6),
    "tinynet_c": (184, (1, 2, 2, 3, 3, 3, 1), (8, 16, 24, 40, 64, 104, 176), 2_457_234, 99.5e6),
    "tinynet_d": (152, (1, 1, 1, 2, 2, 3, 1), (8, 16, 24, 40, 64, 104, 176), 2_338_446, 51.6e6),
    "tinynet_e": (106, (1, 1, 1, 2, 2, 2, 1), (8, 16, 24, 40, 56, 96, 160), 2_042_972, 24.4e6),
}


def test_list_models():
    assert list_models() == sorted(EXPECTED)


def test_scaling_rules():
    assert make_divisible(21.6) == 24 and make_divisible(4.0) == 8
    assert make_divisible(36.0) == 40  # 32 would be < 0.9 * 36: the round limit bumps it
    assert round_channels(40, 0.54) == 24 and round_channels(1280, 0.51) == 656
    assert round_repeats(2, 1.25) == 2  # banker's rounding, as timm's depth_trunc='round'
    assert round_repeats(3, 1.2) == 4 and round_repeats(1, 0.3) == 1
    assert scale_resolution(0.86) == 192 and scale_resolution(0.475) == 106


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_stage_table(name):
    size, repeats, channels, _, _ = EXPECTED[name]
    spec = VARIANTS[name]
    assert spec.image_size == size
    assert tuple(s.repeats for s in spec.stages) == repeats
    assert tuple(s.channels for s in spec.stages) == channels
    assert spec.head_channels == 1280


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_params_and_macs(name):
    prof = profile_model(name)
    assert prof.params == EXPECTED[name][3]
    assert prof.image_size == EXPECTED[name][0]
    assert prof.macs == pytest.approx(EXPECTED[name][4], rel=0.01)


def test_params_scale_with_classes():
    net = create_model("tinynet_e", num_classes=10)
    assert count_params(net) == EXPECTED["tinynet_e"][3] - 990 * 1281


def test_generic_builder_matches_named_variant():
    spec = VARIANTS["tinynet_b"]
    a = create_model("tinynet", r=spec.r, w=spec.w, d=spec.d)
    assert count_params(a) == EXPECTED["tinynet_b"][3]
    assert a.spec.image_size == 188


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="unknown model 'tinynet_z'"):
        create_model("tinynet_z")
    with pytest.raises(TypeError, match="only go with 'tinynet'"):
        create_model("tinynet_a", w=0.5)
    with pytest.raises(ValueError, match="w=0"):
        TinyNetSpec(w=0)


def test_profile_cli_json():
    out = subprocess.run([sys.executable, "-m", "tinynet_ms.profile", "tinynet_a", "--json"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {"params": 6187972, "macs": 336867712, "image_size": 192}


def _library_sources():
    return sorted((ROOT / "tinynet_ms").rglob("*.py"))


def test_library_never_imports_app_layer():
    for path in _library_sources():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n == "src" or n.startswith("src.") for n in names), f"{path} imports src"


def test_no_device_or_mode_set_at_import():
    """Module-level statements of the library never configure MindSpore (only functions may)."""
    forbidden = {"set_device", "set_context", "init", "set_auto_parallel_context"}
    for path in _library_sources():
        tree = ast.parse(path.read_text())
        for stmt in tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                continue
            if isinstance(stmt, ast.If) and "__main__" in ast.unparse(stmt.test):
                continue
            for node in ast.walk(stmt):
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                    assert name not in forbidden, f"{path}:{node.lineno} calls {name} at import"


def test_timm_initialisation():
    net = create_model("tinynet_a")
    params = {p.name: p.asnumpy() for p in net.get_parameters()}
    conv = params["blocks.5.0.conv_pw.weight"]  # 1x1, fan_out = out channels
    assert conv.std() == pytest.approx((2.0 / conv.shape[0]) ** 0.5, rel=0.05)
    dw = params["blocks.5.0.conv_dw.weight"]  # depthwise: fan_out = k*k*out/groups = 25
    assert dw.std() == pytest.approx((2.0 / 25) ** 0.5, rel=0.05)
    fc = params["classifier.weight"]
    assert np.abs(fc).max() <= 1 / 1000 ** 0.5 and fc.std() == pytest.approx(1 / 3000 ** 0.5, rel=0.05)
    assert (params["classifier.bias"] == 0).all() and (params["blocks.0.0.se.conv_reduce.bias"] == 0).all()
    assert (params["bn2.gamma"] == 1).all() and (params["bn2.beta"] == 0).all()
