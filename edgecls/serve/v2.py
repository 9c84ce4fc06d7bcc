"""Open Inference Protocol (KServe v2) routes, so Triton and OpenVINO Model Server clients work unchanged."""

from __future__ import annotations

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgecls import __version__
from edgecls.format_table import ONNXRUNTIME, OPENVINO

from .decode import BadImage, decode_uploads
from .errors import ApiError
from .v2_codec import HEADER_LENGTH, INPUT_NAME, OUTPUT_NAME, encode_response, input_shape, parse_infer

PLATFORMS = {ONNXRUNTIME: "onnxruntime_onnx", OPENVINO: "openvino"}  # Triton's platform names


async def server_metadata(request: Request) -> JSONResponse:
    return JSONResponse({"name": "edgecls", "version": __version__, "extensions": ["binary_tensor_data"]})


async def live(request: Request) -> JSONResponse:
    return JSONResponse({"live": True})


async def ready(request: Request) -> JSONResponse:
    is_ready = request.app.state.batcher.accepting and request.app.state.slot.ready
    return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)


async def model_metadata(request: Request) -> JSONResponse:
    model = _model(request)
    spec = model.classifier.spec
    return JSONResponse({
        "name": model.name, "versions": ["1"], "platform": PLATFORMS.get(model.classifier.choice.engine, "unknown"),
        "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": input_shape(spec)}],
        "outputs": [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, spec.num_classes]}]})


async def model_ready(request: Request) -> JSONResponse:
    return JSONResponse({"name": _model(request).name, "ready": request.app.state.slot.ready})


async def infer(request: Request) -> Response:
    state = request.app.state
    model = _model(request)
    state.slot.serving()
    if request.headers.get("content-encoding", "identity").lower() != "identity":
        raise ApiError(415, "unsupported_media", "compressed request bodies are not accepted")
    with state.batcher.admit() as ticket:
        body = await request.body()
        parsed = parse_infer(body, request.headers.get(HEADER_LENGTH), model.classifier.spec, state.config.max_queue)
        x = parsed.tensor if parsed.datatype == "FP32" else await _decode_images(state, model, parsed.images)
        scored = await ticket.submit(model, x)
    content, headers = encode_response(model.name, parsed.id, scored.logits, parsed.binary_output)
    return Response(content, headers=headers)


async def _decode_images(state, model, images: list[bytes]) -> np.ndarray:
    rows = await decode_uploads(state.decode_pool, images, model.classifier.spec)
    for n, row in enumerate(rows):
        if isinstance(row, BadImage):
            raise ApiError(400, "bad_image", f"input '{INPUT_NAME}' element {n}: {row}")
    return np.concatenate(rows)


def _model(request: Request):
    model = request.app.state.slot.current
    name = request.path_params["name"]
    if name != model.name:
        raise ApiError(404, "unknown_model", f"unknown model {name!r}; this server has {model.name!r}")
    return model


ROUTES = [
    Route("/v2", server_metadata),
    Route("/v2/health/live", live),
    Route("/v2/health/ready", ready),
    Route("/v2/models/{name}", model_metadata),
    Route("/v2/models/{name}/ready", model_ready),
    Route("/v2/models/{name}/infer", infer, methods=["POST"]),
]
