#!/usr/bin/env python3
"""A NumPy port of VD / Sparse VD that speaks the vdspec port protocol.

Written from the specification pages (spec/*.md), not from the TypeScript
reference: it is the example of an independent implementation that
`vdspec check --port` can hold to the golden files.

    python3 vdspec_port.py [--profile NAME] [--bug NAME]

Protocol (spec/check.md#protocol): the port kit, examples/ports/kit/vdspec_kit.py,
speaks it; this file is the table of ops. Nothing else may go to stdout;
diagnostics go to stderr.

`--bug NAME` plants one departure from the profile (for testing the checker's
fingerprint): a known bug (std-from-sigma4, bias-in-variance) or a convention
another profile follows on purpose (mask-ge-threshold: >= at the threshold;
kl-constant-dropped: the KL without C = -k1); or a kernel defect no
fingerprint names (tail-from-4th-unit: the forward's output units from the
4th on leave the last input unit out of their sum, as a loop tiled by 3 with
a wrong remainder bound would).
"""

import argparse
import functools
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kit"))
from vdspec_kit import Inputs, PortError, decode_number, serve  # noqa: E402

# spec/constants.md
SVD_KL_K1 = 0.63576
SVD_KL_K2 = 1.8732
SVD_KL_K3 = 1.48695
VD_KL_C1 = 1.16145124
VD_KL_C2 = -1.50204118
VD_KL_C3 = 0.58629921
EULER_GAMMA = 0.5772156649015329
EXACT_KL_LIMIT = (EULER_GAMMA + math.log(2)) / 2
KL_WARMUP_START_EPOCH = 5
KL_WARMUP_END_EPOCH = 20


def _layer(form, theta_eps, clip, variance="alpha_theta2", train_mask="mean",
           grad_at_bound=1.0, kl_log_alpha=None):
    """One layer kind's conventions. kl_log_alpha: (form, theta_eps, clip, grad_at_bound) of
    the log_alpha the KL reads, when it is not the forward's."""
    return {"form": form, "theta_eps": theta_eps, "clip": clip,
            "variance": variance, "train_mask": train_mask,
            "grad_at_bound": grad_at_bound, "kl_log_alpha": kl_log_alpha}


# spec/profiles.md, "Side by side": the conventions of each profile.
PROFILES = {
    "molchanov2017": {
        "algorithm": "svd", "noise": "log_sigma2",
        "dense": _layer("log_theta2", 0.0, (-8.0, 8.0)),
        "conv2d": _layer("log_theta2", 0.0, (-8.0, 8.0)),
        "sqrt_eps": 1e-8, "prune": {"threshold": 3.0, "comparison": ">", "from": "clipped"},
        "train_clip_default": False, "kl": ("svd_sigmoid", "minus_k1"),
    },
    "kingma2015": {
        "algorithm": "vd", "noise": "log_alpha",
        "dense": _layer("learned", 0.0, (None, 0.0)),
        "conv2d": _layer("learned", 0.0, (None, 0.0)),
        "sqrt_eps": 1e-8, "prune": None,
        "train_clip_default": False, "kl": ("vd_cubic", "dropped"),
    },
    "bayesgroup-theano": {
        "algorithm": "svd", "noise": "log_sigma2",
        # Theano's switch clip: no gradient exactly on a bound.
        "dense": _layer("log_theta2", 0.0, (-8.0, 8.0), grad_at_bound=0.0),
        # The conv forward has eps 1e-8 in the log, its KL none.
        "conv2d": _layer("log_theta2", 1e-8, (-8.0, 8.0), train_mask="mean_and_variance",
                         grad_at_bound=0.0,
                         kl_log_alpha=("log_theta2", 0.0, (-8.0, 8.0), 0.0)),
        "sqrt_eps": 1e-8, "prune": {"threshold": 3.0, "comparison": ">=", "from": "clipped"},
        "train_clip_default": True, "kl": ("svd_sigmoid", "minus_k1"),
        "same_padding": "lasagne",
    },
    "deepbayes-pytorch": {
        "algorithm": "svd", "noise": "log_sigma",
        "dense": _layer("log_abs_theta", 1e-16, (-10.0, 10.0), variance="sigma2"),
        "conv2d": _layer("log_abs_theta", 1e-16, (-10.0, 10.0), variance="sigma2"),
        "sqrt_eps": 1e-8, "prune": {"threshold": 3.0, "comparison": ">=", "from": "clipped"},
        "train_clip_default": False, "kl": ("svd_sigmoid", "omitted"),
    },
    "state-of-sparsity": {
        "algorithm": "svd", "noise": "log_sigma2",
        # The layer classes: clip 8, log_sigma2 rebuilt from the clipped log_alpha.
        "dense": _layer("log_theta2", 1e-8, (-8.0, 8.0), variance="sigma2_rebuilt"),
        "conv2d": _layer("log_theta2", 1e-8, (-8.0, 8.0), variance="sigma2_rebuilt"),
        "sqrt_eps": 1e-8, "prune": {"threshold": 3.0, "comparison": ">=", "from": "unclipped"},
        "train_clip_default": False, "kl": ("svd_sigmoid", "minus_k1"),
    },
    "state-of-sparsity-nn": {
        "algorithm": "svd", "noise": "log_sigma2",
        "dense": _layer("log_theta2", 1e-8, None, variance="sigma2"),
        "conv2d": _layer("log_theta2", 1e-8, None, variance="sigma2"),
        "sqrt_eps": 1e-8, "prune": {"threshold": 3.0, "comparison": ">=", "from": "unclipped"},
        "train_clip_default": False, "kl": ("svd_sigmoid", "minus_k1"),
    },
    "pytorch-ard": {
        "algorithm": "svd", "noise": "log_sigma2",
        "dense": _layer("log_abs_theta", 1e-15, (-10.0, 10.0)),
        "conv2d": _layer("log_abs_theta", 1e-15, (-8.0, 8.0)),
        "sqrt_eps": 1e-15, "prune": {"threshold": 3.0, "comparison": ">=", "from": "clipped"},
        "train_clip_default": False, "kl": ("svd_sigmoid", "minus_k1"),
    },
}

