"""`POST /api/predict`: the top next tokens, micro-batched with other requests and cached
per model revision."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from factscope.web.responses import plain_json
from factscope.web.schemas import PredictRequest
from factscope.web.state import ServedState

router = APIRouter()


@router.post("/api/predict")
async def predict(body: PredictRequest, state: ServedState) -> Response:
    state.check_model(body.model)
    host, batcher, predictions = state.host, state.batcher, state.predictions
    busy = host.busy_job()
    if busy is not None:  # a job holds the model: say so now rather than wait
        return JSONResponse(
            {
                "status": "queued",
                "position": batcher.waiting + 1,
                "busy_with": busy.removeprefix("job:"),
                "message": f"the model is busy with a {busy.removeprefix('job:')} job; "
                "your prediction will run when it is done — try again in a moment",
            },
            status_code=202,
        )
    key = (host.name, host.revision, body.prompt, body.top_k)
    if key in predictions:
        predictions.move_to_end(key)
        return JSONResponse({"status": "done", "cached": True, **predictions[key]})
    prediction = await batcher.predict(body.prompt, state.encode(body.prompt), body.top_k)
    data = {"prediction": plain_json(prediction.to_dict())}
    predictions[key] = data
    while len(predictions) > 512:
        predictions.popitem(last=False)
    return JSONResponse({"status": "done", "cached": False, **data})
