"""vdspec port kit: the protocol of spec/check.md, so that a port is a table of ops.

Copy this file next to your port. It depends on nothing but the standard library:

    from vdspec_kit import PortError, serve

    def kl_weight(inputs):                      # inputs: the case's inputs, decoded
        epoch = inputs["epoch"]                 # a float ("Infinity" etc. decoded)
        if epoch < 0:
            raise PortError("epoch: expected >= 0")   # answered as this case's error
        return {"kl_weight": min(max((epoch - 5) / 15, 0.0), 1.0)}

    serve({"schedule.kl_weight": kl_weight}, name="my-port",
          profile="molchanov2017", dtype="float64")

What it does (spec/check.md#protocol): answers the runner's hello with the name,
the ops of the table, the profile and the dtype; decodes each case's inputs
(every `{"shape", "data"}` becomes `array(shape, values)`, the strings "NaN",
"Infinity", "-Infinity", "-0" become floats, in tensors and as plain numbers;
anything else is passed as JSON gives it); calls the op's function; encodes
its outputs; answers a PortError as that case's error, any other exception as
an internal error (traceback on stderr); returns 0 at "bye".

`array(shape, values)` (shape a tuple of ints, values a flat row-major list of
floats) builds your array type: `lambda s, v: numpy.array(v).reshape(s)`, or
`lambda s, v: torch.tensor(v, dtype=torch.float64).reshape(s)`. Without it, a
tensor is a `Tensor(shape, data)` named tuple. An output may be anything with
`.shape` and `.tolist()` (NumPy arrays, torch tensors), a `Tensor`, or a plain
number (shape []).
"""

import collections
import json
import math
import sys
import traceback

PROTOCOL = "vdspec-port/1"

Tensor = collections.namedtuple("Tensor", ["shape", "data"])

_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf, "-0": -0.0}


class PortError(Exception):
    """An input the port rejects: answered as the case's error, not a crash."""


class Inputs(dict):
    """A case's decoded inputs; a missing one raises PortError naming it."""

    def __missing__(self, key):
        raise PortError("missing input %r" % (key,))


def decode_number(value, name="value"):
    """A number of the golden encoding (spec/check.md#numbers) as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise PortError("%s: expected a number" % name)
    if isinstance(value, str):
        if value not in _SPECIAL:
            raise PortError("%s: %r is not a number" % (name, value))
        return _SPECIAL[value]
    return float(value)


def is_tensor(value):
    return isinstance(value, dict) and set(value) == {"shape", "data"}


def decode_tensor(value, name="value", array=Tensor):
    """`{"shape", "data"}` as array(shape, flat floats)."""
    if not is_tensor(value) or not isinstance(value["shape"], list) \
            or not isinstance(value["data"], list):
        raise PortError("%s: expected a tensor {shape, data}" % name)
    shape = tuple(value["shape"])
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise PortError("%s: the shape must hold non-negative integers" % name)
    data = [decode_number(v, name) for v in value["data"]]
    size = 1
    for d in shape:
        size *= d
    if len(data) != size:
        raise PortError("%s: shape %s does not hold %d values" % (name, list(shape), len(data)))
    return array(shape, data)


def decode_inputs(inputs, array=Tensor):
    """Every tensor through `array`, every encoded special number to a float."""
    out = Inputs()
    for name, value in (inputs or {}).items():
        if is_tensor(value):
            out[name] = decode_tensor(value, name, array)
        elif isinstance(value, str) and value in _SPECIAL:
            out[name] = _SPECIAL[value]
        else:
            out[name] = value
    return out


def encode_number(x):
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0.0 and math.copysign(1.0, x) < 0:
        return "-0"
    return x


def _flatten(nested, out):
    if isinstance(nested, list):
        for item in nested:
            _flatten(item, out)
    else:
        out.append(encode_number(nested))


def encode_tensor(value):
    """An output as `{"shape", "data"}`: an array (.shape, .tolist()), a Tensor or a number."""
    if isinstance(value, Tensor):
        return {"shape": list(value.shape), "data": [encode_number(v) for v in value.data]}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"shape": [], "data": [encode_number(value)]}
    if hasattr(value, "shape") and hasattr(value, "tolist"):
        data = []
        _flatten(value.tolist(), data)
        return {"shape": [int(d) for d in value.shape], "data": data}
    raise TypeError("cannot encode an output of type %s" % type(value).__name__)


def _send(stdout, message):
    stdout.write(json.dumps(message, allow_nan=False) + "\n")
    stdout.flush()


def answer(ops, message, array=Tensor):
    """The answer to one case message: a result or an error."""
    case_id, op = message.get("id"), message.get("op")
    try:
        if op not in ops:
            raise PortError("op %r is not implemented by this port" % (op,))
        outputs = ops[op](decode_inputs(message.get("inputs"), array))
        return {"type": "result", "id": case_id,
                "outputs": {k: encode_tensor(v) for k, v in outputs.items()}}
    except PortError as e:
        return {"type": "error", "id": case_id, "message": str(e)}
    except Exception as e:  # a bug in the port: answer, and leave the traceback on stderr
        traceback.print_exc(file=sys.stderr)
        return {"type": "error", "id": case_id,
                "message": "internal error: %s: %s" % (type(e).__name__, e)}


def serve(ops, name, profile, dtype="float64", array=Tensor, stdin=None, stdout=None):
    """Speak the protocol on stdin/stdout until "bye" (or end of input); returns 0."""
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    for line in stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        kind = message.get("type")
        if kind == "hello":
            if message.get("protocol") != PROTOCOL:
                print("vdspec_kit: the runner speaks %r, this kit %r"
                      % (message.get("protocol"), PROTOCOL), file=sys.stderr)
            _send(stdout, {"type": "hello", "protocol": PROTOCOL, "name": name,
                           "ops": sorted(ops), "profile": profile, "dtype": dtype})
        elif kind == "case":
            _send(stdout, answer(ops, message, array))
        elif kind == "bye":
            break
    return 0