BUGS = ("std-from-sigma4", "mask-ge-threshold", "kl-constant-dropped", "bias-in-variance",
        "tail-from-4th-unit", "kl-sign-flipped", "eval-without-mask", "no-sqrt-eps",
        "log-alpha-clip-10", "float32-kl", "sqrt-eps-in-variance")


# ---------------------------------------------------------------------------
# Elementwise functions. NumPy's vectorised exp/log may differ from the
# correctly rounded value by a few ulps, and the golden tolerance is a couple
# of ulps; Python's math module (the C library) is within one.

def _scalar_log(v):
    if v == 0.0:
        return -math.inf
    if v == math.inf:
        return math.inf
    return math.log(v)


def _scalar_exp(v):
    if v == -math.inf:
        return 0.0
    if v == math.inf:
        return math.inf
    try:
        return math.exp(v)
    except OverflowError:
        return math.inf


def _scalar_log1p(v):
    return math.inf if v == math.inf else math.log1p(v)


LOG = np.vectorize(_scalar_log, otypes=[float])
EXP = np.vectorize(_scalar_exp, otypes=[float])
LOG1P = np.vectorize(_scalar_log1p, otypes=[float])


def hard_product(a, b):
    """a * b, except that an exact 0 wins over an infinite factor (spec/log-alpha.md, hard zero)."""
    a, b = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float))
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where((a == 0) | (b == 0), 0.0, a * b)


# ---------------------------------------------------------------------------
# Inputs: the kit (examples/ports/kit) decodes tensors to float64 arrays.

def array(shape, values):
    return np.array(values, dtype=np.float64).reshape(shape)


def tensor(inputs, name):
    value = inputs[name]
    if not isinstance(value, np.ndarray):
        raise PortError("%s: expected a tensor {shape, data}" % name)
    return value


def finite(a, name):
    if not np.all(np.isfinite(a)):
        raise PortError("%s: NaN or infinite values are not allowed" % name)
    return a


# ---------------------------------------------------------------------------
# spec/log-alpha.md: per-weight values and their partials

def broadcastable(shape, target):
    if len(shape) > len(target):
        return False
    lead = len(target) - len(shape)
    return all(d == 1 or d == target[lead + i] for i, d in enumerate(shape))


def sum_to_shape(values, shape):
    """The adjoint of broadcasting `shape` to values.shape."""
    lead = values.ndim - len(shape)
    out = values.sum(axis=tuple(range(lead))) if lead > 0 else values
    axes = tuple(i for i, d in enumerate(shape) if d == 1 and out.shape[i] != 1)
    if axes:
        out = out.sum(axis=axes, keepdims=True)
    return out.reshape(shape)


