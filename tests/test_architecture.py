"""The network is exactly the paper's: scaling rules, stage tables, params and MACs of A..E; the variant records
agree with the built networks and the README; the library's import graph has no cycle and no app import."""
import ast
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from helpers import ROOT
from tinynet_ms import create_model, list_models
from tinynet_ms.models import DEFAULT_PREPROCESSING, VARIANTS, TinyNetSpec, preprocessing_of
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
    spec = VARIANTS[name].spec
    assert spec.image_size == size
    assert tuple(s.repeats for s in spec.stages) == repeats
    assert tuple(s.channels for s in spec.stages) == channels
    assert spec.head_channels == 1280


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_params_and_macs(name):
    """Counted on the built network: timm's params exactly, DESIGN's MACs to 0.1M, the record's numbers exactly."""
    prof, record = profile_model(name), VARIANTS[name]
    assert prof.params == EXPECTED[name][3] == record.params
    assert prof.image_size == EXPECTED[name][0] == record.image_size
    assert prof.macs == record.macs and abs(prof.macs - EXPECTED[name][4]) < 0.05e6


def test_records_hold_timm_eval_preprocessing():
    """timm's pretrained_cfg of every TinyNet: crop 0.875, bicubic, ImageNet mean/std; the generic builder too."""
    for name, record in VARIANTS.items():
        assert record.name == name and record.url.endswith(f"/{name}.pth")
        assert record.preprocessing == DEFAULT_PREPROCESSING == preprocessing_of("tinynet")
        assert create_model(name, cpu_kernels=False).preprocessing == record.preprocessing
    assert (DEFAULT_PREPROCESSING.crop_pct, DEFAULT_PREPROCESSING.interpolation) == (0.875, "bicubic")
    assert DEFAULT_PREPROCESSING.mean == (0.485, 0.456, 0.406) and DEFAULT_PREPROCESSING.std == (0.229, 0.224, 0.225)


def test_readme_variant_table_is_the_records():
    rows = re.findall(r"^\| (tinynet_[a-e]) \| ([^|]+) \| (\d+) \| ([\d,]+) \| ([\d.]+)M \| ([\d.]+) \|$",
                      (ROOT / "README.md").read_text(), re.M)
    assert [r[0] for r in rows] == list_models()
    for name, rwd, size, params, macs, top1 in rows:
        v = VARIANTS[name]
        assert [float(x) for x in rwd.split(",")] == [v.spec.r, v.spec.w, v.spec.d], name
        assert (int(size), int(params.replace(",", "")), macs, float(top1)) == (
            v.image_size, v.params, f"{v.macs / 1e6:.1f}", v.top1), name


def test_params_scale_with_classes():
    net = create_model("tinynet_e", num_classes=10)
    assert count_params(net) == EXPECTED["tinynet_e"][3] - 990 * 1281


def test_generic_builder_matches_named_variant():
    spec = VARIANTS["tinynet_b"].spec
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


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_profile_cli_json():
    out = subprocess.run([sys.executable, "-m", "tinynet_ms.profile", "tinynet_a", "--json"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {"params": 6187972, "macs": 336867712, "image_size": 192}


def _library_sources():
    return sorted((ROOT / "tinynet_ms").rglob("*.py"))


def _module_name(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path) -> set[str]:
    """Every tinynet_ms module ``path`` imports, at the top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}  # from package import module
    return out


def test_library_import_graph_has_no_cycle():
    """Function-level imports count: one that only hides a cycle is still a cycle."""
    modules = {_module_name(p): p for p in _library_sources()}
    graph = {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}
    done, path = set(), []

    def visit(m):
        if m in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(m):] + [m]))
        if m in done:
            return
        path.append(m)
        for dep in sorted(graph[m]):
            visit(dep)
        path.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)


def test_library_never_imports_app_layer():
    for path in _library_sources():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n == "src" or n.startswith("src.") for n in names), f"{path} imports src"


# A path to the model zoo's application (its entry points, scripts/, src, the C++ harness' build), as a whole string
APP_PATH = re.compile(r"^(.*[/\\])?((train|eval|export|predict|preprocess|postprocess|cube)\.py|run_\w+\.sh|build\.sh)$"
                      r"|^(scripts|ascend310_infer)([/\\].*)?$|^src\.\w+")


def app_reaches(source: str) -> list[str]:
    """Where library code reaches the application around it, not through an import: a string naming an app path
    among a call's arguments (a subprocess running train.py, ``-m src.config``), or a climb out of the package from
    ``__file__`` (``.parent.parent``, ``.parents[...]``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                found += [f"line {c.lineno}: {c.value!r}" for c in ast.walk(arg) if isinstance(c, ast.Constant)
                          and isinstance(c.value, str) and APP_PATH.match(c.value)]
        if isinstance(node, ast.Attribute) and node.attr in ("parent", "parents") and "__file__" in ast.unparse(node) \
                and (node.attr == "parents" or ast.unparse(node).count(".parent") > 1):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return sorted(set(found))


def test_library_never_reaches_the_app_layer_through_a_process_or_a_path():
    """The library runs without the checkout around it (an installed wheel has no train.py, scripts/ or src/)."""
    offending = {str(p.relative_to(ROOT)): app_reaches(p.read_text()) for p in _library_sources()}
    assert not {k: v for k, v in offending.items() if v}
    # what the rule catches: the cube search as it was when it lived in the library
    old = "import subprocess, sys\nfrom pathlib import Path\nroot = Path(__file__).resolve().parent.parent\n" \
          "subprocess.run([sys.executable, '-m', 'src.config', 'c.yaml'])\n" \
          "subprocess.Popen([sys.executable, str(root / 'train.py')])\n" \
          "subprocess.run(['bash', str(root / 'scripts' / 'run_distribute_train.sh')])\n"
    assert len(app_reaches(old)) == 5, app_reaches(old)  # the climb, src.config, train.py, scripts, run_...sh
    assert not app_reaches("log.info('run train.py with --resume auto'); Path(__file__).parent / 'data'")


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
