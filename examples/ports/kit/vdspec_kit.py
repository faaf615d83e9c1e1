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

Validation (spec/check.md#port-kit): when the `jsonschema` module can be
imported, every message received and sent is checked against
spec/schemas/port-message.schema.json, found at $VDSPEC_PORT_SCHEMA (`vdspec
check` sets it for its port), next to this file, or in the vdspec tree this
file sits in. An answer that does not match (an output that is not an encoded
tensor) is sent as that case's error, naming the place; a bad hello, or a
runner message that does not match, stops the port with exit code 2. Without
jsonschema the kit says so once on stderr and does not validate.
VDSPEC_KIT_VALIDATE=1 makes that an error (exit 2), VDSPEC_KIT_VALIDATE=0
turns validation off.
"""

import collections
import json
import math
import os
import sys
import traceback

PROTOCOL = "vdspec-port/1"

Tensor = collections.namedtuple("Tensor", ["shape", "data"])

_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf, "-0": -0.0}


class PortError(Exception):
    """An input the port rejects: answered as the case's error, not a crash."""


class ProtocolError(Exception):
    """A message that does not match the protocol's schema, or validation that cannot be done."""


SCHEMA_FILE = "port-message.schema.json"

# The schema's definition of each message, by type: as the runner sends it, as a port sends it.
_RECEIVED = {"hello": "hello", "case": "case", "bye": "bye"}
_SENT = {"hello": "portHello", "result": "portResult", "error": "error"}


def _schema_path():
    here = os.path.dirname(os.path.abspath(__file__))
    for path in (os.environ.get("VDSPEC_PORT_SCHEMA"), os.path.join(here, SCHEMA_FILE),
                 os.path.join(here, "..", "..", "..", "spec", "schemas", SCHEMA_FILE)):
        if path and os.path.isfile(path):
            return path
    return None


class Validator:
    """Checks messages against one definition of the port-message schema each."""

    def __init__(self, jsonschema, schema):
        self._jsonschema = jsonschema
        self._schema = schema
        self._validators = {}

    def problem(self, message, definition):
        """None when `message` matches `$defs/<definition>`, else "<JSON pointer>: <what>"."""
        validator = self._validators.get(definition)
        if validator is None:
            # A root that is just the definition, so that its $refs resolve in the same $defs.
            root = {"$schema": self._schema.get("$schema"), "$defs": self._schema["$defs"],
                    "$ref": "#/$defs/" + definition}
            validator = self._jsonschema.Draft202012Validator(root)
            self._validators[definition] = validator
        error = self._jsonschema.exceptions.best_match(validator.iter_errors(message))
        if error is None:
            return None
        path = "".join("/" + str(p).replace("~", "~0").replace("/", "~1")
                       for p in error.absolute_path)
        what = error.message if len(error.message) <= 200 else error.message[:200] + "..."
        return "%s: %s" % (path or "/", what)


def load_validator(mode=None, stderr=None):
    """The Validator, or None when validation is off or cannot be done (said once on stderr).

    mode: "1" validation required (ProtocolError when it cannot be done), "0" off, anything
    else: when possible. None reads $VDSPEC_KIT_VALIDATE.
    """
    mode = os.environ.get("VDSPEC_KIT_VALIDATE", "") if mode is None else str(mode)
    if mode == "0":
        return None
    try:
        import jsonschema
    except ImportError as e:
        missing = "the jsonschema module cannot be imported (%s)" % e
    else:
        path = _schema_path()
        if path is not None:
            with open(path, encoding="utf-8") as f:
                return Validator(jsonschema, json.load(f))
        missing = "%s was not found (set VDSPEC_PORT_SCHEMA to its path)" % SCHEMA_FILE
    if mode == "1":
        raise ProtocolError("VDSPEC_KIT_VALIDATE=1, but %s" % missing)
    print("vdspec_kit: messages are not validated: %s; VDSPEC_KIT_VALIDATE=0 silences this"
          % missing, file=sys.stderr if stderr is None else stderr)
    return None


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


def _answer(ops, message, array):
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


def answer(ops, message, array=Tensor, validator=None):
    """The answer to one case message: a result or an error; checked when a validator is given."""
    reply = _answer(ops, message, array)
    problem = validator and validator.problem(reply, _SENT[reply["type"]])
    if not problem:
        return reply
    # vdspec would only see a malformed output; here the port learns which and where.
    text = "vdspec_kit: protocol error: this port's %s does not match %s at %s" % (
        reply["type"], SCHEMA_FILE, problem)
    print(text, file=sys.stderr)
    return {"type": "error", "id": message.get("id"), "message": text}


def serve(ops, name, profile, dtype="float64", array=Tensor, stdin=None, stdout=None,
          validate=None):
    """Speak the protocol on stdin/stdout until "bye" (or end of input).

    Returns 0, or 2 after a protocol error (said on stderr). `validate`: see load_validator.
    """
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout

    def protocol_error(text):
        print("vdspec_kit: protocol error: %s" % text, file=sys.stderr)
        return 2

    try:
        validator = load_validator(validate)
    except ProtocolError as e:
        return protocol_error(str(e))
    for line in stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        kind = message.get("type")
        problem = validator and kind in _RECEIVED and validator.problem(message, _RECEIVED[kind])
        if problem:
            return protocol_error("the runner's %s message does not match %s at %s"
                                  % (kind, SCHEMA_FILE, problem))
        if kind == "hello":
            if message.get("protocol") != PROTOCOL:
                print("vdspec_kit: the runner speaks %r, this kit %r"
                      % (message.get("protocol"), PROTOCOL), file=sys.stderr)
            hello = {"type": "hello", "protocol": PROTOCOL, "name": name,
                     "ops": sorted(ops), "profile": profile, "dtype": dtype}
            problem = validator and validator.problem(hello, "portHello")
            if problem:
                return protocol_error("this port's hello does not match %s at %s"
                                      % (SCHEMA_FILE, problem))
            _send(stdout, hello)
        elif kind == "case":
            _send(stdout, answer(ops, message, array, validator))
        elif kind == "bye":
            break
    return 0