class Weights:
    """log_alpha, its clip, the keep mask, the per-weight variance s2, and their partials."""

    def __init__(self, theta, noise, prof, layer, bug, for_kl=False):
        conv = prof[layer]
        form, theta_eps, clip = conv["form"], conv["theta_eps"], conv["clip"]
        grad_at_bound = conv["grad_at_bound"]
        if for_kl and conv["kl_log_alpha"] is not None:
            form, theta_eps, clip, grad_at_bound = conv["kl_log_alpha"]
        if form == "learned":
            if not broadcastable(noise.shape, theta.shape):
                raise PortError("%s: shape %s does not broadcast to theta's %s"
                                % (prof["noise"], list(noise.shape), list(theta.shape)))
        elif noise.shape != theta.shape:
            raise PortError("%s: expected theta's shape %s" % (prof["noise"], list(theta.shape)))
        noise_full = np.broadcast_to(noise, theta.shape).astype(float)
        # d log_sigma2 / d noise
        noise_scale = 2.0 if prof["noise"] == "log_sigma" else 1.0
        log_sigma2 = noise_scale * noise_full

        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if form == "learned":
                raw = noise_full.copy()
                raw_dtheta = np.zeros_like(theta)
                raw_dnoise = np.ones_like(theta)
            elif form == "log_theta2":
                # Evaluated as written: theta * theta, + eps, log, subtraction.
                raw = log_sigma2 - LOG(theta * theta + theta_eps)
                raw_dtheta = np.where(theta == 0, 0.0, -2.0 * theta / (theta * theta + theta_eps))
                raw_dnoise = np.full(theta.shape, noise_scale)
            else:
                raw = log_sigma2 - 2.0 * LOG(np.abs(theta) + theta_eps)
                raw_dtheta = np.where(theta == 0, 0.0,
                                      -2.0 * np.sign(theta) / (np.abs(theta) + theta_eps))
                raw_dnoise = np.full(theta.shape, noise_scale)

        lo = -math.inf if clip is None or clip[0] is None else clip[0]
        hi = math.inf if clip is None or clip[1] is None else clip[1]
        if bug == "log-alpha-clip-10":
            lo, hi = -10.0, 10.0
        log_alpha = np.minimum(np.maximum(raw, lo), hi)
        # Clip gradient: 1 strictly inside, the profile's value on a bound, 0 outside and at +-inf.
        inside = np.isfinite(raw) & (raw >= lo) & (raw <= hi)
        if grad_at_bound == 0.0:
            inside = inside & (raw != lo) & (raw != hi)
        self.dla_dtheta = np.where(inside, raw_dtheta, 0.0)
        self.dla_dnoise = np.where(inside, raw_dnoise, 0.0)

        prune = prof["prune"]
        if prune is None:
            keep = np.ones(theta.shape)
        else:
            compared = log_alpha if prune["from"] == "clipped" else raw
            comparison = ">=" if bug == "mask-ge-threshold" else prune["comparison"]
            with np.errstate(invalid="ignore"):
                pruned = compared > prune["threshold"] if comparison == ">" else \
                    compared >= prune["threshold"]
            keep = np.where(pruned, 0.0, 1.0)

        with np.errstate(over="ignore", invalid="ignore"):
            if conv["variance"] == "sigma2":
                s2 = EXP(log_sigma2)
                ds2_dtheta = np.zeros_like(theta)
                ds2_dnoise = noise_scale * s2
            elif conv["variance"] == "sigma2_rebuilt":
                # exp(clipped log_alpha + log(theta^2 + eps)): sigma2 where the clip passes,
                # exp(bound) * (theta^2 + eps) beyond it.
                passes = self.dla_dnoise != 0
                bound = EXP(log_alpha)
                s2 = np.where(passes, EXP(log_sigma2), bound * (theta * theta + theta_eps))
                ds2_dtheta = np.where(passes | (theta == 0), 0.0, 2.0 * bound * theta)
                ds2_dnoise = np.where(passes, noise_scale * s2, 0.0)
            else:
                alpha = EXP(log_alpha)
                s2 = alpha * (theta * theta)
                direct = np.where(theta == 0, 0.0, 2.0 * alpha * theta)
                through_theta = (self.dla_dtheta != 0) & (form != "learned")
                if form == "log_theta2":
                    share_inside = theta_eps / (theta * theta + theta_eps)
                elif form == "log_abs_theta":
                    share_inside = theta_eps / (np.abs(theta) + theta_eps)
                else:
                    share_inside = np.ones_like(theta)
                # d(alpha theta^2)/dtheta = 2 alpha theta * share: inside the clip the log's
                # derivative cancels all of 2 alpha theta but the eps's share.
                share = np.where(through_theta, share_inside, 1.0)
                ds2_dtheta = hard_product(direct, share)
                ds2_dnoise = hard_product(s2, self.dla_dnoise)

        self.theta = theta
        self.noise_shape = noise.shape
        self.raw = raw
        self.log_alpha = log_alpha
        self.keep = keep
        self.s2 = s2
        self.ds2_dtheta = ds2_dtheta
        self.ds2_dnoise = ds2_dnoise


def layer_kind(inputs):
    layer = inputs.get("layer", "dense")
    if layer not in ("dense", "conv2d"):
        raise PortError('layer: expected "dense" or "conv2d"')
    return layer


# ---------------------------------------------------------------------------
# spec/kl.md

