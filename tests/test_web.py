"""The web app in-process, on a tiny model: predictions batched but equal to one-by-one,
jobs equal to the library calls they wrap, every bad request a 4xx with a message, the
queue and cancellation rules, and notebook views (`_repr_html_`)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from factscope.hooks import run_with_cache
from factscope.load import LoadedModel, load_model
from factscope.locate.lens import attribute_prompt, lens_prompt
from factscope.locate.trace import trace_prompt
from factscope.predict import predict_next
from factscope.story.capabilities import Capability
from factscope.web.app import create_app
from factscope.web.batching import Busy, predict_many
from factscope.web.jobs import JobContext, JobManager
from tiny_checkpoints import tiny_hf_for_gguf, write_tiny_gguf

PROMPT = "Michael Jordan plays the sport of"
SUBJECT = "Michael Jordan"


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    path = tmp_path_factory.mktemp("web") / "tiny-gemma.gguf"
    write_tiny_gguf(path, tiny_hf_for_gguf("gemma3", seed=3))
    return load_model(path)


@pytest.fixture()
def client(lm: LoadedModel) -> Any:
    with TestClient(create_app(lm)) as c:
        yield c


def wait_job(client: TestClient, job: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while job["state"] not in ("done", "error", "cancelled"):
        assert time.monotonic() < deadline, f"job {job['id']} did not finish"
        time.sleep(0.05)
        job = client.get(f"/api/jobs/{job['id']}").json()
    return job


# ---- predictions -------------------------------------------------------------------------


def test_batched_predictions_equal_one_by_one(lm: LoadedModel) -> None:
    prompts = [PROMPT, "The capital of France is", "a", "Jordan plays the sport of basketball"]
    ids = [lm.tokenizer.encode(p) for p in prompts]
    assert len({len(i) for i in ids}) > 1  # different lengths: right padding is exercised
    batched = predict_many(lm, ids, [5] * len(prompts), prompts)
    for prompt, got in zip(prompts, batched, strict=True):
        want = predict_next(lm, prompt, 5)
        assert [c.id for c in got.top] == [c.id for c in want.top]
        for a, b in zip(got.top, want.top, strict=True):
            assert a.prob == pytest.approx(b.prob, rel=1e-4, abs=1e-7)
            assert a.logit == pytest.approx(b.logit, abs=1e-4)
        assert got.tokens == want.tokens and got.prompt == prompt


def test_predict_endpoint(client: TestClient, lm: LoadedModel) -> None:
    r = client.post("/api/predict", json={"prompt": PROMPT, "top_k": 3})
    assert r.status_code == 200
    data = r.json()
    want = predict_next(lm, PROMPT, 3)
    assert [c["id"] for c in data["prediction"]["top"]] == [c.id for c in want.top]
    again = client.post("/api/predict", json={"prompt": PROMPT, "top_k": 3}).json()
    assert again["cached"] is True and again["prediction"] == data["prediction"]


def test_predict_answers_queued_at_once_while_a_job_holds_the_model(
    client: TestClient, lm: LoadedModel
) -> None:
    host = client.app.state.host  # type: ignore[attr-defined]
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with host.use("job:trace"):
            held.set()
            release.wait(10)

    worker = threading.Thread(target=hold)
    worker.start()
    try:
        held.wait(5)
        start = time.monotonic()
        r = client.post("/api/predict", json={"prompt": "queued?"})
        assert time.monotonic() - start < 2
        assert r.status_code == 202
        body = r.json()
        assert body["status"] == "queued" and body["position"] >= 1
        assert "trace" in body["message"]
    finally:
        release.set()
        worker.join()
    assert client.post("/api/predict", json={"prompt": "queued?"}).status_code == 200


# ---- every bad request: 4xx and a message ------------------------------------------------

BAD: list[tuple[str, str, Any, int, str]] = [
    ("post", "/api/predict", {"prompt": PROMPT, "top_k": -3}, 422, "top_k must be at least 1"),
    ("post", "/api/predict", {"prompt": PROMPT, "top_k": 51}, 422, "top_k must be at most 50"),
    ("post", "/api/predict", {"prompt": PROMPT, "top_k": "many"}, 422, "top_k"),
    ("post", "/api/predict", {"prompt": ""}, 422, "prompt is empty"),
    ("post", "/api/predict", {"prompt": "   "}, 422, "prompt is empty"),
    ("post", "/api/predict", {"prompt": "x" * 1001}, 422, "longer than 1000"),
    ("post", "/api/predict", {"top_k": 3}, 422, "prompt is required"),
    ("post", "/api/predict", {"prompt": PROMPT, "extra": 1}, 422, "extra is not a field"),
    ("post", "/api/predict", [1, 2], 422, "JSON object"),
    ("post", "/api/predict", {"prompt": PROMPT, "model": "/etc/passwd"}, 422, "never a file"),
    ("post", "/api/predict", {"prompt": PROMPT, "model": "../x.gguf"}, 422, "never a file"),
    ("post", "/api/predict", {"prompt": PROMPT, "model": "no-such"}, 400, "unknown model"),
    ("post", "/api/predict", {"prompt": PROMPT, "model": "gemma-3-270m"}, 400, "this server"),
    ("post", "/api/predict", {"prompt": "ab " * 300}, 422, "tokens; the limit is"),
    ("post", "/api/jobs/trace", {"prompt": PROMPT}, 422, "subject is required"),
    ("post", "/api/jobs/trace", {"prompt": PROMPT, "subject": "Tom"}, 400, "does not occur"),
    ("post", "/api/jobs/trace", {"prompt": PROMPT, "subject": SUBJECT, "samples": 0}, 422, ""),
    ("post", "/api/jobs/trace", {"prompt": PROMPT, "subject": SUBJECT, "method": "x"}, 422, ""),
    ("post", "/api/jobs/trace", {"prompt": PROMPT, "subject": SUBJECT, "seed": -1}, 422, ""),
    ("post", "/api/jobs/trace", {"prompt": PROMPT, "subject": SUBJECT, "window": 1e9}, 422, ""),
    ("post", "/api/jobs/flow", {"prompt": PROMPT, "answer": ""}, 422, "answer is empty"),
    ("post", "/api/jobs/attention", {"prompt": PROMPT}, 422, "subject is required"),
    ("post", "/api/jobs/attention", {"prompt": PROMPT, "subject": "Tom"}, 400, "does not occur"),
    (
        "post",
        "/api/jobs/attention",
        {"prompt": PROMPT, "subject": SUBJECT, "layer": -1},
        422,
        "layer must be at least 0",
    ),
    (
        "post",
        "/api/jobs/attention",
        {"prompt": PROMPT, "subject": SUBJECT, "layer": "/etc"},
        422,
        "layer",
    ),
    ("post", "/api/jobs/nosuchkind", {"prompt": PROMPT}, 404, "no job kind"),
    ("get", "/api/jobs/flow-999999", None, 404, "no job"),
    ("post", "/api/jobs/flow-999999/cancel", None, 404, "no job"),
    ("get", "/api/nothing-here", None, 404, "Not Found"),
    ("put", "/api/predict", None, 405, "Method Not Allowed"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "words"), BAD)
def test_bad_requests_are_4xx_with_a_message(
    client: TestClient, method: str, path: str, body: Any, status: int, words: str
) -> None:
    kwargs = {} if body is None else {"json": body}
    r = client.request(method.upper(), path, **kwargs)
    assert r.status_code == status, r.text
    message = r.json()["error"]
    assert words in message
    assert "Traceback" not in message and "\n" not in message


@pytest.mark.parametrize(
    ("content", "status", "words"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"\xff\xfe", 400, "not valid JSON"),
        (b"x" * 20000, 413, "larger than"),
    ],
)
def test_malformed_bodies(client: TestClient, content: bytes, status: int, words: str) -> None:
    for path in ("/api/predict", "/api/jobs/flow"):
        r = client.post(path, content=content, headers={"content-type": "application/json"})
        assert r.status_code == status and words in r.json()["error"]


def test_host_header_checked_when_bound_to_loopback(lm: LoadedModel) -> None:
    with TestClient(create_app(lm, trusted_hosts=["127.0.0.1", "testserver"])) as c:
        assert c.get("/api/info").status_code == 200
        r = c.get("/api/info", headers={"host": "evil.example:8000"})
        assert r.status_code == 400 and "not served here" in r.json()["error"]


# ---- jobs ------------------------------------------------------------------------------------


def test_flow_job_equals_the_logit_lens(client: TestClient, lm: LoadedModel) -> None:
    r = client.post("/api/jobs/flow", json={"prompt": PROMPT, "subject": SUBJECT})
    assert r.status_code == 202
    flow = wait_job(client, r.json())["result"]
    lens = lens_prompt(lm, PROMPT)  # the last position's lens, computed by locate
    assert flow["answer"]["id"] == lens.answer["id"]
    last_column = [row[-1] for row in flow["prob"]]
    assert last_column == pytest.approx(lens.answer_prob, rel=1e-4, abs=1e-7)
    assert [row[-1] for row in flow["rank"]] == lens.answer_rank
    dla = attribute_prompt(lm, PROMPT)
    best = max(
        ((layer, head) for layer in range(len(dla.heads)) for head in range(len(dla.heads[0]))),
        key=lambda lh: dla.heads[lh[0]][lh[1]],
    )
    assert (flow["heads"][0]["layer"], flow["heads"][0]["head"]) == best
    start, stop = flow["subject_span"]
    assert all(start <= h["source"] < stop for h in flow["heads"])


@pytest.mark.parametrize("method", ["approx", "exact"])
def test_trace_job_equals_trace_prompt(client: TestClient, lm: LoadedModel, method: str) -> None:
    body = {"prompt": PROMPT, "subject": SUBJECT, "method": method, "samples": 2}
    job = wait_job(client, client.post("/api/jobs/trace", json=body).json())
    assert job["state"] == "done", job
    want = trace_prompt(lm, PROMPT, SUBJECT, samples=2, method=method)
    got = {t["kind"]: t for t in job["result"]["traces"]}
    assert set(got) == set(want)
    for kind, result in want.items():
        assert torch.allclose(
            torch.tensor(got[kind]["scores"]), torch.tensor(result.scores), atol=1e-6
        )
    again = client.post("/api/jobs/trace", json=body).json()  # cached: done at once
    assert again["state"] == "done" and again["cached"] is True


@pytest.mark.parametrize("layer", [None, 1])
def test_attention_job_equals_run_with_cache(
    client: TestClient, lm: LoadedModel, layer: int | None
) -> None:
    body: dict[str, Any] = {"prompt": PROMPT, "subject": SUBJECT}
    if layer is not None:
        body["layer"] = layer
    job = wait_job(client, client.post("/api/jobs/attention", json=body).json())
    assert job["state"] == "done", job
    got = job["result"]
    L = lm.cfg.n_layers
    tokens = lm.encode(PROMPT)
    sites = [f"blocks.{i}.attn.pattern" for i in range(L)]
    _, cache = run_with_cache(lm.model, tokens, sites)
    patterns = torch.stack([cache[site][0].float() for site in sites])  # (L, H, T, T)
    start, stop = lm.tokenizer.find_subject_span(PROMPT, SUBJECT)
    assert got["subject_span"] == [start, stop] and len(got["tokens"]) == tokens.shape[1]
    to_subject = patterns[:, :, -1, start:stop].sum(-1)  # (L, H)
    assert torch.allclose(torch.tensor(got["to_subject"]), to_subject, atol=1e-6)
    best = divmod(int(to_subject.argmax()), to_subject.shape[1])
    assert (got["top_heads"][0]["layer"], got["top_heads"][0]["head"]) == best
    shown = best[0] if layer is None else layer
    assert got["layer"] == shown
    assert torch.allclose(torch.tensor(got["patterns"]), patterns[shown], atol=1e-6)
    again = client.post("/api/jobs/attention", json=body).json()  # cached per request
    assert again["state"] == "done" and again["cached"] is True


def test_attention_job_refuses_a_layer_the_model_lacks(client: TestClient, lm: LoadedModel) -> None:
    L = lm.cfg.n_layers
    body = {"prompt": PROMPT, "subject": SUBJECT, "layer": L}
    r = client.post("/api/jobs/attention", json=body)
    assert r.status_code == 422 and f"layer must be at most {L - 1}" in r.json()["error"]


def test_job_events_stream_progress_then_the_result(client: TestClient) -> None:
    body = {"prompt": PROMPT, "subject": SUBJECT, "method": "exact", "samples": 3, "seed": 7}
    job = client.post("/api/jobs/trace", json=body).json()
    events: list[tuple[str, dict[str, Any]]] = []
    with client.stream("GET", f"/api/jobs/{job['id']}/events") as stream:
        name = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    assert events[-1][0] == "done" and len(events[-1][1]["result"]["traces"]) == 3
    progress = [e["progress"] for _, e in events]
    assert progress == sorted(progress) and progress[-1] == 1.0


def test_a_running_job_can_be_cancelled(client: TestClient) -> None:
    body = {"prompt": PROMPT, "subject": SUBJECT, "method": "exact", "samples": 50, "seed": 9}
    job = client.post("/api/jobs/trace", json=body).json()
    deadline = time.monotonic() + 20
    while client.get(f"/api/jobs/{job['id']}").json()["progress"] <= 0.0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    client.post(f"/api/jobs/{job['id']}/cancel")
    final = wait_job(client, job)
    assert final["state"] == "cancelled" and "result" not in final
    host = client.app.state.host  # type: ignore[attr-defined]
    assert all(not p.fns for p in host.lm.model.hook_points.values())  # no hook left behind


def test_job_queue_is_bounded_and_cancellable() -> None:
    manager = JobManager(max_queued=2)
    gate = threading.Event()
    ran: list[str] = []

    def blocked(context: JobContext) -> str:
        gate.wait(10)
        ran.append(context.job.id)
        return "ok"

    try:
        jobs = [manager.submit("k", {"i": i}, ("k", i), blocked) for i in range(3)]
        time.sleep(0.1)
        assert [manager.position(j) for j in jobs] == [1, 2, 3]
        assert jobs[0].state == "running" and jobs[1].state == "queued"
        with pytest.raises(Busy, match="the limit"):
            manager.submit("k", {"i": 3}, ("k", 3), blocked)
        other = manager.submit("other", {}, ("o",), lambda context: 42)  # other kinds go on
        same = manager.submit("k", {"i": 1}, ("k", 1), blocked)
        assert same is jobs[1]  # an identical unfinished job is shared, not queued twice
        manager.cancel(jobs[2].id)
        assert jobs[2].state == "cancelled"
        gate.set()
        deadline = time.monotonic() + 10
        while not (jobs[0].finished and jobs[1].finished and other.finished):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert ran == [jobs[0].id, jobs[1].id] and other.result == 42
        assert manager.submit("k", {"i": 0}, ("k", 0), blocked).cached
    finally:
        gate.set()
        manager.shutdown()


def test_a_failing_job_reports_a_line_not_a_traceback() -> None:
    manager = JobManager()

    def broken(context: JobContext) -> None:
        raise ZeroDivisionError("secret internals")

    job = manager.submit("k", {}, ("k",), broken)
    deadline = time.monotonic() + 5
    while not job.finished:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert job.state == "error"
    assert job.error is not None and "secret" not in job.error and "ZeroDivision" in job.error
    manager.shutdown()


def test_views_follow_capabilities(client: TestClient) -> None:
    info = client.get("/api/info").json()
    assert {"predict", "flow", "trace"} <= set(info["views"])
    assert set(info["jobs"]) <= {
        "flow",
        "trace",
        "neurons",
        "attention",
        "features",
        "edit",
        "superposition",
    }
    assert not Capability("x", "factscope.no_such_module", ("f",), "").available()
    assert not Capability("x", "factscope.predict", ("no_such_function",), "").available()
    assert Capability("x", "factscope.predict", ("predict_next",), "").available()


def test_page_and_vendored_plotly_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "/static/vendor/plotly.min.js" in page.text
    assert "https://" not in page.text  # nothing fetched from elsewhere
    js = client.get("/static/vendor/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000
    assert client.get("/static/app.js").status_code == 200


# ---- notebook views ------------------------------------------------------------------------


def test_repr_html_of_results(lm: LoadedModel) -> None:
    tricky = "<script>alert(1)</script> Michael Jordan plays the sport of"
    trace = trace_prompt(lm, tricky, SUBJECT, kinds=["hidden"], samples=2, method="approx")
    for result in (
        trace["hidden"],
        lens_prompt(lm, tricky),
        attribute_prompt(lm, tricky),
        predict_next(lm, tricky, 3),
    ):
        page = result._repr_html_()
        assert page.startswith('<div class="factscope-fragment"')
        assert "<table" in page
        assert "<script>alert" not in page  # user text is escaped
    assert "<svg" in trace["hidden"]._repr_html_()


def test_fragments_do_not_share_figure_ids(lm: LoadedModel) -> None:
    lens = lens_prompt(lm, PROMPT)
    a, b = lens._repr_html_(), lens._repr_html_()
    ids_a = set(a.split('id="')[1:])
    assert not ids_a & set(b.split('id="')[1:])


def test_page_fetches_nothing_from_elsewhere() -> None:
    static = Path(__file__).parents[1] / "src" / "factscope" / "web" / "static"
    for name in ("index.html", "app.js", "style.css"):
        text = (static / name).read_text(encoding="utf-8")
        text = text.replace("http://www.w3.org/2000/svg", "")  # a namespace, not a fetch
        assert "http://" not in text and "https://" not in text, name


def test_edit_job_then_undo_restores_the_model(
    client: TestClient, lm: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = client.get("/api/info").json()
    if "edit" not in info["views"]:
        pytest.skip("the edit capability has not landed")
    from factscope.edit import stats

    def identity(model: Any, tokenizer: Any, layers: list[int], *args: Any, **kw: Any) -> Any:
        return {layer: stats.identity_stats(model, layer) for layer in layers}

    monkeypatch.setattr(stats, "layer_stats", identity)  # C = I: no corpus pass in a unit test
    weights = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    before = client.post("/api/predict", json={"prompt": PROMPT, "top_k": 5}).json()
    body = {"prompt": PROMPT, "subject": SUBJECT, "new": "baseball", "layer": 1}
    job = wait_job(client, client.post("/api/jobs/edit", json=body).json(), timeout=300)
    assert job["state"] == "done", job
    record = job["result"]
    assert record["layers"] == [1]
    # the tiny random model is no test of ROME's efficacy (tests/test_rome.py is): here the
    # plumbing: the served model changed, the rows were measured on it, and undo restores it
    assert record["after"][0]["p_new"] != record["before"][0]["p_new"]
    assert {row["kind"] for row in record["before"]} >= {"prompt", "paraphrase"}
    info = client.get("/api/info").json()
    assert len(info["edits"]) == 1 and info["revision"] == 1
    edited = client.post("/api/predict", json={"prompt": PROMPT, "top_k": 5}).json()
    assert edited["cached"] is False and edited["prediction"] != before["prediction"]
    undone = client.post("/api/edit/undo", json={})
    assert undone.status_code == 200 and undone.json()["edits"] == []
    for name, p in lm.model.named_parameters():
        assert torch.equal(p, weights[name]), name
    after = client.post("/api/predict", json={"prompt": PROMPT, "top_k": 5}).json()
    assert after["prediction"] == before["prediction"]
    again = client.post("/api/edit/undo", json={})
    assert again.status_code == 409 and "no edit to undo" in again.json()["error"]


def test_runs_on_disk_are_listed_and_read_by_name_only(lm: LoadedModel, tmp_path: Path) -> None:
    history = {"step": [1, 2, 3], "loss": [3.0, 2.5, 2.0], "eval_step": [3], "eval_loss": [2.2]}
    (tmp_path / "tiny-run").mkdir()
    (tmp_path / "tiny-run" / "history.json").write_text(json.dumps(history))
    (tmp_path / "study" / "probe-a").mkdir(parents=True)
    curves = {"clean": {"mean": [0.5, 0.9], "min": [0.4, 0.8], "max": [0.6, 1.0]}}
    (tmp_path / "study" / "probe-a" / "probe.json").write_text(json.dumps({"curves": curves}))
    (tmp_path / "secret.json").write_text("{}")
    with TestClient(create_app(lm, runs_dir=tmp_path)) as c:
        views = c.get("/api/info").json()["views"]
        for kind, name, key in (
            ("train", "tiny-run", "loss"),
            ("study", "study/probe-a", "curves"),
        ):
            if kind not in views:
                continue
            assert c.get(f"/api/runs/{kind}").json()["runs"] == [name]
            data = c.get(f"/api/runs/{kind}", params={"run": name}).json()["data"]
            assert key in data
            for bad in ("../secret", "/etc", "tiny-run/../..", "nope"):
                r = c.get(f"/api/runs/{kind}", params={"run": bad})
                assert r.status_code == 400 and "pick one from the list" in r.json()["error"]
        assert c.get("/api/runs/passwd").status_code == 404


def test_full_queues_answer_429_at_once(lm: LoadedModel) -> None:
    with TestClient(create_app(lm, max_waiting=0, max_queued_jobs=0)) as c:
        r = c.post("/api/predict", json={"prompt": "busy?"})
        assert r.status_code == 429 and "limit" in r.json()["error"]
        assert r.json()["status"] == "busy"
        body = {"prompt": PROMPT, "subject": SUBJECT, "method": "exact", "samples": 50}
        first = c.post("/api/jobs/trace", json=body).json()
        second = c.post("/api/jobs/trace", json={**body, "seed": 1})
        assert second.status_code == 429 and "the limit" in second.json()["error"]
        c.post(f"/api/jobs/{first['id']}/cancel")
        assert wait_job(c, first)["state"] in ("cancelled", "done")  # the model is free again


def test_flow_result_renders_in_a_notebook(lm: LoadedModel) -> None:
    from factscope.story.flow import flow_of_fact

    page = flow_of_fact(lm, PROMPT, SUBJECT)._repr_html_()
    assert page.startswith('<div class="factscope-fragment"') and "<svg" in page


# ---- Features (serve --sae) ----------------------------------------------------------------


def test_features_job_equals_inspect_prompt(lm: LoadedModel, tmp_path: Path) -> None:
    from factscope.features.formats import load_dictionary
    from factscope.features.inspect import inspect_prompt
    from tiny_saes import saelens_folder

    folder = saelens_folder(tmp_path / "sae", lm.cfg.d_model)
    sae = load_dictionary(folder)
    body = {"prompt": PROMPT, "subject": SUBJECT, "top": 2, "steer": 5.0}
    with TestClient(create_app(lm, sae=sae, sae_path=str(folder))) as client:
        info = client.get("/api/info").json()
        assert "features" in info["views"] and info["sae"]["d_sae"] == 32
        job = wait_job(client, client.post("/api/jobs/features", json=body).json())
        assert job["state"] == "done", job
        refused = client.post("/api/jobs/features", json={**body, "top": 0})
    assert refused.status_code == 422
    result = job["result"]
    expected = inspect_prompt(lm, sae, PROMPT, subject=SUBJECT, top=2, steer_scale=5.0).to_dict()
    assert result["sae"] == str(folder) and result["config"]["layer"] == 1
    for key in ("tokens", "subject_position", "answer", "p_clean", "p_spliced"):
        assert result[key] == expected[key], key
    assert [b["latent"] for b in result["dashboards"]] == [
        b["latent"] for b in expected["dashboards"]
    ]
    assert result["interventions"] == json.loads(json.dumps(expected["interventions"]))
    assert {b["position"] for b in result["dashboards"]} <= {"subject", "last"}


def test_features_without_an_sae_say_how_to_enable_it(client: TestClient) -> None:
    info = client.get("/api/info").json()
    assert "features" in info["views"] and info["sae"] is None
    response = client.post("/api/jobs/features", json={"prompt": PROMPT, "subject": SUBJECT})
    assert response.status_code == 409
    assert "factscope serve --sae PATH" in response.json()["error"]
