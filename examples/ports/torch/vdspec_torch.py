#!/usr/bin/env python3
"""A PyTorch port of VD / Sparse VD: nn.Modules, gradients from autograd.

Written from the specification pages (spec/*.md), not from the TypeScript
reference. The layers are ordinary `nn.Module`s in PyTorch's layouts
(`VariationalLinear`: weight [out, in]; `VariationalConv2d`: NCHW input,
weight OIHW) whose conventions (log_alpha form and eps, clip, variance, mask,
KL, padding rule) are data: a profile object of the spec's shape
(spec/profiles.md; `profiles.json` beside this file, or any golden file's
`profile`). Every gradient is autograd's; nothing is derived by hand.

    python3 vdspec_torch.py [--profile NAME | --profile-file FILE] [--dtype float64|float32]

run as a port of `vdspec check` (spec/check.md), through the port kit
(examples/ports/kit/vdspec_kit.py). `--bug kl-constant-dropped` plants one
departure (the KL without C = -k1), to see the check fail.
"""

import argparse
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "kit"))
from vdspec_kit import PortError, decode_number, serve  # noqa: E402

# spec/constants.md
SVD_KL_K1, SVD_KL_K2, SVD_KL_K3 = 0.63576, 1.8732, 1.48695
VD_KL_C1, VD_KL_C2, VD_KL_C3 = 1.16145124, -1.50204118, 0.58629921
SVD_INIT_LOG_SIGMA2 = -10.0
KL_WARMUP_START_EPOCH, KL_WARMUP_END_EPOCH = 5, 20

BUGS = ("kl-constant-dropped",)


def load_profiles(path=os.path.join(HERE, "profiles.json")):
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------------------
# Per weight (spec/log-alpha.md): log_alpha, its clip, the mask, the variance.
# Written so that autograd never multiplies a zero gradient by an infinity:
# wherever a value is infinite or clipped, torch.where cuts the graph (the
# "hard zero" of spec/log-alpha.md#partial-derivatives).

def clip(raw, bounds):
    """(clipped log_alpha, where the gradient passes) with the clip of spec/log-alpha.md."""
    if bounds is None:
        return raw, torch.isfinite(raw)
    lo, hi, at_bound = bounds["min"], bounds["max"], bounds["gradientAtBound"]
    passes = torch.isfinite(raw)
    if lo is not None:
        passes = passes & ((raw >= lo) if at_bound == 1 else (raw > lo))
    if hi is not None:
        passes = passes & ((raw <= hi) if at_bound == 1 else (raw < hi))
    return torch.where(passes, raw, raw.detach().clamp(lo, hi)), passes


def safe_log(v):
    """log(v), with v = 0 giving -inf and no gradient (not 0 * inf)."""
    zero = v == 0
    return torch.where(zero, torch.full_like(v, -math.inf),
                       torch.log(torch.where(zero, torch.ones_like(v), v)))


def log_sigma2_of(noise, noise_name):
    return 2 * noise if noise_name == "log_sigma" else noise


def raw_log_alpha(weight, noise, form):
    """spec/log-alpha.md#svdlog_alpha, evaluated as written (theta * theta, + eps, log)."""
    if form["form"] == "learned":
        return noise
    if form["form"] == "log_theta2":
        return noise - safe_log(weight * weight + form["thetaEps"])
    return noise - 2 * safe_log(weight.abs() + form["thetaEps"])


def check_noise(weight, noise, conventions, name):
    learned = conventions["dense"]["logAlpha"]["form"] == "learned"
    try:
        shape = torch.broadcast_shapes(noise.shape, weight.shape)
    except RuntimeError:
        shape = None
    if shape != weight.shape or (not learned and noise.shape != weight.shape):
        raise PortError("%s: shape %s does not fit theta's" % (name, list(noise.shape)))