def kl_approx(la, prof, bug):
    """Per-weight KL (positive, nats) and dKL/dla at an already clipped log_alpha."""
    approximation, constant = prof["kl"]
    la = np.asarray(la, float)
    if np.any(np.isnan(la)):
        raise PortError("log_alpha: NaN")
    kl = np.empty_like(la)
    dkl = np.empty_like(la)
    if approximation == "svd_sigmoid":
        c = -SVD_KL_K1 if constant == "minus_k1" and bug != "kl-constant-dropped" else 0.0
        for i, v in np.ndenumerate(la):
            if v == math.inf:
                kl[i], dkl[i] = -(SVD_KL_K1 + c), 0.0
            elif v == -math.inf:
                kl[i], dkl[i] = math.inf, -0.5
            else:
                z = SVD_KL_K2 + SVD_KL_K3 * v
                sig_minus_z = 1.0 / (1.0 + _scalar_exp(z))
                sig_z = 1.0 / (1.0 + _scalar_exp(-z))
                # softplus(-v) = max(-v, 0) + log1p(exp(-|v|)): finite for every finite v
                softplus = max(-v, 0.0) + math.log1p(_scalar_exp(-abs(v)))
                kl[i] = SVD_KL_K1 * sig_minus_z + 0.5 * softplus - (SVD_KL_K1 + c)
                dkl[i] = -SVD_KL_K1 * SVD_KL_K3 * sig_z * sig_minus_z \
                    - 0.5 / (1.0 + _scalar_exp(v))
    else:
        for i, v in np.ndenumerate(la):
            if v == math.inf:
                raise PortError("log_alpha: +inf has no cubic KL")
            if v == -math.inf:
                kl[i], dkl[i] = math.inf, -0.5
                continue
            a = _scalar_exp(v)
            kl[i] = -(0.5 * v + a * (VD_KL_C1 + a * (VD_KL_C2 + a * VD_KL_C3)))
            dkl[i] = -(0.5 + a * (VD_KL_C1 + a * (2 * VD_KL_C2 + a * 3 * VD_KL_C3)))
    return kl, dkl


class Neumaier:
    def __init__(self):
        self.s = 0.0
        self.c = 0.0

    def add(self, x):
        t = self.s + x
        if abs(self.s) >= abs(x):
            self.c += (self.s - t) + x
        else:
            self.c += (x - t) + self.s
        self.s = t

    def value(self):
        return self.s + self.c


def kl_exact_one(la):
    """The exact KL and its derivative (spec/kl.md#klexact)."""
    if la == math.inf:
        return 0.0, 0.0
    if la == -math.inf:
        return math.inf, -0.5
    if la < -8:
        # Small-alpha expansion: KL ~ LIMIT - la/2 - 0.5 sum (2n-1)!! alpha^n / n.
        alpha = math.exp(la)
        s_kl = Neumaier()
        s_d = Neumaier()
        term = 1.0  # (2n-1)!! alpha^n
        for n in range(1, 200):
            term *= (2 * n - 1) * alpha
            if term < 1e-19 * 1e-3:
                break
            s_kl.add(term / n)
            s_d.add(term)
        return EXACT_KL_LIMIT - la / 2 - 0.5 * s_kl.value(), -0.5 - 0.5 * s_d.value()
    mu = 0.5 * math.exp(-la)
    mode = int(math.floor(mu))
    # Poisson weights relative to the mode, outward in both directions.
    weights = {mode: 1.0}
    k = mode
    w = 1.0
    while True:
        w *= mu / (k + 1)
        k += 1
        weights[k] = w
        if w < 1e-20 and k >= mode + 2:
            break
    k = mode
    w = 1.0
    while k > 0:
        w *= k / mu
        k -= 1
        weights[k] = w
        if w < 1e-20:
            break
    lo = min(weights)
    hi = max(weights)
    harmonic = Neumaier()  # H_k = sum_{j=1..k} 2/(2j - 1)
    for j in range(1, lo + 1):
        harmonic.add(2.0 / (2 * j - 1))
    total = Neumaier()
    s_h = Neumaier()
    s_inv = Neumaier()
    for k in range(lo, hi + 1):
        if k > lo:
            harmonic.add(2.0 / (2 * k - 1))
        w = weights[k]
        total.add(w)
        s_h.add(w * harmonic.value())
        s_inv.add(w / (2 * k + 1))
    z = total.value()
    return 0.5 * s_h.value() / z, -mu * s_inv.value() / z


# ---------------------------------------------------------------------------
# spec/conv2d.md: TensorFlow's padding rule, cross-correlation, NHWC / HWIO

def stride_pair(v):
    if v is None:
        return 1, 1
    if isinstance(v, list):
        if len(v) != 2:
            raise PortError("stride: expected [sh, sw]")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def axis_geometry(size, k, s, padding, rule="tensorflow"):
    if padding == "same" and rule == "lasagne":
        # Lasagne: k // 2 on each side, odd kernels only.
        if k % 2 == 0:
            raise PortError("theta: Lasagne's 'same' padding needs an odd kernel")
        half = k // 2
        return (size + 2 * half - k) // s + 1, half, half
    if padding == "same":
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        return out, total // 2, total - total // 2
    if size < k:
        raise PortError("x: 'valid' needs the input at least as large as the kernel")
    return (size - k) // s + 1, 0, 0


