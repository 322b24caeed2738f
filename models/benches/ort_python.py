"""ONNX Runtime's own Python runner, for the side-by-side figure in infer.rs.

Usage: ort_python.py MODEL.onnx INPUT.f32 H W THREADS RUNS
Runs the model on the same input (raw little-endian float32, 1x3xHxW) with the
CPU provider and THREADS intra-op threads; prints the median ms per inference.
"""
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

model, input_path, h, w, threads, runs = sys.argv[1:7]
h, w, threads, runs = int(h), int(w), int(threads), int(runs)
x = np.fromfile(input_path, dtype="<f4").reshape(1, 3, h, w)
opts = ort.SessionOptions()
opts.intra_op_num_threads = threads
opts.inter_op_num_threads = 1
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
name = sess.get_inputs()[0].name
sess.run(None, {name: x})
times = []
for _ in range(runs):
    t = time.perf_counter()
    sess.run(None, {name: x})
    times.append(time.perf_counter() - t)
print(f"{statistics.median(times) * 1e3:.4f}")
