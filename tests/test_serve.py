"""`molmo-eval serve`: the official `openai` client against our server, error answers, batching,
and the `openai` model through `serve` scoring exactly like the same model in-process.

Served requests carry no sample id, so the served models here answer from the prompt and the
image (a ScriptedModel with ``fn=``), never from a per-sample table.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from PIL import Image as PILImage
from toy import COLOURS

from molmo_eval import evaluate
from molmo_eval.core.types import AnswerKind, Generation, Request
from molmo_eval.interop.serve import Server, parse_chat_request
from molmo_eval.models.scripted import ScriptedModel

openai = pytest.importorskip("openai")


def png_url(size=(13, 7), rgb=(1, 2, 3)) -> str:
    buf = io.BytesIO()
    PILImage.new("RGB", size, rgb).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def user(text: str, *urls: str) -> list[dict]:
    parts = [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    return [{"role": "user", "content": parts + [{"type": "text", "text": text}]}]


def echo(r: Request) -> str:
    sizes = ",".join(f"{im.size[0]}x{im.size[1]}" for im in r.images)
    return f"{sizes}|{r.settings.max_new_tokens}|{r.answer_kind.value}|{r.prompt}"


@pytest.fixture(scope="module")
def served():
    model = ScriptedModel(fn=echo, fingerprint="echo")
    with Server(model, port=0) as server:
        client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=10)
        yield server, client


# --- the official client against our server ---------------------------------------------------


def test_official_client_lists_the_model_and_gets_completions(served):
    server, client = served
    models = client.models.list().data
    assert [m.id for m in models] == ["scripted"]
    out = client.chat.completions.create(
        model="scripted", messages=user("What is it?", png_url((13, 7))), max_tokens=5
    )
    assert out.choices[0].message.content == "13x7|5|text|What is it?"
    assert out.choices[0].message.role == "assistant" and out.object == "chat.completion"
    two = client.chat.completions.create(
        model="scripted",
        messages=user("both", png_url((2, 3)), png_url((4, 5))),
        extra_body={"molmo_eval": {"answer_kind": "points"}},
    )
    assert two.choices[0].message.content == "2x3,4x5|64|points|both"  # defaults: 64 tokens, greedy
    text_only = client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "hi"}])
    assert text_only.choices[0].message.content == "|64|text|hi"


def test_official_client_sends_system_messages_reads_usage_and_streams(served):
    """What vLLM-style clients use: a system prompt, ``usage`` and ``stream=true`` (server-sent events)."""
    _, client = served
    msgs = [{"role": "system", "content": "Be brief."}, *user("What is it?", png_url((13, 7)))]
    out = client.chat.completions.create(model="scripted", messages=msgs, max_tokens=5)
    text = out.choices[0].message.content
    assert text == "13x7|5|text|Be brief.\nWhat is it?"  # the system text leads the one prompt
    dev = [{"role": "developer", "content": [{"type": "text", "text": "Terse."}]}, *user("Hi")]
    assert client.chat.completions.create(model="scripted", messages=dev).choices[0].message.content == "|64|text|Terse.\nHi"
    u = out.usage
    assert u.prompt_tokens == 7 and u.completion_tokens == len(re.findall(r"\w+|[^\w\s]", text))  # approximate
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    chunks = list(client.chat.completions.create(model="scripted", messages=msgs, max_tokens=5, stream=True,
                                                 stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == u.model_dump()
    plain = list(client.chat.completions.create(model="scripted", messages=msgs, stream=True))
    assert all(c.usage is None for c in plain) and "".join(c.choices[0].delta.content or "" for c in plain) == \
        "13x7|64|text|Be brief.\nWhat is it?"


def test_usage_counts_with_the_models_own_tokenizer_and_streams_keep_the_connection():
    class Counting(ScriptedModel):
        def count_tokens(self, text: str) -> int:  # one token per character
            return len(text)

    with Server(Counting(fn=lambda r: "yes", fingerprint="c"), port=0) as server:
        client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=10)
        out = client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "abcd"}])
        assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.total_tokens) == (4, 3, 7)
        host, port = server.httpd.server_address[:2]
        conn = http.client.HTTPConnection(host, port, timeout=10)
        body = json.dumps({"model": "scripted", "messages": [{"role": "user", "content": "x"}], "stream": True})
        for _ in range(2):  # the same keep-alive connection twice: the chunked stream ends cleanly
            conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            events = resp.read().decode()
            assert resp.status == 200 and resp.getheader("Content-Type") == "text/event-stream"
            assert events.endswith("data: [DONE]\n\n") and events.count("data: ") == 4
        conn.close()


@pytest.mark.parametrize(
    "kwargs, status, param",
    [
        (dict(model="nope", messages=user("x")), 404, "model"),
        (
            dict(model="scripted", messages=user("x", "http://example.invalid/cat.png")),
            400,
            "messages[0].content[0].image_url",
        ),
        (
            dict(model="scripted", messages=user("x", "data:image/png;base64,@@@not-base64@@@")),
            400,
            "messages[0].content[0].image_url",
        ),
        (
            dict(
                model="scripted",
                messages=user("x", "data:image/png;base64," + base64.b64encode(b"not an image").decode()),
            ),
            400,
            "messages[0].content[0].image_url",
        ),
        (dict(model="scripted", messages=[{"role": "assistant", "content": "x"}]), 400, "messages[0].role"),
        (
            dict(model="scripted", messages=[{"role": "system", "content": [
                {"type": "image_url", "image_url": {"url": png_url()}}]}, *user("x")]),
            400,
            "messages[0].content",
        ),
        (dict(model="scripted", messages=user("x"), stream_options={"include_usage": True}), 400, "stream_options"),
        (dict(model="scripted", messages=user("x"), n=2), 400, "n"),
        (dict(model="scripted", messages=user("x"), max_tokens=0), 400, "max_tokens"),
        (dict(model="scripted", messages=user("x"), temperature=7), 400, "temperature"),
        (dict(model="scripted", messages=[]), 400, "messages"),
        (dict(model=None, messages=user("x")), 400, "model"),
    ],
)
def test_malformed_requests_get_openai_style_errors(served, kwargs, status, param):
    _, client = served
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(**kwargs)
    assert e.value.status_code == status
    err = e.value.body
    assert isinstance(err, dict) and err["param"] == param and err["message"] and err["type"]


def raw(server: Server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    host, port = server.httpd.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_raw_http_errors(served):
    server, _ = served
    status, body = raw(
        server, "POST", "/v1/chat/completions", b"{not json", {"Content-Type": "application/json"}
    )
    assert status == 400 and "JSON" in body["error"]["message"]
    assert raw(server, "POST", "/v1/chat/completions", b"[1]")[0] == 400
    assert raw(server, "GET", "/v1/nothing")[0] == 404
    assert raw(server, "POST", "/v1/embeddings", b"{}")[0] == 404
    assert raw(server, "GET", "/health") == (200, {"status": "ok"})
    status, body = raw(server, "POST", "/v1/chat/completions", b"", {"Content-Length": str(10**12)})
    assert status == 413 and body["error"]["type"] == "invalid_request_error"
    status, body = raw(server, "GET", "/v1/models")
    assert body["data"][0]["molmo_eval"] == {
        "model": "scripted",
        "fingerprint": "echo",
        "coord_space": "pixels",
        "prompt_style": "default",
    }


def test_a_failed_generation_is_a_500_the_client_can_retry():
    def fn(r):
        return Generation(text="", error="CUDA out of memory") if "fail" in r.prompt else "ok"

    with Server(ScriptedModel(fn=fn), port=0) as server:
        client = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0)
        with pytest.raises(openai.InternalServerError, match="CUDA out of memory"):
            client.chat.completions.create(model="scripted", messages=user("please fail"))
        assert (
            client.chat.completions.create(model="scripted", messages=user("x")).choices[0].message.content
            == "ok"
        )


def test_api_key_is_required_when_configured():
    with Server(ScriptedModel(fn=echo), port=0, api_key="sk-serve-test") as server:
        bad = openai.OpenAI(base_url=server.url, api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model="scripted", messages=user("x"))
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        good = openai.OpenAI(base_url=server.url, api_key="sk-serve-test", max_retries=0)
        assert good.chat.completions.create(model="scripted", messages=user("x")).choices[0].message.content


def test_concurrent_requests_are_batched_and_answered_in_their_own_order():
    model = ScriptedModel(fn=lambda r: r.prompt.upper(), delay=0.05)
    answers: dict[int, str] = {}
    with Server(model, port=0, max_batch=8) as server:
        client = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=30)

        def ask(i: int) -> None:
            out = client.chat.completions.create(model="scripted", messages=user(f"q{i}", png_url()))
            answers[i] = out.choices[0].message.content

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        sizes = list(server.batcher.batch_sizes)
    assert answers == {i: f"Q{i}" for i in range(16)}
    assert sum(sizes) == 16 and max(sizes) > 1 and max(sizes) <= 8


def test_parse_chat_request_joins_user_text_and_keeps_image_order():
    body = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": png_url((3, 4))}},
                    {"type": "text", "text": "a"},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": png_url((5, 6))},
                    {"type": "text", "text": "b"},
                ],
            },
        ],
        "stop": "\n",
        "max_completion_tokens": 9,
        "molmo_eval": {"answer_kind": "choice", "task": "mmbench"},
    }
    r = parse_chat_request(json.dumps(body).encode(), served="m", decode_pixels=True, uid="serve/0")
    assert r.prompt == "a\nb" and [im.size for im in r.images] == [(3, 4), (5, 6)]
    assert r.images[0].pixels is not None and r.images[0].pixels.shape == (4, 3, 3)
    assert (r.settings.max_new_tokens, r.settings.stop, r.settings.temperature) == (9, ("\n",), 0.0)
    assert (r.answer_kind, r.task, r.uid) == (AnswerKind.CHOICE, "mmbench", "serve/0")


# --- the `openai` model through `serve` == the model in-process --------------------------------


def colour_model() -> ScriptedModel:
    """Names the image's colour from its bytes; says 'purple' for 9-pixel-wide images."""

    def fn(r: Request) -> str:
        with PILImage.open(io.BytesIO(r.images[0].data)) as im:
            rgb, width = im.convert("RGB").getpixel((0, 0)), im.width
        name = min(COLOURS, key=lambda c: sum((a - b) ** 2 for a, b in zip(COLOURS[c], rgb, strict=True)))
        return "purple" if width == 9 else f"{name}."

    return ScriptedModel(fn=fn, fingerprint="colour-v1")