class Geometry:
    def __init__(self, x_shape, f_shape, stride, padding, rule="tensorflow"):
        if padding not in ("valid", "same"):
            raise PortError("padding: expected 'valid' or 'same'")
        self.sh, self.sw = stride
        self.kh, self.kw = f_shape[0], f_shape[1]
        self.oh, self.top, self.bottom = axis_geometry(x_shape[1], self.kh, self.sh, padding, rule)
        self.ow, self.left, self.right = axis_geometry(x_shape[2], self.kw, self.sw, padding, rule)
        self.x_shape = x_shape

    def padded(self, x):
        n, h, w, c = x.shape
        xp = np.zeros((n, h + self.top + self.bottom, w + self.left + self.right, c))
        xp[:, self.top:self.top + h, self.left:self.left + w, :] = x
        return xp

    def window(self, p, q):
        """The slice of the padded input that tap (p, q) reads for every output pixel."""
        return (slice(None),
                slice(p, p + (self.oh - 1) * self.sh + 1, self.sh),
                slice(q, q + (self.ow - 1) * self.sw + 1, self.sw),
                slice(None))


def conv(x, f, g):
    xp = g.padded(x)
    out = np.zeros((x.shape[0], g.oh, g.ow, f.shape[3]))
    if g.oh == 0 or g.ow == 0:
        return out
    for p in range(g.kh):
        for q in range(g.kw):
            out += xp[g.window(p, q)] @ f[p, q]
    return out


def conv_t_x(cot, f, g):
    """The transposed convolution: the gradient with respect to the input."""
    n, h, w, c = g.x_shape
    dxp = np.zeros((n, h + g.top + g.bottom, w + g.left + g.right, c))
    if g.oh > 0 and g.ow > 0:
        for p in range(g.kh):
            for q in range(g.kw):
                dxp[g.window(p, q)] += cot @ f[p, q].T
    return dxp[:, g.top:g.top + h, g.left:g.left + w, :]


def conv_t_f(x, cot, g, f_shape):
    """The correlation of the input with the cotangent: the gradient with respect to the filter."""
    xp = g.padded(x)
    df = np.zeros(f_shape)
    if g.oh > 0 and g.ow > 0:
        for p in range(g.kh):
            for q in range(g.kw):
                df[p, q] = np.tensordot(xp[g.window(p, q)], cot, axes=([0, 1, 2], [0, 1, 2]))
    return df


# ---------------------------------------------------------------------------
# spec/dense.md and spec/conv2d.md: the layers


class Layer:
    """The linear algebra of one layer kind: dense (matmul) or conv2d (convolution)."""

    def __init__(self, kind, inputs, prof, bug=None):
        self.kind = kind
        self.bug = bug
        self.x = finite(tensor(inputs, "x"), "x")
        self.theta = finite(tensor(inputs, "theta"), "theta")
        self.bias = finite(tensor(inputs, "bias"), "bias")
        if kind == "dense":
            if self.x.ndim != 2 or self.theta.ndim != 2 or self.x.shape[1] != self.theta.shape[0]:
                raise PortError("x, theta: expected [batch, in] and [in, out]")
            self.geometry = None
        else:
            if self.x.ndim != 4 or self.theta.ndim != 4 or self.x.shape[3] != self.theta.shape[2]:
                raise PortError("x, theta: expected NHWC and HWIO with the same cin")
            self.geometry = Geometry(self.x.shape, self.theta.shape,
                                     stride_pair(inputs.get("stride")),
                                     inputs.get("padding", "valid"),
                                     prof.get("same_padding", "tensorflow"))
        if self.bias.shape != (self.theta.shape[-1],):
            raise PortError("bias: expected shape [out]")

    def forward(self, x, w):
        y = x @ w if self.kind == "dense" else conv(x, w, self.geometry)
        if self.bug == "tail-from-4th-unit" and w.shape[-1] > 3 and w.shape[-2] > 0:
            # The planted kernel defect: units 4, 5, ... sum over every input unit but the last.
            w_tail = w.copy()
            w_tail[..., -1, :] = 0.0
            y_tail = x @ w_tail if self.kind == "dense" else conv(x, w_tail, self.geometry)
            y[..., 3:] = y_tail[..., 3:]
        return y

    def input_grad(self, cot, w):
        return cot @ w.T if self.kind == "dense" else conv_t_x(cot, w, self.geometry)

    def weight_grad(self, x, cot):
        if self.kind == "dense":
            return x.T @ cot
        return conv_t_f(x, cot, self.geometry, self.theta.shape)

    def bias_grad(self, cot):
        return cot.reshape(-1, cot.shape[-1]).sum(axis=0)


def layer_setup(op, inputs, prof, bug):
    kind = op.split(".")[1]
    layer = Layer(kind, inputs, prof, bug)
    noise = finite(tensor(inputs, prof["noise"]), prof["noise"])
    weights = Weights(layer.theta, noise, prof, kind, bug)
    return layer, weights


