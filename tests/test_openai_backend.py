"""The `openai` model: settings, pure helpers, and fault injection against a loopback stub server.

The stub answers each toy image with its true colour, after serving the faults scripted for that
image (HTTP 500/503/429/400, a stall past the client's time-out, a dropped connection, malformed
JSON). Backoff is set to milliseconds, so the whole file runs in a few seconds.
"""

from __future__ import annotations

import base64
import io
import json
import random
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip("httpx")

from PIL import Image as PILImage  # noqa: E402
from toy import COLOURS  # noqa: E402

from molmo_eval import evaluate  # noqa: E402
from molmo_eval.core import registry  # noqa: E402
from molmo_eval.core.errors import ConfigError  # noqa: E402
from molmo_eval.core.types import AnswerKind, CoordSpace, Generation, GenerationSettings, ImageRef, Request
from molmo_eval.data.images import load_image  # noqa: E402
from molmo_eval.models.openai_api import (  # noqa: E402
    ClientSettings,
    Fault,
    OpenAIModel,
    backoff_delay,
    data_url,
    http_fault,
    parse_completion,
    parse_settings,
)
from molmo_eval.run import records  # noqa: E402

FAST = dict(
    backoff="0.001", max_backoff="0.005", timeout="0.5", prompt_style="default", coordinate_space="pixels"
)


# --- a scripted loopback server ---------------------------------------------------------------


def image_key(body: dict) -> str:
    """'<width>-<colour>' of the request's image: unique among the first 20 toy samples."""
    url = body["messages"][0]["content"][0]["image_url"]["url"]
    with PILImage.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as im:
        rgb = im.convert("RGB").getpixel((0, 0))
        colour = min(COLOURS, key=lambda c: sum((a - b) ** 2 for a, b in zip(COLOURS[c], rgb, strict=True)))
        return f"{im.width}-{colour}"


def completion(text: str) -> bytes:
    return json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "stub",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
        }
    ).encode()


class FaultServer:
    """Serves, for each image key, the faults in ``plan[key]`` (one per attempt), then its colour."""

    def __init__(
        self, plan: dict[str, list[str]] | None = None, *, delay: float = 0.0, require_key: str | None = None
    ):
        self.plan = plan or {}
        self.delay, self.require_key = delay, require_key
        self.attempts: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()  # successful answers per key
        self.auth: list[str] = []
        self.in_flight = self.peak = 0
        self.lock = threading.Lock()
        self.release = threading.Event()  # ends stalls at teardown
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.handle(self, body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

            def handle_error(self, request, client_address):  # broken pipes after stalls: expected
                pass

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def handle(self, h: BaseHTTPRequestHandler, body: dict) -> None:
        key = image_key(body)
        with self.lock:
            n = self.attempts[key]
            self.attempts[key] += 1
            self.auth.append(h.headers.get("Authorization", ""))
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            if (
                self.require_key is not None
                and h.headers.get("Authorization") != f"Bearer {self.require_key}"
            ):
                return self.send(h, 401, json.dumps({"error": {"message": "bad key"}}).encode())
            faults = self.plan.get(key, [])
            if n < len(faults):
                return self.fault(h, faults[n])
            time.sleep(self.delay)
            with self.lock:
                self.answered[key] += 1
            self.send(h, 200, completion(key.split("-")[1]))
        finally:
            with self.lock:
                self.in_flight -= 1

    def fault(self, h: BaseHTTPRequestHandler, kind: str) -> None:
        error = json.dumps({"error": {"message": f"injected {kind}", "type": "server_error"}}).encode()
        if kind in ("500", "400"):
            self.send(h, int(kind), error)
        elif kind == "429":
            self.send(h, 429, error, {"Retry-After": "0"})
        elif kind == "503-html":
            self.send(h, 503, b"<html>Service Unavailable</html>", {"Content-Type": "text/html"})
        elif kind == "malformed":
            self.send(h, 200, b'{"choices": [{"message": {"content": "trunc')
        elif kind == "empty-choices":
            self.send(h, 200, b'{"choices": []}')
        elif kind == "stall":  # past the client's time-out, then hang up
            self.release.wait(3.0)
            h.close_connection = True
        elif kind == "drop":  # close without an answer
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
        else:
            raise AssertionError(kind)

    @staticmethod
    def send(h, status: int, data: bytes, headers: dict | None = None) -> None:
        h.send_response(status)
        for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)


def toy_key(i: int) -> str:
    """The image key of toy sample i (see tests/toy.py: width 8 + i % 5, colours in sorted order)."""
    return f"{8 + i % 5}-{sorted(COLOURS)[i % 4]}"