class WeightStats:
    """log_alpha (clipped), the keep mask and the per-weight variance s2 of one layer."""

    def __init__(self, weight, noise, conventions, kind, for_kl=False):
        layer = conventions[kind]
        form = layer["logAlpha"]
        if for_kl and layer["klLogAlpha"] is not None:
            form = layer["klLogAlpha"]
        noise = torch.broadcast_to(noise, weight.shape)
        log_sigma2 = log_sigma2_of(noise, conventions["noiseParameter"])
        self.raw = raw_log_alpha(weight, log_sigma2, form)
        self.log_alpha, self.passes = clip(self.raw, form["clip"])
        prune = conventions["prune"]
        if prune is None:
            self.keep = torch.ones_like(weight)
        else:
            seen = (self.log_alpha if prune["from"] == "clipped" else self.raw).detach()
            pruned = seen > prune["threshold"] if prune["comparison"] == ">" \
                else seen >= prune["threshold"]
            self.keep = (~pruned).to(weight.dtype)
        variance = layer["variance"]
        if variance == "sigma2":
            self.s2 = torch.exp(log_sigma2)
        elif variance == "sigma2_rebuilt":
            # exp(clipped log_alpha) * (theta^2 + eps): exp(log_sigma2) where the clip passes.
            rebuilt = torch.exp(self.log_alpha) * (weight * weight + form["thetaEps"])
            self.s2 = torch.where(self.passes, torch.exp(log_sigma2), rebuilt)
        else:
            self.s2 = torch.exp(self.log_alpha) * (weight * weight)


def masked(value, mask):
    """value where mask is 1, an exact 0 (no gradient) where it is 0."""
    return torch.where(mask == 0, torch.zeros_like(value), value)


# ---------------------------------------------------------------------------
# The KL (spec/kl.md, spec/objective.md#kllayer)

def softplus(y):
    """log(1 + exp(y)), stable, with the right derivative at 0 and at +-inf."""
    pos = y > 0
    yp = torch.where(pos, y, torch.zeros_like(y))
    yn = torch.where(pos, torch.zeros_like(y), y)
    return torch.where(pos, yp + torch.log1p(torch.exp(-yp)), torch.log1p(torch.exp(yn)))


def kl_per_weight(log_alpha, kl, drop_constant=False):
    """The profile's KL approximation at an already clipped log_alpha (nats per weight)."""
    if torch.isnan(log_alpha).any():
        raise PortError("log_alpha: NaN")
    if kl["approximation"] == "svd_sigmoid":
        c = -SVD_KL_K1 if kl["constant"] == "minus_k1" and not drop_constant else 0.0
        z = SVD_KL_K2 + SVD_KL_K3 * log_alpha
        return SVD_KL_K1 * torch.sigmoid(-z) + 0.5 * softplus(-log_alpha) - (SVD_KL_K1 + c)
    if (log_alpha == math.inf).any():
        raise PortError("log_alpha: +inf has no cubic KL")
    a = torch.exp(log_alpha)
    return -(0.5 * log_alpha + a * (VD_KL_C1 + a * (VD_KL_C2 + a * VD_KL_C3)))


# ---------------------------------------------------------------------------
# The layers (spec/dense.md, spec/conv2d.md)

