"""The web API fuzzed with Schemathesis, in-process on a tiny model (no socket is opened).

Every operation of the app's OpenAPI document gets generated requests that fit its schema
and malformed ones that do not (wrong types, out-of-range numbers, missing and extra fields,
odd path parameters). Every response must not be a server error (5xx) and must match the
document: its status is one the operation declares, its content type is declared, and its
body validates against the declared schema.

The document is the one FastAPI generates from the app (`app.openapi()`), completed with
what the code says but FastAPI cannot see: each job kind's request body (the endpoint reads
the body itself, to answer a bad one with one line), the error shape every 4xx uses
(`{"error": "..."}`, not FastAPI's `detail` list), a job's state, and the event stream.
The run is bounded: `EXAMPLES` cases per operation and mode (about 230 in all, ~25 s on
two cores), derandomized, so it takes about the same time on every run and fails the same
way.
"""

from __future__ import annotations

import copy
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation.modes import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from factscope.load import LoadedModel, load_model  # noqa: E402
from factscope.web.app import JOB_KINDS, create_app  # noqa: E402
from tiny_checkpoints import tiny_hf_for_gguf, write_tiny_gguf  # noqa: E402

# per operation and mode; FACTSCOPE_FUZZ_EXAMPLES=200 searches longer
EXAMPLES = int(os.environ.get("FACTSCOPE_FUZZ_EXAMPLES", "12"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "minLength": 1}},
}
JOB = {
    "type": "object",
    "required": ["id", "kind", "state", "progress", "message", "cached", "error"],
    "properties": {
        "id": {"type": "string"},
        "kind": {"type": "string", "enum": list(JOB_KINDS)},
        "state": {"enum": ["queued", "running", "done", "error", "cancelled"]},
        "progress": {"type": "number", "minimum": 0, "maximum": 1},
        "message": {"type": "string"},
        "cached": {"type": "boolean"},
        "error": {"type": ["string", "null"]},
        "position": {"type": ["integer", "null"]},
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def api_document(app: Any) -> dict[str, Any]:
    """The app's OpenAPI document, completed (see the module docstring)."""
    doc = copy.deepcopy(app.openapi())
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"], schemas["Job"] = ERROR, JOB
    error = _json({"$ref": "#/components/schemas/Error"}, "what the client must change")
    job = _json({"$ref": "#/components/schemas/Job"}, "the job")
    submit = doc["paths"].pop("/api/jobs/{kind}")["post"]
    for kind, spec in JOB_KINDS.items():
        body = spec.request.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(body.pop("$defs", {}))
        schemas[spec.request.__name__] = body
        doc["paths"][f"/api/jobs/{kind}"] = {
            "post": {
                **{k: v for k, v in submit.items() if k not in ("parameters", "responses")},
                "operationId": f"submit_{kind}",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{spec.request.__name__}"}
                        }
                    },
                },
                "responses": {"202": job},
            }
        }
    doc["paths"]["/api/predict"]["post"]["responses"]["202"] = _json(
        {"type": "object", "required": ["status", "position"]}, "queued behind a job"
    )
    for path in ("/api/jobs/{job_id}", "/api/jobs/{job_id}/cancel"):
        for operation in doc["paths"][path].values():
            operation["responses"]["200"] = job
    events = doc["paths"]["/api/jobs/{job_id}/events"]["get"]["responses"]
    events["200"] = {"description": "the job's events", "content": {"text/event-stream": {}}}
    for item in doc["paths"].values():
        for operation in item.values():
            operation["responses"].pop("422", None)  # FastAPI's shape; ours is Error
            operation["responses"]["4XX"] = error
    return doc


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    path = tmp_path_factory.mktemp("fuzz") / "tiny-gemma.gguf"
    write_tiny_gguf(path, tiny_hf_for_gguf("gemma3", seed=3))
    return load_model(path)


@pytest.fixture(scope="module")
def app(lm: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> Any:
    runs: Path = tmp_path_factory.mktemp("runs")
    (runs / "probe-a").mkdir()
    (runs / "probe-a" / "probe.json").write_text('{"layers": [0, 1]}')
    app = create_app(lm, runs_dir=runs, max_queued_jobs=2)
    yield app
    app.state.jobs.shutdown()


def _fuzz(
    app: Any, operation: Any, mode: Any, tried: dict[str, int], label: str, codes: Counter[int]
) -> Any:
    """A Hypothesis test of one operation in one mode, counting its cases in `tried` and the
    statuses of their responses in `codes`."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        tried[label] += 1
        response = case.call(app=app)
        codes[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)

    return run


def test_every_operation_is_fuzzed_without_server_errors(app: Any) -> None:
    schema = schemathesis.openapi.from_dict(api_document(app))
    operations = [result.ok() for result in schema.get_all_operations()]
    # every route of the app that is in its schema, each job kind as its own operation
    assert len(operations) == len(app.openapi()["paths"]) - 1 + len(JOB_KINDS)
    tried: dict[str, int] = {}
    codes: Counter[int] = Counter()
    started = time.monotonic()
    for operation in operations:
        raw = operation.definition.raw
        takes_input = bool(raw.get("parameters") or raw.get("requestBody"))
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if takes_input else [])
        for mode in modes:  # nothing to malform in a request without parameters or a body
            label = f"{operation.label} ({mode.value})"
            tried[label] = 0
            try:
                _fuzz(app, operation, mode, tried, label, codes)()
            except Unsatisfiable:
                # a plain string in the path: every value on the wire fits the schema (the
                # positive cases already send arbitrary text there)
                assert mode is GenerationMode.NEGATIVE and not raw.get("requestBody"), label
                del tried[label]
            except Exception as exc:
                exc.add_note(f"while fuzzing {label}")
                raise
    elapsed = time.monotonic() - started
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(codes.items()))
    print(
        f"{len(operations)} operations, {sum(tried.values())} cases in {elapsed:.1f} s ({statuses})"
    )
    assert all(tried.values()), [label for label, n in tried.items() if not n]
    assert not [code for code in codes if code >= 500]
    assert codes[200] and codes[202], "no request was accepted: the fuzz only met errors"