# --- fault injection end to end ---------------------------------------------------------------

PLAN_BY_SAMPLE = {
    0: ["500"],
    1: ["429"],
    2: ["stall"],
    3: ["drop"],
    4: ["malformed"],
    5: ["500", "503-html"],
    6: ["empty-choices", "429", "drop"],
    7: ["500"] * 10,  # still failing after 1 + max_retries attempts
    8: ["400"],  # not retried
    9: ["malformed"] * 10,
}


def test_faults_are_retried_counted_and_recorded_and_a_rerun_fills_only_the_gaps(
    toy_task, toy_root, tmp_path
):
    assert len({toy_key(i) for i in range(20)}) == 20  # one image per sample in the first 20
    plan = {toy_key(i): faults for i, faults in PLAN_BY_SAMPLE.items()}
    common = dict(data_root=toy_root, limit=20, cache_dir=tmp_path / "cache", bootstrap=0, batch_size=20)
    with FaultServer(plan) as server:
        model = OpenAIModel(
            base_url=server.url,
            model="stub",
            max_retries="3",
            timeout="0.3",
            **{k: v for k, v in FAST.items() if k != "timeout"},
        )
        rec = evaluate("toy", model, output_path=tmp_path / "r1", **common)
        # by hand from PLAN_BY_SAMPLE and max_retries=3 (4 attempts at most, 400 never retried):
        # retries 1+1+1+1+1+2+3 (samples 0-6) + 3 (7) + 0 (8) + 3 (9) = 16; attempts = 20 + 16
        assert model.counters.snapshot() == {
            "requests": 20,
            "attempts": 36,
            "retries": 16,
            "failures": 3,
            "fault_connection": 2,
            "fault_http_400": 1,
            "fault_http_429": 2,
            "fault_http_500": 6,
            "fault_http_503": 1,
            "fault_malformed": 6,
            "fault_timeout": 1,
        }
        lines = list(records.iter_samples(tmp_path / "r1"))
        assert [ln["uid"] for ln in lines] == [f"toy/a/{i}" for i in range(20)]  # none lost or duplicated
        failed = {int(ln["id"]): ln["error"] for ln in lines if ln["error"]}
        assert set(failed) == {7, 8, 9}
        assert "HTTP 500" in failed[7] and "after 4 attempts" in failed[7]
        assert "HTTP 400" in failed[8] and "not retried" in failed[8]
        assert "malformed" in failed[9]
        for ln in lines:
            if not ln["error"]:
                assert ln["output"]["text"] == toy_key(int(ln["id"])).split("-")[1]
        assert rec.n_failed == 3 and rec.tasks["toy"].n_failed == 3
        assert rec.tasks["toy"].metrics["accuracy"].value == pytest.approx(17 / 20)
        assert all(server.answered[toy_key(i)] == 1 for i in range(20) if i not in (7, 8, 9))
        model.close()

        # the same server now answers everything: the re-run sends only the three failed samples
        server.plan = {}
        before = sum(server.attempts.values())
        again = OpenAIModel(base_url=server.url, model="stub", **FAST)
        rec2 = evaluate("toy", again, output_path=tmp_path / "r2", **common)
        assert rec2.counts["model_calls"] == 3 and rec2.counts["cache_hits"] == 17
        assert sum(server.attempts.values()) - before == 3
        assert {k for k in server.answered if server.answered[k]} == {toy_key(i) for i in range(20)}
        assert rec2.n_failed == 0 and rec2.tasks["toy"].metrics["accuracy"].value == 1.0
        assert again.counters.snapshot() == {"requests": 3, "attempts": 3, "retries": 0, "failures": 0}
        again.close()


def test_concurrency_is_bounded_and_order_kept():
    reqs = [_request(i) for i in range(24)]
    with (
        FaultServer(delay=0.03) as server,
        OpenAIModel(base_url=server.url, model="stub", max_concurrency="6", **FAST) as model,
    ):
        gens = model.generate(reqs)
    assert [g.text for g in gens] == [toy_key(i).split("-")[1] for i in range(24)]
    assert 2 <= server.peak <= 6


