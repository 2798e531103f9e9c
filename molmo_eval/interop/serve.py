"""`molmo-eval serve`: any registered model behind an OpenAI-compatible HTTP API (DESIGN §8).

It sits beside the runner, not inside the pipeline: a chat-completions request becomes one
`Request` (images from base64 data URLs, decoded with the harness's size caps), the model's
`generate` answers it, and the `Generation` goes back as a chat completion. One worker thread owns
the model; requests that arrive while it is busy are batched into its next `generate` call, so a
model that is not thread-safe is safe here and concurrent clients get batched generation.

What real OpenAI clients send and read (as vLLM serves them): ``system`` (and ``developer``) messages,
whose text goes before the user text in the one prompt; ``usage`` (``prompt_tokens``,
``completion_tokens``, ``total_tokens``) in every completion, counted by the model's own
``count_tokens(text)`` when it has one, else approximately (words and punctuation marks, images not
counted); and ``stream=true``: the completion as server-sent events of ``chat.completion.chunk``
objects (role, content, finish reason, then a usage chunk when ``stream_options.include_usage``),
ended by ``data: [DONE]``. Generation finishes before the first event, so a failed generation is
still an HTTP error, not a broken stream.

Endpoints: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /health``. Malformed requests get
HTTP 400 (404 for an unknown model or path, 413 for a too-large body) with OpenAI's error JSON
``{"error": {"message", "type", "param", "code"}}``; a generation that failed gets 500, which
clients such as the `openai` model retry. It binds to 127.0.0.1 by default and never fetches
remote image URLs. With ``api_key_env`` it requires ``Authorization: Bearer <key>``.

Memory is bounded per request and in total: a body is at most `MAX_BODY_BYTES`; the images of one
request may decode to at most ``max_request_pixels`` pixels together (sizes are read from the image
headers before anything is decoded, so a small PNG that would decode to gigabytes costs nothing;
413 beyond); and at most ``max_in_flight`` chat requests are read, decoded and answered at once
(503 with ``Retry-After`` beyond, which clients such as the `openai` model retry).

A served request carries no sample id: the model sees ``uid="serve/<n>"``, answer kind TEXT and
no task, unless the client sends the extension field ``"molmo_eval": {"answer_kind", "task"}``
(the `openai` model does with ``send_hints=true``). Models whose outputs are keyed by sample id
(``ScriptedModel`` with a JSONL file) therefore cannot be served meaningfully; serve a model that
answers from the prompt and images.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import itertools
import json
import logging
import queue
import re
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from molmo_eval.core.errors import DataError
from molmo_eval.core.model import Model
from molmo_eval.core.types import AnswerKind, Generation, GenerationSettings, Image, ImageRef, Request
from molmo_eval.data.images import MAX_IMAGE_BYTES, load_image

log = logging.getLogger(__name__)

MAX_IMAGES = 16  # per request
MAX_BODY_BYTES = MAX_IMAGES * (MAX_IMAGE_BYTES * 4 // 3 + 1024)
MAX_TOKENS = 32_768
MAX_REQUEST_PIXELS = 64_000_000  # decoded pixels of all images of one request (~190 MB as RGB)
MAX_IN_FLIGHT = 32  # chat requests being read, decoded or answered at once


class ApiError(Exception):
    """An HTTP error answer in OpenAI's format."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


# --- request parsing (pure) -------------------------------------------------------------------


def decode_data_url(url: str, *, decode_pixels: bool, param: str) -> Image:
    """A ``data:image/...;base64,...`` URL -> an Image, with the harness's byte and pixel caps."""
    return _load(data_url_bytes(url, param=param), decode_pixels, param)


def data_url_bytes(url: str, *, param: str) -> bytes:
    """The encoded image bytes of a ``data:image/...;base64,...`` URL."""
    if not url.startswith("data:"):
        raise ApiError(
            400,
            "only base64 data URLs are accepted for images (data:image/png;base64,...); "
            "this server never fetches remote URLs",
            param=param,
            code="invalid_image_url",
        )
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise ApiError(
            400,
            "image data URL is not base64 (expected data:<mime>;base64,<data>)",
            param=param,
            code="invalid_image_url",
        )
    if len(payload) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise ApiError(
            413, f"image is larger than {MAX_IMAGE_BYTES} bytes", param=param, code="image_too_large"
        )
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ApiError(
            400, f"image data URL has invalid base64 ({e})", param=param, code="invalid_image_url"
        ) from None
    return raw


