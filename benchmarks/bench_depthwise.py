"""Depthwise conv on CPU: MindSpore's nn.Conv2d vs the custom aot kernel (tinynet_ms.kernels) vs PyTorch, per layer
shape of a model, then whole-model train step and inference with the kernel off vs on (graph mode).

    python benchmarks/bench_depthwise.py [--cases tinynet_e:106:32,tinynet_a:192:16] [--reps 7] [--steps 8]
                                         [--skip_layers] [--skip_model] [--json out.json]

Layer times are medians over ``--reps`` calls after two warm-up calls (host tensors in, host result out, as a
graph-mode Cell); "fwd+bwd" is the forward plus the input and weight gradients for a given output gradient.
PyTorch (if importable) is timed first, before MindSpore starts its thread pool, with torch.set_num_threads equal
to the cores. The train step is benchmarks/bench_train.py's ``bench_step`` (RMSprop, label smoothing, loss
scale, drop-path; AMP O0); inference is the eval-mode forward at the same batch size.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn, ops

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_train import bench_step  # noqa: E402
from benchmarks.common import header, speedup, table  # noqa: E402
from tinynet_ms import create_model, latency  # noqa: E402
from tinynet_ms.kernels.build import build_library, compile_flags  # noqa: E402
from tinynet_ms.kernels.depthwise import DepthwiseConv2d, padding_for  # noqa: E402
from tinynet_ms.models import model_spec  # noqa: E402
from tinynet_ms.models.arch import STEM_CHANNELS  # noqa: E402


def depthwise_layers(name: str, size: int, batch: int) -> dict[tuple[int, int, int, int, int], int]:
    """{(batch, channels, input size, kernel, stride): how many layers of the model have that shape}."""
    hw, in_ch, layers = (size - 1) // 2 + 1, STEM_CHANNELS, {}  # after the stride-2 stem
    for stage in model_spec(name).stages:
        for i in range(stage.repeats):
            stride = stage.stride if i == 0 else 1
            key = (batch, in_ch * stage.expand, hw, stage.kernel, stride)
            layers[key] = layers.get(key, 0) + 1
            hw, in_ch = (hw - 1) // stride + 1, stage.channels
    return layers


def median_ms(fn, reps: int) -> float:
    return latency.median_ms(fn, reps, warmup=2)


class _FwdBwd(nn.Cell):
    def __init__(self, net: nn.Cell) -> None:
        super().__init__()
        self.net = net
        self.weights = ms.ParameterTuple(net.trainable_params())
        self.grad = ops.GradOperation(get_all=True, get_by_list=True, sens_param=True)

    def construct(self, x, sens):
        return self.grad(self.net, self.weights)(x, sens)


def _inputs(shape, rng) -> tuple[np.ndarray, np.ndarray]:
    batch, ch, hw, k, s = shape
    out = (hw + 2 * padding_for(k, s) - k) // s + 1
    return (rng.standard_normal((batch, ch, hw, hw)).astype(np.float32),
            rng.standard_normal((batch, ch, out, out)).astype(np.float32))


def time_torch(shapes, reps: int) -> dict:
    try:
        import torch
    except ImportError:
        return {}
    torch.set_num_threads(os.cpu_count() or 1)
    rng, out = np.random.default_rng(0), {}
    for shape in shapes:
        _, ch, _, k, s = shape
        xs, dys = _inputs(shape, rng)
        x, dy = torch.from_numpy(xs).requires_grad_(True), torch.from_numpy(dys)
        w = torch.from_numpy(rng.standard_normal((ch, 1, k, k)).astype(np.float32)).requires_grad_(True)
        conv = torch.nn.functional.conv2d

        def fwd():
            with torch.no_grad():
                return conv(x, w, stride=s, padding=padding_for(k, s), groups=ch)

        def fwd_bwd():
            x.grad = w.grad = None
            conv(x, w, stride=s, padding=padding_for(k, s), groups=ch).backward(dy)

        out[shape] = (median_ms(fwd, reps), median_ms(fwd_bwd, reps))
    return out


def time_mindspore(shape, reps: int, ours: bool) -> tuple[float, float]:
    _, ch, _, k, s = shape
    cls = DepthwiseConv2d if ours else nn.Conv2d
    conv = cls(ch, ch, k, stride=s, pad_mode="pad", padding=padding_for(k, s), group=ch)
    xs, dys = _inputs(shape, np.random.default_rng(0))
    x, dy = ms.Tensor(xs), ms.Tensor(dys)
    grads = _FwdBwd(conv)
    return (median_ms(lambda: conv(x).asnumpy(), reps),
            median_ms(lambda: grads(x, dy)[1][0].asnumpy(), reps))


def bench_layers(cases, reps: int) -> list[dict]:
    per_case = {case: depthwise_layers(*case) for case in cases}
    torch_ms = time_torch({s for layers in per_case.values() for s in layers}, reps)
    rows = []
    for (name, size, _), layers in per_case.items():
        total = {}
        for shape, count in layers.items():
            batch, ch, hw, k, s = shape
            r = {"model": f"{name}@{size}", "layer": f"{batch}x{ch}x{hw}x{hw} k{k} s{s}", "n": count}
            r["ms_fwd"], r["ms_fwd_bwd"] = time_mindspore(shape, reps, ours=False)
            r["ours_fwd"], r["ours_fwd_bwd"] = time_mindspore(shape, reps, ours=True)
            if shape in torch_ms:
                r["torch_fwd"], r["torch_fwd_bwd"] = torch_ms[shape]
            for key, value in r.items():
                if isinstance(value, float):
                    total[key] = total.get(key, 0.0) + count * value
            rows.append(r)
            print(f"  {r['model']} {r['layer']}: " + ", ".join(f"{k} {v:.2f}" for k, v in r.items()
                                                                if isinstance(v, float)), file=sys.stderr, flush=True)
        rows.append({"model": f"{name}@{size}", "layer": "all depthwise layers (x n)", "n": sum(layers.values()),
                     **total})
    for r in rows:
        for phase in ("fwd", "fwd_bwd"):
            r[f"vs_ms_{phase}"] = speedup(r[f"ours_{phase}"], r[f"ms_{phase}"], higher_is_better=False)
            r[f"vs_torch_{phase}"] = (speedup(r[f"ours_{phase}"], r[f"torch_{phase}"], higher_is_better=False)
                                      if f"torch_{phase}" in r else "-")
            r.setdefault(f"torch_{phase}", "-")
    return rows


def bench_infer(name: str, size: int, batch: int, runs: int, kernels: bool) -> dict:
    net = create_model(name, num_classes=1000, cpu_kernels=kernels)
    net.set_train(False)
    x = ms.Tensor(np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32))
    t0 = time.perf_counter()
    net(x).asnumpy()
    compile_s = time.perf_counter() - t0
    ms_per_batch = median_ms(lambda: net(x).asnumpy(), runs)
    return {"compile_s": compile_s, "ms_per_batch": ms_per_batch, "img_per_sec": 1000 * batch / ms_per_batch}


def bench_model(cases, steps: int, runs: int) -> tuple[list[dict], list[dict]]:
    train, infer = [], []
    for name, size, batch in cases:
        for kernels in (False, True):
            t = bench_step(name, size, batch, "O0", steps, kernels)
            i = bench_infer(name, size, batch, runs, kernels)
            label = "custom aot kernel" if kernels else "nn.Conv2d"
            train.append({"model": name, "size": size, "batch": batch, "depthwise": label,
                          "compile_s": t["compile_s"], "ms_per_step": t["ms_per_step"],
                          "img_per_sec": t["img_per_sec"]})
            infer.append({"model": name, "size": size, "batch": batch, "depthwise": label, **i})
            print(f"  {name}@{size} bs{batch} {label}: train {t['img_per_sec']:.1f} img/s, "
                  f"infer {i['img_per_sec']:.1f} img/s", file=sys.stderr, flush=True)
    for rows in (train, infer):
        for r in rows:
            base = next(b for b in rows if b["model"] == r["model"])  # kernels off, same model
            r["speedup"] = speedup(r["img_per_sec"], base["img_per_sec"])
    return train, infer


def _fmt(rows: list[dict]) -> list[dict]:
    """Two decimals for the small numbers (ms per layer call), which common.table would round to one."""
    return [{k: (f"{v:.2f}" if isinstance(v, float) and abs(v) < 100 else v) for k, v in r.items()} for r in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="tinynet_e:106:32,tinynet_a:192:16", help="model:size:batch,...")
    parser.add_argument("--reps", type=int, default=7, help="timed calls per layer measurement")
    parser.add_argument("--steps", type=int, default=8, help="timed train steps per model")
    parser.add_argument("--runs", type=int, default=8, help="timed inference batches per model")
    parser.add_argument("--skip_layers", action="store_true")
    parser.add_argument("--skip_model", action="store_true")
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    ms.set_device("CPU")
    ms.set_context(mode=ms.GRAPH_MODE)
    cases = [(n, int(s), int(b)) for n, s, b in (c.split(":") for c in args.cases.split(","))]
    library = build_library()
    result = {}

    print(header("CPU"))
    print(f"kernel library {library.name}, flags {' '.join(compile_flags())}, "
          f"threads {os.environ.get('TINYNET_MS_KERNEL_THREADS', 'all allowed cores')}")
    if not args.skip_layers:
        layers = bench_layers(cases, args.reps)
        result["layers"] = layers
        for phase in ("fwd", "fwd_bwd"):
            print(table(_fmt(layers), ["model", "layer", "n", f"ms_{phase}", f"ours_{phase}", f"torch_{phase}",
                                 f"vs_ms_{phase}", f"vs_torch_{phase}"],
                        f"\n## depthwise {phase.replace('_', '+')}: ms per call (MindSpore nn.Conv2d, ours, "
                        f"PyTorch) and our speed-up"))
    if not args.skip_model:
        train, infer = bench_model(cases, args.steps, args.runs)
        result.update(train_step=train, inference=infer)
        print(table(_fmt(train), ["model", "size", "batch", "depthwise", "compile_s", "ms_per_step", "img_per_sec",
                            "speedup"], "\n## train step (graph mode, AMP O0): depthwise kernel off vs on"))
        print(table(_fmt(infer), ["model", "size", "batch", "depthwise", "compile_s", "ms_per_batch", "img_per_sec",
                            "speedup"], "\n## inference (graph mode, eval forward): depthwise kernel off vs on"))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