def test_bad_credentials_stop_the_run_and_the_key_is_never_written(toy_task, toy_root, tmp_path, monkeypatch):
    secret = "sk-test-" + "7f3a9c2e1b5d"
    monkeypatch.setenv("MOLMO_TEST_KEY", secret)
    monkeypatch.setenv("MOLMO_WRONG_KEY", "sk-wrong")
    own = "openai" not in registry.model_names()
    if own:
        registry.register_model("openai", OpenAIModel)
    try:
        with FaultServer(require_key=secret) as server:
            args = dict(base_url=server.url, model="stub", api_key_env="MOLMO_TEST_KEY", **FAST)
            rec = evaluate(
                "toy",
                "openai",
                model_args=args,
                data_root=toy_root,
                limit=6,
                bootstrap=0,
                output_path=tmp_path / "run",
                cache_dir=tmp_path / "cache",
            )
            assert rec.n_failed == 0 and set(server.auth) == {f"Bearer {secret}"}
            assert rec.model.args["api_key_env"] == "MOLMO_TEST_KEY"
            with pytest.raises(ConfigError, match="HTTP 401.*api_key_env"):
                evaluate(
                    "toy",
                    "openai",
                    model_args={**args, "api_key_env": "MOLMO_WRONG_KEY"},
                    data_root=toy_root,
                    limit=6,
                    bootstrap=0,
                    use_cache=False,
                    output_path=tmp_path / "x",
                )
    finally:
        if own:
            registry.unregister(registry.MODEL_GROUP, "openai")
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "results.json" for p in written) and any(p.suffix == ".sqlite" for p in written)
    for p in written:
        assert secret.encode() not in p.read_bytes(), p
    model = OpenAIModel(base_url="http://127.0.0.1:9/v1", model="m", api_key_env="MOLMO_TEST_KEY")
    assert secret not in model.fingerprint and secret not in repr(model)


def _request(i: int) -> Request:
    buf = io.BytesIO()
    PILImage.new("RGB", (8 + i % 5, 8), COLOURS[sorted(COLOURS)[i % 4]]).save(buf, format="PNG")
    return Request(
        uid=f"t/a/{i}",
        prompt="What colour?",
        images=(load_image(ImageRef(data=buf.getvalue()), False),),
        settings=GenerationSettings(),
        answer_kind=AnswerKind.TEXT,
    )


# --- settings ---------------------------------------------------------------------------------


def test_settings_defaults_and_normalisation():
    s = parse_settings({"base_url": "http://127.0.0.1:8000", "model": "allenai/Molmo2-8B"})
    assert s.base_url == "http://127.0.0.1:8000/v1" and s.url == "http://127.0.0.1:8000/v1/chat/completions"
    assert s.coord_space is CoordSpace.PERCENT and s.prompt_style == "molmo"  # Molmo's conventions
    s = parse_settings(
        {
            "base_url": "https://h/v1/",
            "model": "m",
            "coordinate_space": "thousand",
            "max_concurrency": "64",
            "timeout": "2.5",
            "max_retries": "0",
            "send_hints": "true",
        }
    )
    assert (s.base_url, s.coord_space, s.max_concurrency, s.timeout, s.max_retries, s.send_hints) == (
        "https://h/v1",
        CoordSpace.THOUSAND,
        64,
        2.5,
        0,
        True,
    )


@pytest.mark.parametrize(
    "args, fragment",
    [
        ({"model": "m"}, "base_url=...: required"),
        ({"base_url": "ftp://h", "model": "m"}, "expected an http(s) URL"),
        ({"base_url": "http://h"}, "model=...: required"),
        ({"base_url": "http://h", "model": "m", "coordinate_space": "inches"}, "coordinate_space='inches'"),
        ({"base_url": "http://h", "model": "m", "max_concurrency": "0"}, "max_concurrency='0'"),
        ({"base_url": "http://h", "model": "m", "timeout": "soon"}, "timeout='soon'"),
        (
            {"base_url": "http://h", "model": "m", "api_key": "sk-1"},
            "keys are never given on the command line",
        ),
        ({"base_url": "http://h", "model": "m", "api_key_env": "MOLMO_SURELY_UNSET_VAR"}, "is not set"),
        (
            {"base_url": "http://h", "model": "m", "temprature": "0"},
            "unknown argument(s) for model 'openai': temprature",
        ),
    ],
)
def test_settings_errors(args, fragment):
    with pytest.raises(ConfigError) as e:
        parse_settings(args)
    assert fragment in str(e.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as e:
        parse_settings({"base_url": "nope", "max_retries": "-1"})
    assert len(e.value.problems) == 3  # base_url, model, max_retries


def test_fingerprint_names_server_and_model_not_the_operational_settings():
    def fp(**kw):
        return OpenAIModel(**{"base_url": "http://127.0.0.1:8000/v1", "model": "a", **kw}).fingerprint

    base = fp()
    assert fp(max_concurrency="64", timeout="9", max_retries="0", coordinate_space="pixels") == base
    assert len({base, fp(model="b"), fp(base_url="http://127.0.0.1:8001/v1"), fp(send_hints="true")}) == 4
    assert fp(fingerprint="molmo2-8b-bf16") == "molmo2-8b-bf16"


# --- pure helpers -----------------------------------------------------------------------------


def test_backoff_grows_exponentially_with_jitter_and_caps():
    rng = random.Random(0)
    for retry, full in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (8, 10.0), (30, 10.0)]:
        for _ in range(50):
            d = backoff_delay(retry, 0.5, 10.0, rng)
            assert full / 2 <= d <= full
    assert backoff_delay(1, 0.5, 10.0, rng, retry_after=3.0) == 3.0  # the server's Retry-After wins
    assert backoff_delay(1, 0.5, 10.0, rng, retry_after=60.0) == 10.0  # ... up to the cap
    delays = {round(backoff_delay(3, 1.0, 100.0, rng), 6) for _ in range(20)}
    assert len(delays) > 10  # jittered: clients that failed together do not retry together


