"""Export a network to MindIR / ONNX / AIR, re-load the written file and compare it with the network.

Beside each model file goes ``<file>.json``: the network's identity and eval preprocessing (its variant record's
crop_pct, interpolation, mean/std), so whatever runs the file later (preprocess.py, the C++ harness) feeds it
exactly what the network was evaluated on; and, when the exporter knows them, the class names (predict.py reads them).

``dynamic_batch`` writes a symbolic batch axis (shown as -1 in shapes), re-load checked at two batches. Multi-output
files (``stride4``, ``stride8``, ... per backbone level) are written and read the same way.

    python -m tinynet_ms.export info MODEL.mindir|MODEL.onnx
    # {"format", "input_shape", "output_shape", "output_shapes", "preprocessing": {...}, "preprocessing_source"}
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from tinynet_ms.atomic import atomic_path, write_text_atomic
from tinynet_ms.cli import run_main
from tinynet_ms.models import DEFAULT_PREPROCESSING, Preprocessing, TinyNetFeatures, TinyNetTrunk
from tinynet_ms.models.fold import fold_batchnorm
from tinynet_ms.models.variants import INTERPOLATIONS
from tinynet_ms.records import Field, check_fields, read_json
from tinynet_ms.weights import CLASS_NAMES_FIELD

FORMATS = {"MINDIR": ".mindir", "ONNX": ".onnx", "AIR": ".air"}
INPUT_NAME, OUTPUT_NAME = "image", "logits"
DYNAMIC = -1  # a dynamic dimension in the shapes reported here and in sidecars
# Relative to the largest reference logit: float32 re-association in another runtime stays far below this.
DEFAULT_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ExportResult:
    path: Path
    input_shape: tuple[int, ...]  # as exported (DYNAMIC batch for a dynamic-batch file)
    max_abs_diff: float | None  # None when the format cannot be re-loaded here (AIR)
    max_abs_logit: float  # the largest output value, the scale of max_abs_diff
    checked_batches: tuple[int, ...] = ()  # the batch sizes the re-loaded file was run with

    @property
    def rel_diff(self) -> float | None:
        return None if self.max_abs_diff is None else self.max_abs_diff / max(self.max_abs_logit, 1e-12)


def file_format_of(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower()
    for fmt, ext in FORMATS.items():
        if suffix == ext:
            return fmt
    raise ValueError(f"{path}: unknown model file type '{suffix}' (expected .mindir, .onnx or .air)")


def sample_input(batch_size: int, image_size: int, seed: int = 0) -> np.ndarray:
    """A fixed, image-like input (normalised pixels are roughly N(0, 1)) for comparing runtimes."""
    return np.random.default_rng(seed).standard_normal((batch_size, 3, image_size, image_size)).astype(np.float32)


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """Where the preprocessing of a model file is kept: ``<model file>.json``."""
    return Path(f"{model_path}.json")


def output_names(net: nn.Cell) -> list[str]:
    """The exported file's output names: ``logits``, or a backbone's ``stride<reduction>`` per feature level."""
    if isinstance(net, TinyNetFeatures):
        return [f"stride{level.reduction}" for level in net.feature_info]
    return [OUTPUT_NAME]


def write_sidecar(model_path: str | os.PathLike, net: nn.Cell, batch_size: int, image_size: int,
                  preprocessing: Preprocessing | None = None, class_names: Sequence[str] | None = None) -> Path:
    """Record what a model file needs to be fed: its input shape (batch ``DYNAMIC`` for a dynamic batch), its
    outputs and the network's eval preprocessing; with ``class_names`` what its outputs mean (index order)."""
    preprocessing = preprocessing or getattr(net, "preprocessing", DEFAULT_PREPROCESSING)
    info = {"model": getattr(net, "label", type(net).__name__), "num_classes": getattr(net, "num_classes", None),
            "input_shape": [batch_size, 3, image_size, image_size], "outputs": output_names(net),
            "preprocessing": preprocessing.to_dict()}
    if isinstance(net, TinyNetFeatures):
        info["feature_info"] = [{"index": lv.index, "module": lv.module, "num_chs": lv.channels,
                                 "reduction": lv.reduction} for lv in net.feature_info]
    if class_names is not None:
        info["class_names"] = list(class_names)
    return write_text_atomic(sidecar_path(model_path), json.dumps(info, indent=1) + "\n")