def _load(raw: bytes, decode_pixels: bool, param: str) -> Image:
    try:
        return load_image(ImageRef(data=raw), decode_pixels)
    except DataError as e:
        raise ApiError(400, f"unreadable image: {e}", param=param, code="invalid_image") from None


def check_pixel_budget(images: list[tuple[bytes, str]], max_pixels: int) -> None:
    """Refuse (413) a request whose images would decode to more than ``max_pixels`` pixels together,
    reading only their headers."""
    from PIL import Image as PILImage

    total = 0
    for raw, param in images:
        try:
            with PILImage.open(io.BytesIO(raw)) as im:
                w, h = im.size
        except Exception as e:  # PIL raises many types for what is not an image
            raise ApiError(400, f"unreadable image ({type(e).__name__}: {e})", param=param,
                           code="invalid_image") from None
        total += w * h
        if total > max_pixels:
            raise ApiError(413, f"the images of this request have more than {max_pixels} pixels together "
                                f"(the server's --max-request-pixels)", param=param, code="request_too_large")


def _content_parts(content: Any, i: int) -> tuple[list[str], list[tuple[bytes, str]]]:
    """Text parts and (encoded image bytes, param) of one message; images are decoded later, once
    the request's pixel budget is checked."""
    where = f"messages[{i}].content"
    if isinstance(content, str):
        return [content], []
    if not isinstance(content, list):
        raise ApiError(400, f"{where} must be a string or a list of content parts", param=where)
    texts: list[str] = []
    images: list[tuple[bytes, str]] = []
    for j, part in enumerate(content):
        p = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            if not isinstance(url, str):
                raise ApiError(400, f"{p}.image_url.url must be a string", param=f"{p}.image_url")
            images.append((data_url_bytes(url, param=f"{p}.image_url"), f"{p}.image_url"))
        else:
            raise ApiError(
                400,
                f"{p}: expected a content part of type 'text' (with a string 'text') or "
                f"'image_url', got {kind!r}",
                param=p,
            )
    return texts, images


def _settings(body: Mapping[str, Any]) -> GenerationSettings:
    default = GenerationSettings()
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is None:
        max_tokens = default.max_new_tokens
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= MAX_TOKENS:
        raise ApiError(400, f"max_tokens must be an integer in 1..{MAX_TOKENS}", param="max_tokens")
    temperature = body.get("temperature")
    temperature = 0.0 if temperature is None else temperature
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not 0 <= temperature <= 2
    ):
        raise ApiError(400, "temperature must be a number in 0..2", param="temperature")
    stop = body.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else stop
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop) or len(stop) > 4:
        raise ApiError(400, "stop must be a string or a list of at most 4 strings", param="stop")
    return GenerationSettings(max_new_tokens=max_tokens, temperature=float(temperature), stop=tuple(stop))


def parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"could not parse the JSON body ({e})") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def parse_chat_request(raw: bytes, *, served: str, decode_pixels: bool, uid: str,
                       max_pixels: int = MAX_REQUEST_PIXELS) -> Request:
    """A chat-completions body -> one Request (see `request_from_body`)."""
    return request_from_body(parse_body(raw), served=served, decode_pixels=decode_pixels, uid=uid,
                             max_pixels=max_pixels)


SYSTEM_ROLES = ("system", "developer")  # "developer" is OpenAI's newer name for system messages