@pytest.mark.parametrize(
    "status, body, headers, retryable, fatal, reason",
    [
        (500, b'{"error": {"message": "boom"}}', {}, True, False, "http_500"),
        (503, b"<html>down</html>", {}, True, False, "http_503"),
        (429, b"{}", {"retry-after": "2"}, True, False, "http_429"),
        (408, b"", {}, True, False, "http_408"),
        (400, b'{"error": {"message": "image too large"}}', {}, False, False, "http_400"),
        (422, b"{}", {}, False, False, "http_422"),
        (401, b'{"error": "no"}', {}, False, True, "http_401"),
        (404, b'{"error": {"message": "model not found"}}', {}, False, True, "http_404"),
    ],
)
def test_http_fault_policy(status, body, headers, retryable, fatal, reason):
    f = http_fault(status, body, headers)
    assert (f.retryable, f.fatal, f.reason) == (retryable, fatal, reason)
    assert f.message.startswith(f"HTTP {status}")
    if headers:
        assert f.retry_after == 2.0


@pytest.mark.parametrize(
    "body, expected",
    [
        (completion("yes"), Generation(text="yes")),
        (
            json.dumps(
                {
                    "choices": [
                        {
                            "message": {
                                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
                            }
                        }
                    ]
                }
            ).encode(),
            Generation(text="ab"),
        ),
        (
            json.dumps(
                {"choices": [{"message": {"content": "p", "molmo_eval": {"points": [[1, 2]]}}}]}
            ).encode(),
            Generation(text="p", points=((1.0, 2.0),)),
        ),
    ],
)
def test_parse_completion(body, expected):
    assert parse_completion(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not json",
        b'{"choices": []}',
        b'{"choices": [{"message": {}}]}',
        b'{"choices": [{"message": {"content": null}}]}',
        b"[1, 2]",
    ],
)
def test_malformed_completions_are_retryable_faults(body):
    out = parse_completion(body)
    assert isinstance(out, Fault) and out.reason == "malformed" and out.retryable


def test_images_travel_as_data_urls_with_their_bytes(tmp_path: Path):
    buf = io.BytesIO()
    PILImage.new("RGB", (5, 3), (9, 8, 7)).save(buf, format="JPEG")
    im = load_image(ImageRef(data=buf.getvalue()), False)
    url = data_url(im)
    assert url.startswith("data:image/jpeg;base64,") and base64.b64decode(url.split(",")[1]) == buf.getvalue()
    tif = io.BytesIO()
    PILImage.new("RGB", (4, 2), (200, 100, 50)).save(tif, format="TIFF")  # not every server reads TIFF
    url = data_url(load_image(ImageRef(data=tif.getvalue()), False))
    assert url.startswith("data:image/png;base64,")
    with PILImage.open(io.BytesIO(base64.b64decode(url.split(",")[1]))) as back:
        assert back.size == (4, 2) and back.convert("RGB").getpixel((3, 1)) == (200, 100, 50)


def test_request_body_puts_images_first_and_hints_only_when_asked():
    from molmo_eval.models.openai_api import chat_body

    r = _request(2)
    body = chat_body(r, "m", hints=False)
    parts = body["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["image_url", "text"] and parts[1]["text"] == "What colour?"
    assert (body["model"], body["max_tokens"], body["temperature"]) == ("m", 64, 0.0)
    assert "molmo_eval" not in body and "stop" not in body  # plain OpenAI fields unless asked
    assert chat_body(r, "m", hints=True)["molmo_eval"] == {"answer_kind": "text", "task": ""}
    assert OpenAIModel(base_url="http://127.0.0.1:9/v1", model="m").generate([]) == []


def test_settings_dataclass_is_frozen():
    s = ClientSettings(base_url="http://h/v1", model="m")
    with pytest.raises(AttributeError):
        s.model = "x"  # type: ignore[misc]