def test_openai_backend_through_serve_scores_like_the_model_in_process(toy_task, toy_root, tmp_path):
    pytest.importorskip("httpx")
    from molmo_eval.models.openai_api import OpenAIModel

    common = dict(data_root=toy_root, splits={"*": ("a", "b")}, bootstrap=200, seed=3, batch_size=16)
    local = evaluate(
        "toy", colour_model(), output_path=tmp_path / "local", cache_dir=tmp_path / "c1", **common
    )
    with (
        Server(colour_model(), port=0) as server,
        OpenAIModel(
            base_url=server.url,
            model="scripted",
            coordinate_space="pixels",
            prompt_style="default",
            max_concurrency="8",
        ) as remote,
    ):
        via = evaluate("toy", remote, output_path=tmp_path / "http", cache_dir=tmp_path / "c2", **common)
        assert remote.counters.requests == via.counts["model_calls"] > 0 and remote.counters.retries == 0
    # widths 8 + i % 5: one in five images is 9 wide and answered wrongly
    assert local.tasks["toy"].metrics["accuracy"].value == pytest.approx(0.8)
    assert via.tasks["toy"].metrics == local.tasks["toy"].metrics
    assert via.tasks["toy"].breakdowns == local.tasks["toy"].breakdowns
    from molmo_eval.run import records

    a = [(ln["uid"], ln["output"], ln["scores"]) for ln in records.iter_samples(tmp_path / "local")]
    b = [(ln["uid"], ln["output"], ln["scores"]) for ln in records.iter_samples(tmp_path / "http")]
    assert a == b and len(a) == 80