# A sidecar is read as untrusted input (tinynet_ms.records): its values go into the preprocessing, the harness's
# command line (run_infer_310.sh splits them on spaces) and the predictions, so each is checked by type and size.
_VECTOR = Field("list", items=Field("number", "[-1e6, 1e6]"), length=3)
PREPROCESSING_FIELDS = {"crop_pct": Field("number", "(0, 1]"), "interpolation": Field("str", choices=INTERPOLATIONS),
                        "mean": _VECTOR, "std": Field("list", items=Field("number", "(0, 1e6]"), length=3)}
SIDECAR_FIELDS = {"preprocessing": Field("dict"), "class_names": replace(CLASS_NAMES_FIELD, null=True)}


def read_sidecar(model_path: str | os.PathLike) -> dict | None:
    """A model file's sidecar, checked (``SIDECAR_FIELDS``, ``PREPROCESSING_FIELDS``): None without one, a
    ``RecordError`` naming it and the first bad key when it is not one export writes."""
    sidecar = sidecar_path(model_path)
    if not sidecar.is_file():
        return None
    fix = "delete it to use the TinyNet default preprocessing, or export again"
    record = check_fields(read_json(sidecar, fix), SIDECAR_FIELDS, sidecar, fix, required=("preprocessing",))
    check_fields(record["preprocessing"], PREPROCESSING_FIELDS, sidecar, fix, required=tuple(PREPROCESSING_FIELDS),
                 key_prefix="preprocessing.")
    return record


def read_preprocessing(model_path: str | os.PathLike) -> tuple[Preprocessing, str]:
    """(preprocessing, where it came from) of a model file: its sidecar, or the TinyNet default without one."""
    record = read_sidecar(model_path)
    if record is None:
        return DEFAULT_PREPROCESSING, "default (no sidecar)"
    fields = record["preprocessing"]
    try:
        return Preprocessing(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}), \
            str(sidecar_path(model_path))
    except TypeError as exc:  # a key this version does not know
        raise ValueError(f"{sidecar_path(model_path)} is not a model sidecar this version reads ({exc}); delete it "
                         f"to use the TinyNet default preprocessing, or export again") from None


def sidecar_class_names(model_path: str | os.PathLike) -> list[str] | None:
    """The class names a model file's sidecar records (index order); None without a sidecar or names in it."""
    record = read_sidecar(model_path)
    return None if record is None else record.get("class_names")


class DistinctOutputs(nn.Cell):
    """A multi-output network whose every output is a tensor of its own (an Identity). MindSpore 2.10's ONNX
    exporter renames an output to its graph-output name but leaves the name the next stage reads unchanged, so
    a backbone's stride4 etc. (each the input of the following stage) dangle: an invalid graph."""

    def __init__(self, net: nn.Cell) -> None:
        super().__init__()
        self.net = net
        self.identity = ops.Identity()

    def construct(self, x):
        outputs = ()
        for y in self.net(x):
            outputs = outputs + (self.identity(y),)
        return outputs


def exportable(net: nn.Cell) -> nn.Cell:
    """The graph to export for ``net``: for a TinyNet, its twin from MindSpore's stock cells (the fast CPU cells are
    custom aot ops no other runtime has) with every BatchNorm folded into its conv (fewer ops for Ascend and
    every runtime); any other cell as it is."""
    if not isinstance(net, TinyNetTrunk) or (getattr(net, "folded", False) and not net.cpu_kernels):
        return net
    return fold_batchnorm(net, cpu_kernels=False)


def export_path(file_name: str | os.PathLike, file_format: str) -> Path:
    """The file ``export_network`` writes: ``file_name`` + the format's extension (unless it ends in it already)."""
    ext = FORMATS.get(file_format.upper(), "")
    return Path(file_name) if Path(file_name).suffix.lower() == ext else Path(str(file_name) + ext)