class VariationalLayer(nn.Module):
    """Weight noise with the local reparameterization trick; `kind` is dense or conv2d."""

    kind = None

    def __init__(self, weight_shape, conventions, noise_shape=None, bias=True):
        super().__init__()
        self.conventions = conventions
        self.noise_name = conventions["noiseParameter"]
        self.weight = nn.Parameter(torch.randn(weight_shape) * 0.01)
        init = SVD_INIT_LOG_SIGMA2 if self.noise_name != "log_alpha" else -1.0
        if self.noise_name == "log_sigma":
            init /= 2
        shape = weight_shape if noise_shape is None else noise_shape
        self.register_parameter(self.noise_name, nn.Parameter(torch.full(shape, init)))
        self.bias = nn.Parameter(torch.zeros(weight_shape[0])) if bias else None
        self.train_clip = conventions["trainClipDefault"]

    @property
    def noise(self):
        return getattr(self, self.noise_name)

    def stats(self, for_kl=False):
        return WeightStats(self.weight, self.noise, self.conventions, self.kind, for_kl)

    def clipped_log_alpha(self):
        return self.stats().log_alpha

    def keep_mask(self):
        return self.stats().keep

    def product(self, x, w):
        raise NotImplementedError

    def add_bias(self, y):
        raise NotImplementedError

    def moments(self, x, train_clip=None):
        """(mean, variance) of the pre-activation (the training forward)."""
        w = self.stats()
        on = self.train_clip if train_clip is None else train_clip
        m_mean = w.keep if on else torch.ones_like(w.keep)
        both = on and self.conventions[self.kind]["trainMask"] == "mean_and_variance"
        m_var = w.keep if both else torch.ones_like(w.keep)
        mean = self.add_bias(self.product(x, masked(self.weight, m_mean)))
        variance = self.product(x * x, masked(w.s2, m_var))
        return mean, variance

    def sample(self, mean, variance, eps):
        return mean + torch.sqrt(variance + self.conventions["sqrtEps"]) * eps

    def forward(self, x, eps=None, train_clip=None):
        if not self.training:
            return self.eval_forward(x)
        mean, variance = self.moments(x, train_clip)
        return self.sample(mean, variance, torch.randn_like(mean) if eps is None else eps)

    def eval_forward(self, x, masked_weights=True):
        w = masked(self.weight, self.keep_mask()) if masked_weights else self.weight
        return self.add_bias(self.product(x, w))

    def kl(self, drop_constant=False):
        """This layer's KL term: the per-weight KL summed over the weights."""
        return kl_per_weight(self.stats(for_kl=True).log_alpha, self.conventions["kl"],
                             drop_constant).sum()


class VariationalLinear(VariationalLayer):
    """Dense layer: x [batch, in], weight [out, in] (nn.Linear's layout; theta = weight.T)."""

    kind = "dense"

    def __init__(self, in_features, out_features, conventions, noise_shape=None, bias=True):
        super().__init__((out_features, in_features), conventions, noise_shape, bias)

    def product(self, x, w):
        return x @ w.t()

    def add_bias(self, y):
        return y if self.bias is None else y + self.bias


def same_padding(size, k, s, rule):
    """(before, after) of 'same' padding on one axis (spec/conv2d.md#padding)."""
    if rule == "lasagne":
        if k % 2 == 0:
            raise PortError("theta: Lasagne's 'same' padding needs an odd kernel")
        return k // 2, k // 2
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


class VariationalConv2d(VariationalLayer):
    """conv2d layer: x NCHW, weight OIHW (nn.Conv2d's layouts), no dilation or groups."""

    kind = "conv2d"

    def __init__(self, in_channels, out_channels, kernel_size, conventions, stride=1,
                 padding="valid", noise_shape=None, bias=True):
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        super().__init__((out_channels, in_channels, kh, kw), conventions, noise_shape, bias)
        self.stride = (stride, stride) if isinstance(stride, int) else tuple(stride)
        if padding not in ("valid", "same"):
            raise PortError("padding: expected 'valid' or 'same'")
        self.padding = padding

    def product(self, x, w):
        (sh, sw), (kh, kw) = self.stride, w.shape[2:]
        h, wd = x.shape[2:]
        if self.padding == "same":
            rule = self.conventions["samePadding"]
            top, bottom = same_padding(h, kh, sh, rule)
            left, right = same_padding(wd, kw, sw, rule)
        elif h < kh or wd < kw:
            raise PortError("x: 'valid' needs the input at least as large as the kernel")
        else:
            top = bottom = left = right = 0
        oh = (h + top + bottom - kh) // sh + 1
        ow = (wd + left + right - kw) // sw + 1
        if 0 in (x.shape[0], x.shape[1], w.shape[0], oh, ow):
            # An empty sum is 0; F.conv2d has no output for cin = 0 (spec/profiles.md).
            return x.new_zeros((x.shape[0], w.shape[0], oh, ow)) + 0 * w.sum() + 0 * x.sum()
        x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, w, stride=(sh, sw))

    def add_bias(self, y):
        return y if self.bias is None else y + self.bias.reshape(1, -1, 1, 1)


