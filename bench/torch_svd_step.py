"""One Sparse VD training step of LeNet-300-100 or LeNet-5-Caffe in PyTorch, for vdspec's benchmark.

Written from spec/fast.md#training, spec/dense.md, spec/conv2d.md and
spec/objective.md for the molchanov2017 profile: log_alpha = log_sigma2 -
2 log|theta| clipped to the clip range, variance exp(log_alpha) * theta^2,
out = mean + sqrt(variance + sqrt_eps) * eps with the mean and the variance
each one product (dense) or one F.conv2d (conv, 'valid' padding, stride 1),
no mask in the training forward, 2x2 max-pools, KL per weight
k1 sigmoid(-(k2 + k3 la)) + 0.5 softplus(-la), loss = N * mean CE + beta * KL,
Adam (PyTorch's defaults, the same as vdspec's), batch 100.

Protocol (so that src/bench/bench.ts can interleave it with its own rounds):
stdin line 1 is a JSON object with the constants (passed in by the bench, which
reads them from src/constants.ts), the network ("lenet300" or "lenet5") and the
thread count; the script answers one JSON line {"torch", "threads", "matmul_ms",
"blas", "blas_libraries"} (matmul_ms: one 100x784 @ 784x300 product; blas:
torch's build setting; blas_libraries: the BLAS shared objects this process has
loaded, from /proc/self/maps). Then each stdin line holding an integer n runs n
steps and answers {"ms_per_step": ...}; an empty line or end of input stops.
"""
import json
import math
import re
import sys
import time

import torch
import torch.nn.functional as F

config = json.loads(sys.stdin.readline())
torch.set_num_threads(int(config["threads"]))
K1, K2, K3 = config["k1"], config["k2"], config["k3"]
CLIP_MIN, CLIP_MAX = config["clip_min"], config["clip_max"]
SQRT_EPS = config["sqrt_eps"]
INIT_LOG_SIGMA2 = config["init_log_sigma2"]
INIT_STD = config["init_std"]
TRAIN_SIZE = config["train_size"]
LR = config["lr"]
BATCH = config["batch"]
NETWORK = config["network"]

torch.manual_seed(0)


def dense(fan_in, fan_out):
    theta = (torch.randn(fan_in, fan_out) * INIT_STD).requires_grad_()
    return ("dense", theta)


def conv(cin, cout, k):
    limit = math.sqrt(6 / ((cin + cout) * k * k))
    theta = ((torch.rand(cout, cin, k, k) * 2 - 1) * limit).requires_grad_()
    return ("conv", theta)


if NETWORK == "lenet300":
    layers = [dense(784, 300), dense(300, 100), dense(100, 10)]
    x = torch.randn(BATCH, 784)
elif NETWORK == "lenet5":
    layers = [conv(1, 20, 5), conv(20, 50, 5), dense(800, 500), dense(500, 10)]
    x = torch.rand(BATCH, 1, 28, 28)
else:
    raise SystemExit(f"unknown network {NETWORK}")
params = []
for kind, theta in layers:
    log_sigma2 = torch.full(theta.shape, float(INIT_LOG_SIGMA2), requires_grad=True)
    bias = torch.zeros(theta.shape[1] if kind == "dense" else theta.shape[0], requires_grad=True)
    params.append((kind, theta, log_sigma2, bias))
optimizer = torch.optim.Adam([p for layer in params for p in layer[1:]], lr=LR)
labels = torch.arange(BATCH) % 10


def step():
    optimizer.zero_grad(set_to_none=True)
    h = x
    kl = 0.0
    for i, (kind, theta, log_sigma2, bias) in enumerate(params):
        la = torch.clamp(log_sigma2 - 2.0 * torch.log(torch.abs(theta)), CLIP_MIN, CLIP_MAX)
        variance_weights = torch.exp(la) * theta * theta
        if kind == "dense":
            if h.dim() > 2:
                h = h.flatten(1)
            mean = h @ theta + bias
            variance = (h * h) @ variance_weights
        else:
            mean = F.conv2d(h, theta, bias)
            variance = F.conv2d(h * h, variance_weights)
        h = mean + torch.sqrt(variance + SQRT_EPS) * torch.randn_like(mean)
        if i < len(params) - 1:
            h = torch.relu(h)
            if kind == "conv":
                h = F.max_pool2d(h, 2)
        kl = kl + (
            K1 * torch.sigmoid(-(K2 + K3 * la)) + 0.5 * F.softplus(-la)
        ).sum()
    loss = TRAIN_SIZE * F.cross_entropy(h, labels) + kl
    loss.backward()
    optimizer.step()
    return loss.item()


def blas_libraries():
    found = set()
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                if re.search(r"blas|mkl|blis|atlas", path, re.IGNORECASE):
                    found.add(path)
    except OSError:
        pass
    return sorted(found)


a = torch.randn(100, 784)
b = torch.randn(784, 300)
for _ in range(3):
    a @ b
start = time.perf_counter()
for _ in range(10):
    a @ b
matmul_ms = (time.perf_counter() - start) * 100
for _ in range(3):
    step()
blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                  "matmul_ms": matmul_ms, "blas": blas.group(1) if blas else "unknown",
                  "blas_libraries": blas_libraries()}), flush=True)

for line in sys.stdin:
    line = line.strip()
    if not line:
        break
    n = int(line)
    start = time.perf_counter()
    for _ in range(n):
        step()
    print(json.dumps({"ms_per_step": (time.perf_counter() - start) * 1000 / n}), flush=True)
