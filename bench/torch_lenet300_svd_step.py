"""One LeNet-300-100 Sparse VD training step in PyTorch, for vdspec's benchmark.

Written from spec/fast.md#training, spec/dense.md and spec/objective.md for the
molchanov2017 profile: log_alpha = log_sigma2 - 2 log|theta| clipped to the clip
range, variance exp(log_alpha) * theta^2, out = mean + sqrt(variance + sqrt_eps) * eps,
no mask in the training forward, KL per weight k1 sigmoid(-(k2 + k3 la)) +
0.5 softplus(-la), loss = N * mean CE + beta * KL, Adam (PyTorch's defaults, the
same as vdspec's), batch 100, one thread.

Protocol (so that src/bench/bench.ts can interleave it with its own rounds):
stdin line 1 is a JSON object with the constants (passed in by the bench, which
reads them from src/constants.ts); the script answers one JSON line
{"torch", "threads", "matmul_ms"} (matmul_ms: one 100x784 @ 784x300 product,
which shows whether this torch has an optimised BLAS). Then each stdin line
holding an integer n runs n steps and answers {"ms_per_step": ...}; an empty
line or end of input stops.
"""
import json
import sys
import time

import torch

torch.set_num_threads(1)
config = json.loads(sys.stdin.readline())
K1, K2, K3 = config["k1"], config["k2"], config["k3"]
CLIP_MIN, CLIP_MAX = config["clip_min"], config["clip_max"]
SQRT_EPS = config["sqrt_eps"]
INIT_LOG_SIGMA2 = config["init_log_sigma2"]
INIT_STD = config["init_std"]
TRAIN_SIZE = config["train_size"]
LR = config["lr"]
BATCH = config["batch"]

torch.manual_seed(0)
sizes = [(784, 300), (300, 100), (100, 10)]
params = []
for fan_in, fan_out in sizes:
    theta = (torch.randn(fan_in, fan_out) * INIT_STD).requires_grad_()
    log_sigma2 = torch.full((fan_in, fan_out), float(INIT_LOG_SIGMA2), requires_grad=True)
    bias = torch.zeros(fan_out, requires_grad=True)
    params.append((theta, log_sigma2, bias))
optimizer = torch.optim.Adam([p for layer in params for p in layer], lr=LR)
x = torch.randn(BATCH, 784)
labels = torch.arange(BATCH) % 10


def step():
    optimizer.zero_grad(set_to_none=True)
    h = x
    kl = 0.0
    for i, (theta, log_sigma2, bias) in enumerate(params):
        la = torch.clamp(log_sigma2 - 2.0 * torch.log(torch.abs(theta)), CLIP_MIN, CLIP_MAX)
        mean = h @ theta + bias
        variance = (h * h) @ (torch.exp(la) * theta * theta)
        h = mean + torch.sqrt(variance + SQRT_EPS) * torch.randn_like(mean)
        if i < len(params) - 1:
            h = torch.relu(h)
        kl = kl + (
            K1 * torch.sigmoid(-(K2 + K3 * la)) + 0.5 * torch.nn.functional.softplus(-la)
        ).sum()
    loss = TRAIN_SIZE * torch.nn.functional.cross_entropy(h, labels) + kl
    loss.backward()
    optimizer.step()
    return loss.item()


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
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                  "matmul_ms": matmul_ms}), flush=True)

for line in sys.stdin:
    line = line.strip()
    if not line:
        break
    n = int(line)
    start = time.perf_counter()
    for _ in range(n):
        step()
    print(json.dumps({"ms_per_step": (time.perf_counter() - start) * 1000 / n}), flush=True)