def train_masks(prof, kind, weights, inputs):
    train_clip = inputs.get("train_clip", prof["train_clip_default"])
    if not isinstance(train_clip, bool):
        raise PortError("train_clip: expected true or false")
    if not train_clip:
        ones = np.ones(weights.theta.shape)
        return ones, ones
    m_var = weights.keep if prof[kind]["train_mask"] == "mean_and_variance" else \
        np.ones(weights.theta.shape)
    return weights.keep, m_var


def train_forward(op, inputs, prof, bug):
    layer, weights = layer_setup(op, inputs, prof, bug)
    kind = layer.kind
    m_mean, m_var = train_masks(prof, kind, weights, inputs)
    theta_m = weights.theta * m_mean
    s2_m = np.where(m_var == 0, 0.0, weights.s2)
    if bug == "std-from-sigma4":
        s2_m = s2_m * s2_m
    mean = layer.forward(layer.x, theta_m) + layer.bias
    variance = layer.forward(layer.x * layer.x, s2_m)
    if bug == "bias-in-variance":
        variance = variance + layer.bias
    eps = finite(tensor(inputs, "eps"), "eps")
    if eps.shape != mean.shape:
        raise PortError("eps: expected the output's shape %s" % list(mean.shape))
    with np.errstate(invalid="ignore"):
        s = np.sqrt(variance + (0.0 if bug == "no-sqrt-eps" else prof["sqrt_eps"]))
    return layer, weights, (m_mean, m_var, theta_m, s2_m), eps, mean, variance, s


def op_train(op, inputs, prof, bug):
    _, _, _, eps, mean, variance, s = train_forward(op, inputs, prof, bug)
    if bug == "sqrt-eps-in-variance":
        variance = variance + prof["sqrt_eps"]
    return {"mean": mean, "variance": variance, "output": mean + s * eps}


def op_eval(op, inputs, prof, bug):
    layer, weights = layer_setup(op, inputs, prof, bug)
    keep = 1.0 if bug == "eval-without-mask" else weights.keep
    return {"output": layer.forward(layer.x, weights.theta * keep) + layer.bias}


def op_eval_unmasked(op, inputs, prof, bug):
    """spec/dense.md#svddenseeval_unmasked: every weight at its mean, no mask."""
    layer, weights = layer_setup(op, inputs, prof, bug)
    return {"output": layer.forward(layer.x, weights.theta) + layer.bias}


def softmax_rows(z):
    shifted = z - np.max(z, axis=-1, keepdims=True)
    e = np.array([_scalar_exp(float(v)) for v in shifted.reshape(-1)]).reshape(shifted.shape)
    return e / np.sum(e, axis=-1, keepdims=True)


def op_predict_mc(op, inputs, prof, bug):
    """spec/dense.md#svddensepredict_mc: the training forward per draw of eps [S, batch, out], averaged."""
    draws = finite(tensor(inputs, "eps"), "eps")
    if draws.ndim != 3 or draws.shape[0] < 1:
        raise PortError("eps: expected [S, batch, out] with S >= 1")
    one = Inputs(inputs, eps=draws[0])
    _, _, _, _, mean, _, s = train_forward(op, one, prof, bug)
    if draws.shape[1:] != mean.shape:
        raise PortError("eps: expected [S] + the output's shape %s" % list(mean.shape))
    outputs = mean + s * draws
    return {"mean_output": outputs.mean(axis=0), "mean_softmax": softmax_rows(outputs).mean(axis=0)}


def gradients(prof, layer, weights, dx, dtheta, dnoise, dbias):
    return {"grad_x": dx, "grad_theta": dtheta,
            "grad_" + prof["noise"]: dnoise, "grad_bias": dbias}


def op_train_vjp(op, inputs, prof, bug):
    layer, weights, masks, eps, mean, _, s = train_forward(op, inputs, prof, bug)
    m_mean, m_var, theta_m, s2_m = masks
    cot = finite(tensor(inputs, "cotangent"), "cotangent")
    if cot.shape != mean.shape:
        raise PortError("cotangent: expected the output's shape")
    g_mean = cot
    numerator = cot * eps
    with np.errstate(divide="ignore", invalid="ignore"):
        g_var = np.where(numerator == 0, 0.0, numerator / (2.0 * s))
    x2 = layer.x * layer.x
    dx = layer.input_grad(g_mean, theta_m) + 2.0 * layer.x * layer.input_grad(g_var, s2_m)
    ds2 = m_var * layer.weight_grad(x2, g_var)
    dtheta = m_mean * layer.weight_grad(layer.x, g_mean) + hard_product(ds2, weights.ds2_dtheta)
    dnoise = sum_to_shape(hard_product(ds2, weights.ds2_dnoise), weights.noise_shape)
    return gradients(prof, layer, weights, dx, dtheta, dnoise, layer.bias_grad(g_mean))