def request_from_body(body: Mapping[str, Any], *, served: str, decode_pixels: bool, uid: str,
                      max_pixels: int = MAX_REQUEST_PIXELS) -> Request:
    """A chat-completions body -> one Request, or an ApiError naming the offending field.

    The harness's models answer one prompt: the text of system (developer) messages and then of user
    messages, joined with newlines, and the user messages' images in order. Assistant turns (a
    conversation) are refused. The images are decoded only once their sizes (read from their
    headers) fit ``max_pixels`` together (413 beyond)."""
    if not isinstance(body.get("model"), str):
        raise ApiError(400, "model is required (see GET /v1/models)", param="model")
    if body["model"] != served:
        raise ApiError(
            404,
            f"The model `{body.get('model')}` does not exist; this server serves `{served}`.",
            param="model",
            code="model_not_found",
        )
    if body.get("n", 1) != 1:
        raise ApiError(400, "only n=1 is supported", param="n")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list", param="messages")
    system: list[str] = []
    texts: list[str] = []
    raws: list[tuple[bytes, str]] = []
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("user", *SYSTEM_ROLES):
            raise ApiError(
                400,
                f"messages[{i}]: only 'system' and 'user' messages are supported (one prompt with its "
                f"images), got role {role!r}",
                param=f"messages[{i}].role",
            )
        t, ims = _content_parts(m.get("content"), i)
        if role in SYSTEM_ROLES:
            if ims:
                raise ApiError(400, f"messages[{i}]: a {role} message carries text only",
                               param=f"messages[{i}].content")
            system += t
        else:
            texts += t
            raws += ims
    if len(raws) > MAX_IMAGES:
        raise ApiError(400, f"at most {MAX_IMAGES} images per request", param="messages")
    check_pixel_budget(raws, max_pixels)
    images = [_load(data, decode_pixels, param) for data, param in raws]
    kind, task = _hints(body.get("molmo_eval"))
    return Request(
        uid=uid,
        prompt="\n".join(system + texts),
        images=tuple(images),
        settings=_settings(body),
        answer_kind=kind,
        task=task,
    )


def _hints(ext: Any) -> tuple[AnswerKind, str]:
    if ext is None:
        return AnswerKind.TEXT, ""
    try:
        return AnswerKind(ext.get("answer_kind", "text")), str(ext.get("task", ""))
    except (AttributeError, ValueError):
        raise ApiError(
            400,
            'molmo_eval must be {"answer_kind": one of '
            f'{", ".join(k.value for k in AnswerKind)}, "task": str}}',
            param="molmo_eval",
        ) from None


def stream_options(body: Mapping[str, Any]) -> tuple[bool, bool]:
    """(stream, include_usage) of a chat-completions body."""
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise ApiError(400, "stream must be true or false", param="stream")
    opts = body.get("stream_options")
    if opts is not None and (not isinstance(opts, dict) or not isinstance(opts.get("include_usage", False), bool)):
        raise ApiError(400, 'stream_options must be {"include_usage": true|false}', param="stream_options")
    if opts is not None and not stream:
        raise ApiError(400, "stream_options is only allowed with stream=true", param="stream_options")
    return bool(stream), bool((opts or {}).get("include_usage", False))


_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(model: Model, text: str) -> int:
    """The model's own count when it has ``count_tokens(text)``, else words and punctuation marks."""
    own = getattr(model, "count_tokens", None)
    return int(own(text)) if callable(own) else len(_TOKEN.findall(text))