# --- the command line -------------------------------------------------------------------------


def test_cli_serve_starts_answers_and_stops_on_ctrl_c(tmp_path):
    script = tmp_path / "out.jsonl"
    script.write_text('{"id": "0", "text": "x"}\n')
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "molmo_eval",
            "serve",
            "--model",
            "scripted",
            "--model-args",
            f"outputs={script}",
            "--port",
            "0",
            "--served-model-name",
            "tiny",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # Ctrl-C reaches a process whose SIGINT is at its default; a test run started in the
        # background (`cmd &`, nohup) ignores SIGINT and would pass that on to the server
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        line = proc.stderr.readline()  # "serving scripted as `tiny` at http://127.0.0.1:PORT/v1 ..."
        assert "serving scripted as `tiny` at http://127.0.0.1:" in line, line
        url = line.split(" at ", 1)[1].split()[0]
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=10)
        assert [m.id for m in client.models.list().data] == ["tiny"]
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=30)  # generous: CI machines can be slow, a hang still fails
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"serve did not stop within 30 s of Ctrl-C; its stderr:\n{proc.stderr.read()[-3000:]}")
        assert code == 0, proc.stderr.read()[-3000:]
        assert "molmo-eval serve: stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_cli_serve_reports_bad_arguments(capsys):
    from molmo_eval.cli import main

    assert main(["serve", "--model", "no-such-model", "--port", "0"]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err
    assert main(["serve", "--model", "scripted", "--port", "0", "--api-key-env", "MOLMO_SURELY_UNSET"]) == 2
    assert "MOLMO_SURELY_UNSET" in capsys.readouterr().err


def test_listing_and_help_import_no_heavy_backend():
    code = (
        "import sys, molmo_eval.cli as c, molmo_eval.models.openai_api, molmo_eval.models.hf_molmo, "
        "molmo_eval.interop.serve; c.build_parser(); "
        "print(sorted(m for m in ('httpx', 'openai', 'torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_server_close_is_prompt():
    server = Server(ScriptedModel(fn=echo), port=0).start()
    t = time.monotonic()
    server.close()
    assert time.monotonic() - t < 2


# --- memory bounds: decoded pixels per request, requests in flight (issue 14) ----------------------


def bomb_png(width: int, height: int) -> bytes:
    """A few hundred bytes of PNG whose header declares width x height pixels (no real pixel data):
    the kind of small upload that would decode to gigabytes."""
    import struct
    import zlib

    buf = io.BytesIO()
    PILImage.new("RGB", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    return bytes(data)


def test_decoded_pixels_per_request_are_bounded_before_decoding(monkeypatch):
    from molmo_eval.interop import serve

    decoded = []
    real = serve.load_image
    monkeypatch.setattr(serve, "load_image", lambda ref, decode: decoded.append(1) or real(ref, decode))
    url = "data:image/png;base64," + base64.b64encode(bomb_png(7900, 7900)).decode()
    model = ScriptedModel(fn=echo)
    model.needs_pixels = True
    with Server(model, port=0) as server:
        body = json.dumps({"model": "scripted", "messages": user("four huge images", *[url] * 4)}).encode()
        status, answer = raw(server, "POST", "/v1/chat/completions", body)
        assert status == 413 and answer["error"]["code"] == "request_too_large"
        assert decoded == []  # refused from the headers: nothing was decoded
        small = json.dumps({"model": "scripted", "messages": user("ok", png_url((20, 10)))}).encode()
        assert raw(server, "POST", "/v1/chat/completions", small)[0] == 200
    with Server(ScriptedModel(fn=echo), port=0, max_request_pixels=299) as server:
        two = json.dumps({"model": "scripted", "messages": user("x", png_url((15, 10)), png_url((15, 10)))})
        assert raw(server, "POST", "/v1/chat/completions", two.encode())[0] == 413  # 150 + 150 px > 299
        one = json.dumps({"model": "scripted", "messages": user("x", png_url((15, 10)))})
        assert raw(server, "POST", "/v1/chat/completions", one.encode())[0] == 200


def test_the_pixel_bound_holds_for_streamed_requests_and_system_messages_carry_no_images(monkeypatch):
    """issue 15's stream=true and system messages go through issue 14's pixel budget: a streamed request
    of declared-huge images is a 413 before anything is decoded, never an event stream."""
    from molmo_eval.interop import serve

    decoded = []
    real = serve.load_image
    monkeypatch.setattr(serve, "load_image", lambda ref, decode: decoded.append(1) or real(ref, decode))
    url = "data:image/png;base64," + base64.b64encode(bomb_png(7900, 7900)).decode()
    with Server(ScriptedModel(fn=echo), port=0) as server:
        msgs = [{"role": "system", "content": "be brief"}, *user("four huge images", *[url] * 4)]
        body = json.dumps({"model": "scripted", "messages": msgs, "stream": True}).encode()
        status, answer = raw(server, "POST", "/v1/chat/completions", body)
        assert status == 413 and answer["error"]["code"] == "request_too_large" and decoded == []
        sys_image = [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": png_url()}}]},
                     *user("x")]
        status, answer = raw(server, "POST", "/v1/chat/completions",
                             json.dumps({"model": "scripted", "messages": sys_image}).encode())
        assert status == 400 and "text only" in answer["error"]["message"] and decoded == []


def test_requests_beyond_the_in_flight_limit_get_503_with_retry_after():
    entered, release = threading.Event(), threading.Event()

    def slow(r):
        entered.set()
        release.wait(10)
        return "done"

    with Server(ScriptedModel(fn=slow), port=0, max_in_flight=1) as server:
        body = json.dumps({"model": "scripted", "messages": user("x")}).encode()
        first: list = []
        t = threading.Thread(target=lambda: first.append(raw(server, "POST", "/v1/chat/completions", body)))
        t.start()
        assert entered.wait(10)  # the first request holds the only slot
        host, port = server.httpd.server_address[:2]
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            conn.request("POST", "/v1/chat/completions", body=body)
            resp = conn.getresponse()
            assert resp.status == 503 and resp.getheader("Retry-After") == "1"
            assert json.loads(resp.read())["error"]["code"] == "server_busy"
        finally:
            conn.close()
        release.set()
        t.join(10)
        assert first[0][0] == 200
        assert raw(server, "POST", "/v1/chat/completions", body)[0] == 200  # the slot is free again


# --- the `openai` model reads what the server advertises ----------------------------------------


def bins_model() -> ScriptedModel:
    """Writes the reference model's point tokens (bins), at a place that depends on the prompt only."""
    import zlib

    def fn(r: Request) -> str:
        h = zlib.crc32(r.prompt.encode())
        return f"<point> <x_{h % 100}> <y_{h // 100 % 100}>"

    return ScriptedModel(fn=fn, coord_space="bins", prompt_style="molmo", fingerprint="bins-v1")


def test_openai_model_follows_the_coordinate_space_and_prompt_style_the_server_advertises(caplog):
    pytest.importorskip("httpx")
    from molmo_eval.core.types import CoordSpace
    from molmo_eval.models.openai_api import OpenAIModel

    with Server(bins_model(), port=0) as server:
        assert OpenAIModel(base_url=server.url, model="scripted").coord_space is CoordSpace.BINS
        with caplog.at_level("WARNING", logger="molmo_eval.models.openai_api"):
            mine = OpenAIModel(base_url=server.url, model="scripted", coordinate_space="percent",
                               prompt_style="default")
        assert mine.coord_space is CoordSpace.PERCENT and mine.prompt_style == "default"  # the user's word
        said = " ".join(r.getMessage() for r in caplog.records)
        assert "coordinate_space=percent contradicts the server, which advertises coord_space 'bins'" in said
        assert "prompt_style=default contradicts the server, which advertises prompt_style 'molmo'" in said
        caplog.clear()
        quiet = OpenAIModel(base_url=server.url, model="scripted", discover="false")
        assert quiet.coord_space is CoordSpace.PERCENT and not caplog.records  # Molmo's default, not asked
    with Server(ScriptedModel(fn=echo, coord_space="thousand", prompt_style="default"), port=0) as server:
        other = OpenAIModel(base_url=server.url, model="scripted")
        assert (other.coord_space, other.prompt_style) == (CoordSpace.THOUSAND, "default")
    # a server that advertises nothing (or cannot be reached) leaves Molmo's defaults
    gone = OpenAIModel(base_url="http://127.0.0.1:9/v1", model="x", timeout="2")
    assert (gone.coord_space, gone.prompt_style) == (CoordSpace.PERCENT, "molmo")


def test_refcoco_through_serve_parses_points_in_the_advertised_space(tmp_path):
    """The issue's case: the served model writes bins; read as percent, every point moved."""
    pytest.importorskip("httpx")
    from molmo_eval.data.embedded import default_data_root
    from molmo_eval.models.openai_api import OpenAIModel
    from molmo_eval.run import records

    common = dict(data_root=default_data_root(), limit=30, bootstrap=0, use_cache=False)
    local = evaluate("refcoco", bins_model(), output_path=tmp_path / "local", **common)
    with Server(bins_model(), port=0) as server, OpenAIModel(base_url=server.url, model="scripted") as remote:
        via = evaluate("refcoco", remote, output_path=tmp_path / "http", **common)
    assert via.model.coord_space == "bins"
    a = [(ln["uid"], ln["output"]["text"], ln["answer"]) for ln in records.iter_samples(tmp_path / "local")]
    b = [(ln["uid"], ln["output"]["text"], ln["answer"]) for ln in records.iter_samples(tmp_path / "http")]
    assert a == b and len(a) == via.tasks["refcoco"].n == 90  # 30 of each default split
    assert via.tasks["refcoco"].to_json()["metrics"] == local.tasks["refcoco"].to_json()["metrics"]  # NaN-safe