def op_eval_vjp(op, inputs, prof, bug):
    layer, weights = layer_setup(op, inputs, prof, bug)
    cot = finite(tensor(inputs, "cotangent"), "cotangent")
    theta_m = weights.theta * weights.keep
    dx = layer.input_grad(cot, theta_m)
    dtheta = weights.keep * layer.weight_grad(layer.x, cot)
    return gradients(prof, layer, weights, dx, dtheta, np.zeros(weights.noise_shape),
                     layer.bias_grad(cot))


def weights_of(inputs, prof, bug, for_kl=False):
    theta = finite(tensor(inputs, "theta"), "theta")
    noise = finite(tensor(inputs, prof["noise"]), prof["noise"])
    return Weights(theta, noise, prof, layer_kind(inputs), bug, for_kl)


def op_log_alpha(op, inputs, prof, bug):
    return {"log_alpha": weights_of(inputs, prof, bug).log_alpha}


def op_mask(op, inputs, prof, bug):
    return {"mask": weights_of(inputs, prof, bug).keep}


def op_kl_approx(op, inputs, prof, bug):
    la = tensor(inputs, "log_alpha")
    kl, dkl = kl_approx(la, prof, bug)
    if bug == "kl-sign-flipped":
        kl = -kl
    if bug == "float32-kl":
        kl, dkl = kl.astype(np.float32).astype(np.float64), dkl.astype(np.float32).astype(np.float64)
    return {"kl": kl, "dkl_dlog_alpha": dkl}


def op_kl_exact(op, inputs, prof, bug):
    la = tensor(inputs, "log_alpha")
    if np.any(np.isnan(la)):
        raise PortError("log_alpha: NaN")
    kl = np.empty_like(la)
    dkl = np.empty_like(la)
    for i, v in np.ndenumerate(la):
        kl[i], dkl[i] = kl_exact_one(float(v))
    return {"kl": kl, "dkl_dlog_alpha": dkl}


def op_kl_layer(op, inputs, prof, bug):
    """spec/objective.md#kllayer: the KL summed over theta's entries, and its gradient."""
    w = weights_of(inputs, prof, bug, for_kl=True)
    kl, dkl = kl_approx(w.log_alpha, prof, bug)
    total = math.fsum(kl.reshape(-1).tolist())
    dtheta = hard_product(dkl, w.dla_dtheta)
    dnoise = sum_to_shape(hard_product(dkl, w.dla_dnoise), w.noise_shape)
    return {"kl": np.array(total), "grad_theta": dtheta, "grad_" + prof["noise"]: dnoise}


# ---------------------------------------------------------------------------
# spec/dense-a.md: VD variant A, Gaussian dropout on the input units

def dense_a_log_alpha(inputs, prof, in_size):
    """log_alpha [] or [in], per input unit: (its shape, clipped values, clip gradient)."""
    name = prof["noise"]
    la = finite(tensor(inputs, name), name)
    if la.shape not in ((), (in_size,)):
        raise PortError("%s: variant A takes [] or [in], got %s" % (name, list(la.shape)))
    lo, hi = prof["dense"]["clip"]
    raw = np.broadcast_to(la, (in_size,)).astype(float)
    passes = np.ones(in_size)
    clipped = raw.copy()
    if hi is not None:
        passes[raw > hi] = 0.0
        clipped = np.minimum(clipped, hi)
    if lo is not None:
        passes[raw < lo] = 0.0
        clipped = np.maximum(clipped, lo)
    return la.shape, clipped, passes


def dense_a_setup(inputs, prof):
    x = finite(tensor(inputs, "x"), "x")
    theta = finite(tensor(inputs, "theta"), "theta")
    bias = finite(tensor(inputs, "bias"), "bias")
    eps = finite(tensor(inputs, "eps"), "eps")
    if x.ndim != 2 or theta.ndim != 2 or theta.shape[0] != x.shape[1]:
        raise PortError("x, theta: expected [batch, in] and [in, out]")
    if bias.shape != (theta.shape[1],):
        raise PortError("bias: expected [out]")
    if eps.shape != x.shape:
        raise PortError("eps: expected [batch, in] (one draw per example and input unit)")
    shape, la, passes = dense_a_log_alpha(inputs, prof, x.shape[1])
    alpha = np.array([_scalar_exp(float(v)) for v in la])
    s = np.sqrt(alpha)
    xi = 1.0 + s * eps
    return x, theta, bias, eps, shape, alpha, s, passes, xi


def op_dense_a_train(op, inputs, prof, bug):
    x, theta, bias, _, _, alpha, _, _, xi = dense_a_setup(inputs, prof)
    return {"mean": x @ theta + bias,
            "variance": (x * x * alpha) @ (theta * theta),
            "output": (x * xi) @ theta + bias}