def usage(model: Model, request: Request, gen: Generation) -> dict[str, int]:
    prompt, completion = count_tokens(model, request.prompt), count_tokens(model, gen.text)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion_body(gen: Generation, served: str, used: Mapping[str, int] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": gen.text}
    if gen.points is not None:
        message["molmo_eval"] = {"points": [list(p) for p in gen.points]}
    body: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": served,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }
    if used is not None:
        body["usage"] = dict(used)
    return body


def stream_chunks(gen: Generation, served: str, used: Mapping[str, int], include_usage: bool
                  ) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of one finished generation, in OpenAI's streaming order:
    the role, the content (with native points), the finish reason, then usage when asked for."""
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": served}
    content: dict[str, Any] = {"content": gen.text}
    if gen.points is not None:
        content["molmo_eval"] = {"points": [list(p) for p in gen.points]}
    deltas = [({"role": "assistant", "content": ""}, None), (content, None), ({}, "stop")]
    extra = {"usage": None} if include_usage else {}
    chunks = [{**head, "choices": [{"index": 0, "delta": d, "finish_reason": f}], **extra} for d, f in deltas]
    if include_usage:
        chunks.append({**head, "choices": [], "usage": dict(used)})
    return chunks


# --- batching ---------------------------------------------------------------------------------


@dataclass
class _Job:
    request: Request
    done: threading.Event = field(default_factory=threading.Event)
    result: Generation | None = None


class Batcher:
    """One worker thread owns the model. It takes the jobs waiting in the queue (up to
    ``max_batch``, waiting at most ``wait_s`` for more) and answers them with one ``generate``."""

    def __init__(self, model: Model, max_batch: int = 8, wait_s: float = 0.0):
        self.model, self.max_batch, self.wait_s = model, max_batch, wait_s
        self.batch_sizes: list[int] = []  # one entry per generate call (tests and logs read it)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._lock = threading.Lock()  # no job is queued behind the close sentinel
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="molmo-eval-serve-model", daemon=True)
        self._thread.start()

    def submit(self, request: Request) -> Generation:
        job = _Job(request)
        with self._lock:
            if self._closed:
                raise ApiError(503, "the server is shutting down", kind="server_error")
            self._queue.put(job)
        job.done.wait()
        assert job.result is not None
        return job.result

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout=30)

    def _work(self) -> None:
        from molmo_eval.run.runner import generate_safe

        while (job := self._queue.get()) is not None:
            jobs = [job]
            stop = self._gather(jobs)
            try:
                gens = generate_safe(self.model, [j.request for j in jobs])
            except Exception as e:  # a configuration error of the model: answer every job with it
                gens = [Generation(text="", error=f"{type(e).__name__}: {e}")] * len(jobs)
            self.batch_sizes.append(len(jobs))
            for j, g in zip(jobs, gens, strict=True):
                j.result = g
                j.done.set()
            if stop:
                break

    def _gather(self, jobs: list[_Job]) -> bool:
        """Add waiting jobs to ``jobs`` (waiting up to ``wait_s`` for more); True when the close
        sentinel was seen."""
        deadline = time.monotonic() + self.wait_s
        while len(jobs) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                return False
            if nxt is None:
                return True
            jobs.append(nxt)
        return False


# --- HTTP -------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall
    server_version = "molmo-eval-serve"
    timeout = 120  # an idle keep-alive connection is closed after this many seconds
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # request lines at debug level, never headers
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        app = self.server.app
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            if self._authorized():
                self._send(200, app.models_body())
        elif self.path.rstrip("/") == "/health":
            self._send(200, {"status": "ok"})
        else:
            self._send_error(ApiError(404, f"no route GET {self.path}", code="not_found"))

    def do_POST(self) -> None:
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._drain()
            self._send_error(ApiError(404, f"no route POST {self.path}", code="not_found"))
            return
        if not self._authorized():
            return
        app = self.server.app
        if not app.admit():  # too many requests in flight: refuse before reading the body
            self.close_connection = True
            self._send_error(ApiError(503, f"the server is answering {app.max_in_flight} requests already; "
                                           "retry later", code="server_busy", kind="server_error"),
                             retry_after=1)
            return
        try:
            raw = self._read_body()
            status, body = app.complete(raw)
        except ApiError as e:
            self._send_error(e)
            return
        except Exception as e:  # a bug, not the client's fault: answer instead of dropping the connection
            log.exception("chat completion failed")
            self._send_error(ApiError(500, f"{type(e).__name__}: {e}", kind="server_error"))
            return
        finally:
            app.release()
        if isinstance(body, list):
            self._send_events(body)
        else:
            self._send(status, body)

    def _authorized(self) -> bool:
        key = self.server.app.api_key
        if key is None:
            return True
        given = self.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
            return True
        self._drain()
        self._send_error(
            ApiError(401, "invalid or missing API key (Authorization: Bearer ...)", code="invalid_api_key")
        )
        return False

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            raise ApiError(411, "a Content-Length header is required")
        n = int(length)
        if n > MAX_BODY_BYTES:
            self.close_connection = True  # the unread body makes the connection unusable
            raise ApiError(413, f"request body of {n} bytes is larger than {MAX_BODY_BYTES}")
        return self.rfile.read(n)

    def _drain(self) -> None:
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) <= MAX_BODY_BYTES:
            self.rfile.read(int(length))
        elif length:
            self.close_connection = True

    def _send_events(self, chunks: list[dict[str, Any]]) -> None:
        """Server-sent events (``data: {json}``, then ``data: [DONE]``) in chunked transfer encoding, so
        the connection stays usable for the client's next request."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in [json.dumps(c) for c in chunks] + ["[DONE]"]:
            data = f"data: {event}\n\n".encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def _send_error(self, e: ApiError, retry_after: int | None = None) -> None:
        self._send(e.status, e.body(), retry_after)

    def _send(self, status: int, body: Mapping[str, Any], retry_after: int | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # listen backlog: the default 5 drops connects of concurrent clients
    app: App


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class App:
    """What the handlers call: request -> Request -> batcher -> completion body."""

    def __init__(self, model: Model, served: str, batcher: Batcher, api_key: str | None, *,
                 max_request_pixels: int = MAX_REQUEST_PIXELS, max_in_flight: int = MAX_IN_FLIGHT):
        self.model, self.served, self.batcher, self.api_key = model, served, batcher, api_key
        self._ids = itertools.count()
        self.created = int(time.time())
        self.max_request_pixels, self.max_in_flight = max_request_pixels, max_in_flight
        self._slots = threading.BoundedSemaphore(max_in_flight)

    def admit(self) -> bool:
        """Take a slot for one chat request (False at once when all ``max_in_flight`` are taken)."""
        return self._slots.acquire(blocking=False)

    def release(self) -> None:
        self._slots.release()

    def models_body(self) -> dict[str, Any]:
        m = self.model
        return {
            "object": "list",
            "data": [
                {
                    "id": self.served,
                    "object": "model",
                    "created": self.created,
                    "owned_by": "molmo-eval",
                    "molmo_eval": {
                        "model": m.name,
                        "fingerprint": m.fingerprint,
                        "coord_space": m.coord_space.value,
                        "prompt_style": m.prompt_style,
                    },
                }
            ],
        }

    def complete(self, raw: bytes) -> tuple[int, dict[str, Any] | list[dict[str, Any]]]:
        """(200, completion) or, for ``stream=true``, (200, the list of chunks to send as events)."""
        body = parse_body(raw)
        stream, include_usage = stream_options(body)  # checked before any image is decoded
        req = request_from_body(
            body, served=self.served, decode_pixels=self.model.needs_pixels, uid=f"serve/{next(self._ids)}",
            max_pixels=self.max_request_pixels,
        )
        gen = self.batcher.submit(req)
        if gen.error is not None:
            raise ApiError(
                500, f"generation failed: {gen.error}", code="generation_failed", kind="server_error"
            )
        used = usage(self.model, req, gen)
        if stream:
            return 200, stream_chunks(gen, self.served, used, include_usage)
        return 200, completion_body(gen, self.served, used)


class Server:
    """A running server: ``with Server(model, port=0) as s: ... s.url ...`` (port 0: any free port).

    `start` serves from a background thread; `serve_forever` from the calling thread."""

    def __init__(
        self,
        model: Model,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        served_name: str | None = None,
        max_batch: int = 8,
        batch_wait_s: float = 0.0,
        api_key: str | None = None,
        max_request_pixels: int = MAX_REQUEST_PIXELS,
        max_in_flight: int = MAX_IN_FLIGHT,
    ):
        self.batcher = Batcher(model, max_batch=max_batch, wait_s=batch_wait_s)
        self.app = App(model, served_name or model.name, self.batcher, api_key,
                       max_request_pixels=max_request_pixels, max_in_flight=max_in_flight)
        self.httpd = (_HTTPServer6 if ":" in host else _HTTPServer)((host, port), _Handler)
        self.httpd.app = self.app
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        addr = self.httpd.server_address
        host = addr[0].decode() if isinstance(addr[0], bytes) else str(addr[0])
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{addr[1]}/v1"

    def start(self) -> Server:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="molmo-eval-serve",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def close(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=10)
        self.httpd.server_close()
        self.batcher.close()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
