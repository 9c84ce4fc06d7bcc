"""Open Inference Protocol (KServe v2) REST bodies, with Triton's binary tensor data extension.

Pure parsing and encoding: a request body (JSON, optionally followed by raw tensor bytes whose JSON
length is `Inference-Header-Content-Length`) → one input tensor; logits → a response body.
Anything malformed is a 400 that names the problem.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from dataclasses import dataclass

import numpy as np

from edgecls.spec import ModelSpec

from .errors import ApiError

# The names edgecls's exporter gives the graph's input and output.
INPUT_NAME, OUTPUT_NAME = "input", "logits"
HEADER_LENGTH = "inference-header-content-length"


@dataclass
class InferRequest:
    id: str | None
    datatype: str                     # FP32 (normalized NCHW tensor) or BYTES (encoded images)
    tensor: np.ndarray | None         # FP32: float32 (N, 3, S, S)
    images: list[bytes] | None        # BYTES: one encoded image per element
    binary_output: bool


def bad(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


def parse_infer(body: bytes, header_length: str | None, spec: ModelSpec, max_items: int) -> InferRequest:
    doc, binary = _split(body, header_length)
    if not isinstance(doc, dict):
        raise bad("the inference request must be a JSON object")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise bad(f"'inputs' must be a list with exactly one tensor object, named '{INPUT_NAME}'")
    tensor = inputs[0]
    if tensor.get("name") != INPUT_NAME:
        raise bad(f"unknown input {tensor.get('name')!r}; this model has one input, '{INPUT_NAME}'")
    shape = _shape(tensor)
    datatype = tensor.get("datatype")
    raw = _binary_part(tensor, binary)
    request_id = doc.get("id") if isinstance(doc.get("id"), str) else None
    binary_output = _binary_output(doc)
    if datatype == "FP32":
        array = _fp32(tensor, raw, shape, spec, max_items)
        return InferRequest(request_id, datatype, array, None, binary_output)
    if datatype == "BYTES":
        images = _bytes(tensor, raw, shape, max_items)
        return InferRequest(request_id, datatype, None, images, binary_output)
    raise bad(f"input '{INPUT_NAME}': datatype {datatype!r} is not accepted; send FP32 (normalized NCHW "
              "tensor) or BYTES (encoded images)")


def _split(body: bytes, header_length: str | None) -> tuple[object, bytes]:
    if header_length is None:
        head, rest = body, b""
    else:
        try:
            n = int(header_length)
        except ValueError:
            raise bad(f"Inference-Header-Content-Length must be an integer, got {header_length!r}") from None
        if not 0 < n <= len(body):
            raise bad(f"Inference-Header-Content-Length {n} is outside the {len(body)}-byte body")
        head, rest = body[:n], body[n:]
    try:
        return json.loads(head), rest
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise bad(f"malformed JSON: {e}") from None


def _shape(tensor: dict) -> list[int]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise bad(f"input '{INPUT_NAME}': 'shape' must be a list of non-negative integers, got {shape!r}")
    return shape


def _binary_part(tensor: dict, binary: bytes) -> bytes | None:
    params = tensor.get("parameters") or {}
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is None:
        if "data" not in tensor:
            raise bad(f"input '{INPUT_NAME}' has neither 'data' nor a binary_data_size parameter")
        return None
    if not isinstance(size, int) or size != len(binary):
        raise bad(f"input '{INPUT_NAME}': binary_data_size {size!r} does not match the {len(binary)} bytes "
                  "after the JSON header")
    return binary


def _binary_output(doc: dict) -> bool:
    """Binary logits when the one requested output or the request asks for it (tritonclient's default)."""
    outputs = doc.get("outputs")
    params = doc.get("parameters") if isinstance(doc.get("parameters"), dict) else {}
    wanted = bool(params.get("binary_data_output", False))
    if outputs in (None, []):
        return wanted
    if not isinstance(outputs, list) or len(outputs) != 1 or not isinstance(outputs[0], dict):
        raise bad(f"'outputs' must be a list with one object; this model has one output, '{OUTPUT_NAME}'")
    if outputs[0].get("name") != OUTPUT_NAME:
        raise bad(f"unknown output {outputs[0].get('name')!r}; this model has one output, '{OUTPUT_NAME}'")
    out_params = outputs[0].get("parameters") if isinstance(outputs[0].get("parameters"), dict) else {}
    return bool(out_params.get("binary_data", wanted))


def input_shape(spec: ModelSpec) -> list[int]:
    return [-1, 3, spec.input_size, spec.input_size]


def _fp32(tensor: dict, raw: bytes | None, shape: list[int], spec: ModelSpec, max_items: int) -> np.ndarray:
    expected = input_shape(spec)
    if len(shape) != 4 or shape[1:] != expected[1:] or not 1 <= shape[0] <= max_items:
        raise bad(f"input '{INPUT_NAME}': shape {shape} does not match the model's {expected} "
                  f"(NCHW, normalized; batch 1 to {max_items})")
    count = int(np.prod(shape))
    if raw is not None:
        if len(raw) != 4 * count:
            raise bad(f"input '{INPUT_NAME}': shape {shape} needs {4 * count} FP32 bytes, got {len(raw)}")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)
    try:
        array = np.asarray(tensor["data"], dtype=np.float32)
    except (TypeError, ValueError):
        raise bad(f"input '{INPUT_NAME}': 'data' must be a (flat or nested) list of numbers") from None
    if array.size != count:
        raise bad(f"input '{INPUT_NAME}': shape {shape} needs {count} values, got {array.size}")
    return np.ascontiguousarray(array.reshape(shape))