def op_dense_a_train_vjp(op, inputs, prof, bug):
    x, theta, _, eps, shape, _, s, passes, xi = dense_a_setup(inputs, prof)
    cot = finite(tensor(inputs, "cotangent"), "cotangent")
    if cot.shape != (x.shape[0], theta.shape[1]):
        raise PortError("cotangent: expected [batch, out]")
    dz = cot @ theta.T
    terms = dz * x * eps * s / 2.0 * passes
    dla = np.array(terms.sum()) if shape == () else terms.sum(axis=0)
    return {"grad_x": dz * xi, "grad_theta": (x * xi).T @ cot,
            "grad_" + prof["noise"]: dla, "grad_bias": cot.sum(axis=0)}


def op_dense_a_kl(op, inputs, prof, bug):
    theta = finite(tensor(inputs, "theta"), "theta")
    if theta.ndim != 2:
        raise PortError("theta: expected [in, out]")
    shape, la, passes = dense_a_log_alpha(inputs, prof, theta.shape[0])
    kl, dkl = kl_approx(la, prof, bug)
    slope = dkl * passes
    dla = np.array(math.fsum(slope.tolist())) if shape == () else slope
    return {"kl": np.array(math.fsum(kl.tolist())), "grad_" + prof["noise"]: dla}


def cross_entropy(inputs):
    logits = finite(tensor(inputs, "logits"), "logits")
    labels = inputs.get("labels")
    if logits.ndim != 2 or logits.shape[0] < 1 or logits.shape[1] < 1:
        raise PortError("logits: expected [M, classes] with M, classes >= 1")
    if not isinstance(labels, list) or len(labels) != logits.shape[0] or not all(
            isinstance(y, int) and not isinstance(y, bool) and 0 <= y < logits.shape[1]
            for y in labels):
        raise PortError("labels: expected M class indices in range")
    per_example = []
    for row, y in zip(logits, labels):
        m = float(np.max(row))
        lse = m + math.log(math.fsum(_scalar_exp(float(z) - m) for z in row))
        per_example.append(lse - float(row[y]))
    return np.array(per_example), math.fsum(per_example) / len(per_example)


def op_cross_entropy(op, inputs, prof, bug):
    per_example, mean = cross_entropy(inputs)
    return {"per_example": per_example, "mean": np.array(mean)}


def op_sgvb(op, inputs, prof, bug):
    _, mean_ce = cross_entropy(inputs)
    n = decode_number(inputs.get("train_size"), "train_size")
    beta = decode_number(inputs.get("kl_weight"), "kl_weight")
    kl = decode_number(inputs.get("kl"), "kl")
    data_term = n * mean_ce
    kl_term = beta * kl
    return {"loss": np.array(data_term + kl_term), "data_term": np.array(data_term),
            "kl_term": np.array(kl_term)}


def op_kl_weight(op, inputs, prof, bug):
    epoch = decode_number(inputs.get("epoch"), "epoch")
    if not math.isfinite(epoch) or epoch < 0:
        raise PortError("epoch: expected a finite number >= 0")
    start, end = KL_WARMUP_START_EPOCH, KL_WARMUP_END_EPOCH
    if epoch < start:
        beta = 0.0
    elif epoch < end:
        beta = (epoch - start) / (end - start)
    else:
        beta = 1.0
    return {"kl_weight": np.array(beta)}


def ops_for(prof):
    alg = prof["algorithm"]
    table = {
        "kl.exact": op_kl_exact,
        "kl.approx": op_kl_approx,
        alg + ".log_alpha": op_log_alpha,
        "kl.layer": op_kl_layer,
        "objective.cross_entropy": op_cross_entropy,
        "objective.sgvb": op_sgvb,
        "schedule.kl_weight": op_kl_weight,
    }
    table[alg + ".dense.predict_mc"] = op_predict_mc
    if alg == "svd":
        table["svd.mask"] = op_mask
        table["svd.dense.eval_unmasked"] = op_eval_unmasked
        table["svd.conv2d.eval_unmasked"] = op_eval_unmasked
    else:
        table["vd.dense_a.train"] = op_dense_a_train
        table["vd.dense_a.train_vjp"] = op_dense_a_train_vjp
        table["vd.dense_a.kl"] = op_dense_a_kl
    for kind in ("dense", "conv2d"):
        base = "%s.%s." % (alg, kind)
        table[base + "train"] = op_train
        table[base + "eval"] = op_eval
        table[base + "train_vjp"] = op_train_vjp
        table[base + "eval_vjp"] = op_eval_vjp
    return table


# ---------------------------------------------------------------------------
# The protocol: the kit (examples/ports/kit/vdspec_kit.py) serves the table.

def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="molchanov2017", choices=sorted(PROFILES))
    parser.add_argument("--bug", default=None, choices=BUGS)
    args = parser.parse_args(argv)
    prof = PROFILES[args.profile]
    table = {op: functools.partial(fn, op, prof=prof, bug=args.bug)
             for op, fn in ops_for(prof).items()}
    name = "numpy-example" + ("" if args.bug is None else " (planted: %s)" % args.bug)
    return serve(table, name=name, profile=args.profile, dtype="float64", array=array)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