def export_network(net: nn.Cell, file_name: str | os.PathLike, file_format: str, batch_size: int,
                   image_size: int, preprocessing: Preprocessing | None = None, dynamic_batch: bool = False,
                   class_names: Sequence[str] | None = None) -> Path:
    """Write ``file_name`` + the format's extension for a (batch, 3, S, S) float32 input — the batch fixed, or
    with ``dynamic_batch`` any — and its sidecar (``preprocessing``, default the network's own; ``class_names``)."""
    fmt = file_format.upper()
    if fmt not in FORMATS:
        raise ValueError(f"file_format '{file_format}' is not one of {', '.join(FORMATS)}")
    if fmt == "AIR" and ms.get_context("device_target") != "Ascend":
        raise ValueError("AIR export needs an Ascend device (device_target Ascend); on this machine export "
                         "MINDIR (for Ascend 310 via MindSpore Lite) or ONNX")
    if fmt == "AIR" and dynamic_batch:
        raise ValueError("AIR has no dynamic batch here: export MINDIR or ONNX with dynamic_batch, or give ATC "
                         "its --dynamic_batch_size option when it compiles the AIR file")
    if batch_size < 1 or image_size < 1:
        raise ValueError(f"batch_size and image_size must be positive, got {batch_size} and {image_size}")
    path = export_path(file_name, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = output_names(net)
    graph = exportable(net) if len(names) == 1 else DistinctOutputs(exportable(net))
    graph.set_train(False)
    if dynamic_batch and fmt == "MINDIR":  # a tensor of unknown batch: MindSpore's dynamic-shape export
        x = ms.Tensor(shape=[None, 3, image_size, image_size], dtype=ms.float32)
    else:
        x = ms.Tensor(np.zeros((batch_size, 3, image_size, image_size), np.float32))
    # Written under a plain temporary name, then copied into place atomically: MindSpore rejects paths with
    # spaces or non-ASCII characters, and a killed export must not leave a torn model where the old one was.
    with tempfile.TemporaryDirectory(prefix="tinynet_export_") as work:
        out = Path(work) / f"model{FORMATS[fmt]}"
        if fmt == "ONNX":
            import mindspore.onnx
            axes = {INPUT_NAME: {0: "batch"}} if dynamic_batch else None
            mindspore.onnx.export(graph, x, file_name=str(out), input_names=[INPUT_NAME], output_names=names,
                                  dynamic_axes=axes)
            if dynamic_batch:
                _symbolic_output_batch(out)
        else:
            ms.export(graph, x, file_name=str(out.with_suffix("")), file_format=fmt)
        if not out.is_file():
            raise RuntimeError(f"MindSpore reported no error but {path} was not written")
        with atomic_path(path) as tmp:
            shutil.copyfile(out, tmp)
    write_sidecar(path, net, DYNAMIC if dynamic_batch else batch_size, image_size, preprocessing, class_names)
    return path


def _symbolic_output_batch(path: Path) -> None:
    """MindSpore 2.10 applies ``dynamic_axes`` to the inputs only, so the outputs still declare the example's
    batch (onnxruntime warns at every other batch, and shape-checking tools reject the file): name it too."""
    import onnx

    model = onnx.load(str(path))
    for output in model.graph.output:
        dim = output.type.tensor_type.shape.dim[0]
        dim.ClearField("dim_value")
        dim.dim_param = "batch"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def load_exported(path: str | os.PathLike) -> Callable[[np.ndarray], list[np.ndarray]]:
    """A function running the exported file on a NumPy batch, returning its outputs (one for a classifier, one per
    feature level for a backbone): MindIR via ``nn.GraphCell``, ONNX via onnxruntime."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    fmt = file_format_of(path)
    if fmt == "MINDIR":
        cell = nn.GraphCell(ms.load(str(path)))
        return lambda x: as_arrays(cell(ms.Tensor(x)))
    if fmt == "ONNX":
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ImportError("re-loading ONNX needs onnxruntime: pip install onnxruntime") from exc
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})
    raise ValueError(f"{path}: {fmt} files are compiled by Ascend's ATC tool and cannot be re-loaded by MindSpore")


def as_arrays(outputs: ms.Tensor | tuple | list) -> list[np.ndarray]:
    """A network's output (a tensor, or a tuple of them) as a list of NumPy arrays."""
    return [t.asnumpy() for t in outputs] if isinstance(outputs, (tuple, list)) else [outputs.asnumpy()]


def export_and_verify(net: nn.Cell, file_name: str | os.PathLike, file_format: str, batch_size: int,
                      image_size: int, tolerance: float = DEFAULT_TOLERANCE,
                      preprocessing: Preprocessing | None = None, dynamic_batch: bool = False,
                      class_names: Sequence[str] | None = None) -> ExportResult:
    """Export, re-load, run both on the same input; raise if the relative max abs diff of any output exceeds
    ``tolerance``. The reference is ``net`` itself, so the check covers what ``exportable`` changed (stock cells,
    folded BN). A dynamic-batch file is run with two batch sizes (``batch_size`` and ``batch_size + 6``)."""
    path = export_network(net, file_name, file_format, batch_size, image_size, preprocessing, dynamic_batch,
                          class_names)
    batches = (batch_size, batch_size + 6) if dynamic_batch else (batch_size,)
    shape = (DYNAMIC if dynamic_batch else batch_size, 3, image_size, image_size)
    net.set_train(False)
    run = None if file_format.upper() == "AIR" else load_exported(path)
    diff, scale = 0.0, 0.0
    for batch in batches:
        x = sample_input(batch, image_size, seed=batch)
        reference = as_arrays(net(ms.Tensor(x)))
        scale = max(scale, *(float(np.abs(r).max()) for r in reference))
        if run is None:
            return ExportResult(path, shape, None, scale)
        got = run(x)
        if [g.shape for g in got] != [r.shape for r in reference]:
            raise ValueError(f"{path}: re-loaded output shapes {[g.shape for g in got]} at batch {batch} != the "
                             f"network's {[r.shape for r in reference]}")
        diff = max(diff, *(float(np.abs(g - r).max()) for g, r in zip(got, reference)))
    result = ExportResult(path, shape, diff, scale, batches)
    if not result.rel_diff <= tolerance:  # also catches NaN
        raise ValueError(f"{path}: re-loaded model differs from the network: max abs diff {result.max_abs_diff:.3g} "
                         f"({result.rel_diff:.3g} of the largest output, tolerance {tolerance:g})")
    return result


def _dims(value_info) -> list[int]:
    return [d.dim_value if d.HasField("dim_value") else DYNAMIC for d in value_info.type.tensor_type.shape.dim]


def _mindir_tensors(output) -> list:
    """An output's tensor descriptions: its own, or a tuple output's elements (a backbone's feature maps)."""
    if output.tensor:
        return list(output.tensor)
    return [t for value in output.attr_info.values for t in value.tensors]


def model_io_shapes(path: str | os.PathLike) -> tuple[list[int], list[list[int]]]:
    """(input shape, every output's shape) read from the file itself, e.g. for the C++ harness's arguments; a
    dynamic dimension is ``DYNAMIC``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    fmt = file_format_of(path)
    if fmt not in ("ONNX", "MINDIR"):
        raise ValueError(f"{path}: cannot read shapes from an {fmt} file")
    try:
        if fmt == "ONNX":
            import onnx
            graph = onnx.load(str(path), load_external_data=False).graph
            initializers = {t.name for t in graph.initializer}
            inputs = [i for i in graph.input if i.name not in initializers]
            return _dims(inputs[0]), [_dims(o) for o in graph.output]
        from mindspore.train import mind_ir_pb2  # MindIR is a protobuf; its graph inputs carry the shapes
        model = mind_ir_pb2.ModelProto()
        model.ParseFromString(path.read_bytes())
        weights = {p.name for p in model.graph.parameter}
        inputs = [i for i in model.graph.input if i.name not in weights]
        return list(inputs[0].tensor[0].dims), [list(t.dims) for o in model.graph.output for t in _mindir_tensors(o)]
    except Exception as exc:  # protobuf's DecodeError, IndexError of an empty graph, ...: not a model we can read
        raise ValueError(f"{path} is not a readable {fmt} model ({type(exc).__name__}); export it again") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinynet_ms.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="print a model file's format and input/output shapes as JSON")
    info.add_argument("model", help="an exported .mindir or .onnx file (its sidecar MODEL.json, if beside it, gives "
                                    "the preprocessing)")
    args = parser.parse_args(argv)
    return run_main(lambda: print(json.dumps(model_info(args.model))))


def model_info(path: str | os.PathLike) -> dict:
    """Format, input/output shapes (from the file) and eval preprocessing (from its sidecar) of a model file."""
    inputs, outputs = model_io_shapes(path)
    preprocessing, source = read_preprocessing(path)
    return {"format": file_format_of(path), "input_shape": inputs, "output_shape": outputs[0],
            "output_shapes": outputs, "preprocessing": preprocessing.to_dict(), "preprocessing_source": source}


if __name__ == "__main__":
    sys.exit(main())