def _bytes(tensor: dict, raw: bytes | None, shape: list[int], max_items: int) -> list[bytes]:
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1) or not 1 <= shape[0] <= max_items:
        raise bad(f"input '{INPUT_NAME}': BYTES shape must be [N] or [N, 1] with N from 1 to {max_items}, "
                  f"got {shape}")
    items = _length_prefixed(raw) if raw is not None else _base64_items(tensor["data"])
    if len(items) != shape[0]:
        raise bad(f"input '{INPUT_NAME}': shape {shape} needs {shape[0]} images, got {len(items)}")
    return items


def _length_prefixed(raw: bytes) -> list[bytes]:
    """Triton's binary BYTES layout: for each element a little-endian uint32 length, then the bytes."""
    items, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise bad(f"input '{INPUT_NAME}': truncated BYTES element length at byte {offset}")
        (n,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + n > len(raw):
            raise bad(f"input '{INPUT_NAME}': BYTES element of {n} bytes runs past the end of the body")
        items.append(raw[offset:offset + n])
        offset += n
    return items


def _base64_items(data) -> list[bytes]:
    flat = data if not (isinstance(data, list) and data and isinstance(data[0], list)) else \
        [x for row in data for x in row]
    if not isinstance(flat, list) or not all(isinstance(x, str) for x in flat):
        raise bad(f"input '{INPUT_NAME}': BYTES 'data' in JSON must be a list of base64 strings")
    try:
        return [base64.b64decode(x, validate=True) for x in flat]
    except binascii.Error as e:
        raise bad(f"input '{INPUT_NAME}': an element is not valid base64 ({e})") from None


def encode_response(model_name: str, request_id: str | None, logits: np.ndarray,
                    binary: bool) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers; binary logits follow the JSON header when asked for."""
    output = {"name": OUTPUT_NAME, "datatype": "FP32", "shape": list(logits.shape)}
    raw = np.ascontiguousarray(logits, dtype="<f4").tobytes() if binary else b""
    if binary:
        output["parameters"] = {"binary_data_size": len(raw)}
    else:
        output["data"] = logits.astype(np.float32).ravel().tolist()
    doc = {"model_name": model_name, "model_version": "1", "outputs": [output]}
    if request_id is not None:
        doc["id"] = request_id
    header = json.dumps(doc).encode()
    if not binary:
        return header, {"content-type": "application/json"}
    return header + raw, {"content-type": "application/octet-stream",
                          "Inference-Header-Content-Length": str(len(header))}