# ---------------------------------------------------------------------------
# The objective (spec/objective.md)

def cross_entropy(logits, labels):
    """(per example, mean) softmax cross-entropy from logits."""
    per_example = torch.logsumexp(logits, dim=1) - logits.gather(1, labels[:, None])[:, 0]
    return per_example, per_example.mean()


def sgvb(logits, labels, train_size, kl_weight, kl):
    """(loss, data term, KL term): N * mean CE + beta * KL."""
    data_term = train_size * cross_entropy(logits, labels)[1]
    kl_term = kl_weight * kl
    return data_term + kl_term, data_term, kl_term


def kl_weight_at(epoch, start=KL_WARMUP_START_EPOCH, end=KL_WARMUP_END_EPOCH):
    if epoch < start:
        return 0.0
    return (epoch - start) / (end - start) if epoch < end else 1.0


# ---------------------------------------------------------------------------
# The port: vdspec's layouts (dense theta [in, out], conv HWIO, NHWC) mapped to
# the modules' (spec/conv2d.md#mapping-to-pytorch), one op per function.

class Port:
    def __init__(self, conventions, dtype, bug=None):
        self.P = conventions
        self.dtype = dtype
        self.bug = bug
        self.noise = conventions["noiseParameter"]

    def array(self, shape, values):
        return torch.tensor(values, dtype=torch.float64).reshape(shape).to(self.dtype)

    def tensor(self, inputs, name, finite=True):
        v = inputs[name]
        if not isinstance(v, torch.Tensor):
            raise PortError("%s: expected a tensor {shape, data}" % name)
        if finite and not torch.isfinite(v).all():
            raise PortError("%s: NaN or infinite values are not allowed" % name)
        return v.clone()

    def kind_of(self, inputs):
        kind = inputs.get("layer", "dense")
        if kind not in ("dense", "conv2d"):
            raise PortError('layer: expected "dense" or "conv2d"')
        return kind

    # -- a module holding the case's parameters ---------------------------------
    def module(self, kind, inputs, with_bias=True):
        theta = self.tensor(inputs, "theta")
        noise = self.tensor(inputs, self.noise)
        check_noise(theta, noise, self.P, self.noise)
        if kind == "dense":
            if theta.ndim != 2:
                raise PortError("theta: expected [in, out]")
            layer = VariationalLinear(theta.shape[0], theta.shape[1], self.P, bias=with_bias)
            weight, noise_t = theta.t(), pad_to(noise, 2).t()
        else:
            if theta.ndim != 4:
                raise PortError("theta: expected HWIO [kh, kw, cin, cout]")
            stride = inputs.get("stride", 1)
            if isinstance(stride, list) and len(stride) != 2:
                raise PortError("stride: expected [sh, sw]")
            layer = VariationalConv2d(theta.shape[2], theta.shape[3], tuple(theta.shape[:2]),
                                      self.P, stride=stride,
                                      padding=inputs.get("padding", "valid"), bias=with_bias)
            weight, noise_t = theta.permute(3, 2, 0, 1), pad_to(noise, 4).permute(3, 2, 0, 1)
        layer.to(self.dtype)
        with torch.no_grad():
            layer.weight = nn.Parameter(weight.contiguous())
            setattr(layer, self.noise, nn.Parameter(noise_t.contiguous()))
            if with_bias:
                bias = self.tensor(inputs, "bias")
                if bias.shape != (weight.shape[0],):
                    raise PortError("bias: expected shape [out]")
                layer.bias = nn.Parameter(bias)
        layer.noise_shape = noise.shape
        return layer

    def x_of(self, layer, inputs, name="x"):
        x = self.tensor(inputs, name)
        if layer.kind == "dense":
            if x.ndim != 2 or x.shape[1] != layer.weight.shape[1]:
                raise PortError("x: expected [batch, in] with theta's in")
            return x.requires_grad_()
        if x.ndim != 4 or x.shape[3] != layer.weight.shape[1]:
            raise PortError("x: expected NHWC with theta's cin")
        return x.permute(0, 3, 1, 2).detach().requires_grad_()

    @staticmethod
    def out(layer, y):
        """A module output in vdspec's layout."""
        return y if layer.kind == "dense" else y.permute(0, 2, 3, 1)

    @staticmethod
    def weight_back(layer, g):
        return g.t() if layer.kind == "dense" else g.permute(2, 3, 1, 0)

    def noise_back(self, layer, g):
        g = g.t() if layer.kind == "dense" else g.permute(2, 3, 1, 0)
        return g.reshape(layer.noise_shape)

    def train_clip(self, layer, inputs):
        v = inputs.get("train_clip", layer.train_clip)
        if not isinstance(v, bool):
            raise PortError("train_clip: expected true or false")
        return v

    def eps_of(self, layer, inputs, like):
        eps = self.tensor(inputs, "eps")
        eps = eps if layer.kind == "dense" or eps.ndim != 4 else eps.permute(0, 3, 1, 2)
        if eps.shape != like.shape:
            raise PortError("eps: expected the output's shape")
        return eps

    def grads(self, layer, x, outputs, cotangents):
        params = [x, layer.weight, layer.noise, layer.bias]
        got = torch.autograd.grad(outputs, params, cotangents, allow_unused=True)
        got = [torch.zeros_like(p) if g is None else g for p, g in zip(params, got)]
        return {"grad_x": self.out(layer, got[0]), "grad_theta": self.weight_back(layer, got[1]),
                "grad_" + self.noise: self.noise_back(layer, got[2]), "grad_bias": got[3]}

    # -- the ops ---------------------------------------------------------------
    def train(self, kind, inputs):
        layer = self.module(kind, inputs)
        x = self.x_of(layer, inputs)
        mean, variance = layer.moments(x, self.train_clip(layer, inputs))
        output = layer.sample(mean, variance, self.eps_of(layer, inputs, mean))
        return layer, x, mean, variance, output

    def op_train(self, kind, inputs):
        layer, _, mean, variance, output = self.train(kind, inputs)
        return {k: self.out(layer, v).detach() for k, v in
                (("mean", mean), ("variance", variance), ("output", output))}

    def op_train_vjp(self, kind, inputs):
        layer, x, _, _, output = self.train(kind, inputs)
        cot = self.tensor(inputs, "cotangent")
        cot = cot if kind == "dense" or cot.ndim != 4 else cot.permute(0, 3, 1, 2)
        if cot.shape != output.shape:
            raise PortError("cotangent: expected the output's shape")
        return self.grads(layer, x, output, cot)

    def op_eval(self, kind, inputs, masked_weights=True):
        layer = self.module(kind, inputs)
        x = self.x_of(layer, inputs)
        return {"output": self.out(layer, layer.eval_forward(x, masked_weights)).detach()}

    def op_eval_vjp(self, kind, inputs):
        layer = self.module(kind, inputs)
        x = self.x_of(layer, inputs)
        output = layer.eval_forward(x)
        cot = self.tensor(inputs, "cotangent")
        cot = cot if kind == "dense" or cot.ndim != 4 else cot.permute(0, 3, 1, 2)
        if cot.shape != output.shape:
            raise PortError("cotangent: expected the output's shape")
        return self.grads(layer, x, output, cot)

    def op_predict_mc(self, kind, inputs):
        layer = self.module(kind, inputs)
        x = self.x_of(layer, inputs)
        mean, variance = layer.moments(x, self.train_clip(layer, inputs))
        draws = self.tensor(inputs, "eps")
        if draws.ndim != 3 or draws.shape[0] < 1 or draws.shape[1:] != mean.shape:
            raise PortError("eps: expected [S, batch, out] with S >= 1")
        outputs = layer.sample(mean, variance, draws)
        return {"mean_output": outputs.mean(dim=0).detach(),
                "mean_softmax": torch.softmax(outputs, dim=-1).mean(dim=0).detach()}

    def op_log_alpha(self, inputs):
        kind = self.kind_of(inputs)
        layer = self.module(kind, inputs, with_bias=False)
        return {"log_alpha": self.weight_back(layer, layer.clipped_log_alpha()).detach()}

    def op_mask(self, inputs):
        kind = self.kind_of(inputs)
        layer = self.module(kind, inputs, with_bias=False)
        return {"mask": self.weight_back(layer, layer.keep_mask())}

    def op_kl_approx(self, inputs):
        la = self.tensor(inputs, "log_alpha", finite=False).requires_grad_()
        kl = kl_per_weight(la, self.P["kl"], self.bug == "kl-constant-dropped")
        (dkl,) = torch.autograd.grad(kl.sum(), [la]) if kl.numel() else (torch.zeros_like(la),)
        return {"kl": kl.detach(), "dkl_dlog_alpha": dkl}

    def op_kl_layer(self, inputs):
        layer = self.module(self.kind_of(inputs), inputs, with_bias=False)
        kl = layer.kl(self.bug == "kl-constant-dropped")
        g_theta, g_noise = torch.autograd.grad(kl, [layer.weight, layer.noise], allow_unused=True)
        g_theta = torch.zeros_like(layer.weight) if g_theta is None else g_theta
        g_noise = torch.zeros_like(layer.noise) if g_noise is None else g_noise
        return {"kl": kl.detach(), "grad_theta": self.weight_back(layer, g_theta),
                "grad_" + self.noise: self.noise_back(layer, g_noise)}

    # -- VD variant A (spec/dense-a.md): Gaussian dropout on the input units -------
    def dense_a_log_alpha(self, inputs, n_in):
        la = self.tensor(inputs, self.noise)
        if tuple(la.shape) not in ((), (n_in,)):
            raise PortError("%s: variant A takes [] or [in]" % self.noise)
        la.requires_grad_()
        return la, clip(torch.broadcast_to(la, (n_in,)), self.P["dense"]["logAlpha"]["clip"])[0]

    def dense_a(self, inputs):
        x, theta = self.tensor(inputs, "x").requires_grad_(), self.tensor(inputs, "theta")
        bias, eps = self.tensor(inputs, "bias").requires_grad_(), self.tensor(inputs, "eps")
        if x.ndim != 2 or theta.ndim != 2 or theta.shape[0] != x.shape[1] or eps.shape != x.shape:
            raise PortError("x, theta, eps: expected [batch, in], [in, out], [batch, in]")
        theta.requires_grad_()
        la_param, la = self.dense_a_log_alpha(inputs, x.shape[1])
        alpha = torch.exp(la)
        xi = 1 + torch.sqrt(alpha) * eps
        mean = x @ theta + bias
        variance = (x * x * alpha) @ (theta * theta)
        output = (x * xi) @ theta + bias
        return (x, theta, la_param, bias), mean, variance, output

    def op_dense_a_train(self, inputs):
        _, mean, variance, output = self.dense_a(inputs)
        return {"mean": mean.detach(), "variance": variance.detach(), "output": output.detach()}

    def op_dense_a_train_vjp(self, inputs):
        params, _, _, output = self.dense_a(inputs)
        cot = self.tensor(inputs, "cotangent")
        if cot.shape != output.shape:
            raise PortError("cotangent: expected [batch, out]")
        got = torch.autograd.grad(output, params, cot, allow_unused=True)
        got = [torch.zeros_like(p) if g is None else g for p, g in zip(params, got)]
        return dict(zip(("grad_x", "grad_theta", "grad_" + self.noise, "grad_bias"), got))

    def op_dense_a_kl(self, inputs):
        theta = self.tensor(inputs, "theta")
        if theta.ndim != 2:
            raise PortError("theta: expected [in, out]")
        la_param, la = self.dense_a_log_alpha(inputs, theta.shape[0])
        kl = kl_per_weight(la, self.P["kl"]).sum()
        (g,) = torch.autograd.grad(kl, [la_param], allow_unused=True)
        return {"kl": kl.detach(), "grad_" + self.noise: torch.zeros_like(la_param) if g is None
                else g}

    # -- the objective -----------------------------------------------------------
    def logits_labels(self, inputs):
        logits = self.tensor(inputs, "logits")
        labels = inputs["labels"]
        if logits.ndim != 2 or 0 in logits.shape:
            raise PortError("logits: expected [M, classes] with M, classes >= 1")
        if not isinstance(labels, list) or len(labels) != logits.shape[0] or not all(
                isinstance(y, int) and not isinstance(y, bool) and 0 <= y < logits.shape[1]
                for y in labels):
            raise PortError("labels: expected M class indices in range")
        return logits, torch.tensor(labels, dtype=torch.long)

    def scalar(self, inputs, name):
        return torch.tensor(decode_number(inputs[name], name), dtype=self.dtype)

    def op_cross_entropy(self, inputs):
        per_example, mean = cross_entropy(*self.logits_labels(inputs))
        return {"per_example": per_example, "mean": mean}

    def op_sgvb(self, inputs):
        logits, labels = self.logits_labels(inputs)
        n, beta, kl = (self.scalar(inputs, k) for k in ("train_size", "kl_weight", "kl"))
        loss, data_term, kl_term = sgvb(logits, labels, n, beta, kl)
        return {"loss": loss, "data_term": data_term, "kl_term": kl_term}

    def op_kl_weight(self, inputs):
        epoch = decode_number(inputs["epoch"], "epoch")
        if not math.isfinite(epoch) or epoch < 0:
            raise PortError("epoch: expected a finite number >= 0")
        return {"kl_weight": torch.tensor(kl_weight_at(epoch), dtype=self.dtype)}

    def table(self):
        alg = self.P["algorithm"]
        ops = {
            "kl.approx": self.op_kl_approx,
            "kl.layer": self.op_kl_layer,
            alg + ".log_alpha": self.op_log_alpha,
            "objective.cross_entropy": self.op_cross_entropy,
            "objective.sgvb": self.op_sgvb,
            "schedule.kl_weight": self.op_kl_weight,
            alg + ".dense.predict_mc": lambda i: self.op_predict_mc("dense", i),
        }
        for kind in ("dense", "conv2d"):
            base = "%s.%s." % (alg, kind)
            ops[base + "train"] = lambda i, k=kind: self.op_train(k, i)
            ops[base + "train_vjp"] = lambda i, k=kind: self.op_train_vjp(k, i)
            ops[base + "eval"] = lambda i, k=kind: self.op_eval(k, i)
            ops[base + "eval_vjp"] = lambda i, k=kind: self.op_eval_vjp(k, i)
        if alg == "svd":
            ops["svd.mask"] = self.op_mask
            for kind in ("dense", "conv2d"):
                ops["svd.%s.eval_unmasked" % kind] = \
                    lambda i, k=kind: self.op_eval(k, i, masked_weights=False)
        else:
            ops["vd.dense_a.train"] = self.op_dense_a_train
            ops["vd.dense_a.train_vjp"] = self.op_dense_a_train_vjp
            ops["vd.dense_a.kl"] = self.op_dense_a_kl
        return ops


def pad_to(t, rank):
    """Leading axes of size 1 up to `rank` (NumPy's broadcasting alignment)."""
    return t.reshape((1,) * (rank - t.ndim) + tuple(t.shape))


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    profiles = load_profiles()
    parser.add_argument("--profile", default="molchanov2017", choices=sorted(profiles))
    parser.add_argument("--profile-file", default=None,
                        help="a profile object of the spec's shape (e.g. a golden file's)")
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    parser.add_argument("--bug", default=None, choices=BUGS)
    args = parser.parse_args(argv)
    conventions = profiles[args.profile]
    if args.profile_file is not None:
        with open(args.profile_file) as f:
            conventions = json.load(f)
    torch.set_num_threads(1)
    port = Port(conventions, getattr(torch, args.dtype), args.bug)
    name = "torch-example" + ("" if args.bug is None else " (planted: %s)" % args.bug)
    return serve(port.table(), name=name, profile=conventions["name"], dtype=args.dtype,
                 array=port.array)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
