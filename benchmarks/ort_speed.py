"""onnxruntime's speed on one ONNX file, in a process of its own (bench_infer.py's onnxruntime row): after MindSpore
has run in a process its runtime threads slow another runtime there (onnxruntime's batch 1 by ~10%), so the
peer is never timed beside ours. Prints one JSON object: the median seconds per call.

    python benchmarks/ort_speed.py MODEL.onnx --batch 1 --size 106 --runs 100

Default session settings (every core, onnxruntime's own thread pool), as a user runs it; a random input (speed does
not depend on the values), one warm-up call.
"""
import argparse
import json
import statistics
import time

import numpy as np
import onnxruntime as ort


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--runs", type=int, required=True)
    args = parser.parse_args()
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name:
            np.random.default_rng(0).standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32)}
    session.run(None, feed)
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    print(json.dumps({"seconds": statistics.median(times)}))


if __name__ == "__main__":
    main()
