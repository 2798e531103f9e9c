"""The `openai` model: any OpenAI-compatible chat-completions server (vLLM, SGLang, TGI, OpenAI,
`molmo-eval serve`), at the Model.generate stage of the pipeline (DESIGN §3, §8).

Each Request becomes one ``POST {base_url}/chat/completions`` whose user message holds the images
as base64 data URLs, then the prompt text. A batch is sent concurrently (asyncio, at most
``max_concurrency`` requests in flight) over one keep-alive connection pool that lives as long as
the model. Every attempt has a total time limit (``timeout``); HTTP 408/409/429/5xx answers,
connection errors, time-outs and malformed bodies are retried up to ``max_retries`` times with
exponential backoff and jitter (a 429's ``Retry-After`` is honoured), then recorded as that
sample's failure (``Generation.error``). Failures are never cached, so a re-run sends exactly the
failed samples again. HTTP 401/403/404 stop the run with a ConfigError: no request can succeed.

When the model starts it reads the server's ``GET /v1/models``: a server that advertises how its model
writes points and which prompts it wants (`molmo-eval serve` does, as ``"molmo_eval": {"coord_space",
"prompt_style"}`` on the model's entry) sets ``coordinate_space`` and ``prompt_style`` unless they are
given; a given value that contradicts the server's is kept, with a warning that says so. Servers that
advertise nothing (vLLM, OpenAI) keep the defaults (Molmo's percent and prompts); ``discover=false``
skips the query.

The API key is read from the environment variable named by ``api_key_env`` and is never stored in
records, logs, the cache or the fingerprint. Other answers of the server that are not about the key
(400 for a too-large image, say) fail the one sample without retries.

    molmo-eval --model openai --tasks pointqa --batch-size 256 \\
        --model-args base_url=http://127.0.0.1:8000/v1,model=allenai/Molmo2-8B,max_concurrency=64
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import logging
import os
import random
import threading
from collections import Counter
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from molmo_eval.core.errors import ConfigError, MissingDependency
from molmo_eval.core.types import CoordSpace, Generation, Image, Request
from molmo_eval.core.version import __version__

T = TypeVar("T")
log = logging.getLogger(__name__)

COORD_ALIASES = {"molmo": CoordSpace.PERCENT}  # Molmo writes <point x="45.5" y="67.0"> in percent
RETRY_STATUS = frozenset({408, 409, 425, 429})  # plus every 5xx
FATAL_STATUS = frozenset({401, 403, 404})
# connections per httpx client: httpcore's pool bookkeeping grows with the square of its connections
# (~10 ms of CPU per request at 64 connections), so max_concurrency is spread over small pools
SHARD = 4
IMAGE_MIME = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif"}


@dataclass(frozen=True)
class ClientSettings:
    """Validated ``--model-args`` of the `openai` model."""

    base_url: str  # ends in /v1 (added when the URL has no path)
    model: str  # the server's model name
    api_key_env: str | None = None
    coord_space: CoordSpace = CoordSpace.PERCENT
    prompt_style: str = "molmo"
    max_concurrency: int = 16
    timeout: float = 120.0  # seconds per attempt, connect to last byte
    max_retries: int = 4
    backoff: float = 0.5  # delay before the first retry (s), doubled each retry, jittered
    max_backoff: float = 30.0
    send_hints: bool = False  # add {"molmo_eval": {answer_kind, task}} (read by `molmo-eval serve`)
    fingerprint: str | None = None  # share a cache across servers that serve the same weights
    discover: bool = True  # read the coordinate space and prompt style the server advertises
    given: frozenset[str] = frozenset()  # which of coordinate_space / prompt_style the user set

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


_INT_ARGS = {"max_concurrency": 1, "max_retries": 0}
_FLOAT_ARGS = {"timeout": 1e-3, "backoff": 0.0, "max_backoff": 0.0}
_ARGS = (
    "base_url",
    "model",
    "api_key_env",
    "coordinate_space",
    "prompt_style",
    "send_hints",
    "fingerprint",
    "discover",
    *_INT_ARGS,
    *_FLOAT_ARGS,
)


def parse_settings(args: Mapping[str, Any]) -> ClientSettings:
    """``--model-args`` strings -> ClientSettings; every problem is reported at once."""
    problems: list[str] = []
    args = {k: v for k, v in args.items() if v is not None and k != "device"}
    if "api_key" in args:
        problems.append(
            "--model-args api_key=...: keys are never given on the command line; put the key in an "
            "environment variable and pass its name, e.g. api_key_env=OPENAI_API_KEY"
        )
    unknown = sorted(set(args) - set(_ARGS) - {"api_key"})
    if unknown:
        problems.append(
            f"--model-args: unknown argument(s) for model 'openai': {', '.join(unknown)} "
            f"(expected some of {', '.join(_ARGS)})"
        )
    kw: dict[str, Any] = {}
    base_url = str(args.get("base_url", "")).strip()
    parts = urlsplit(base_url)
    if not base_url:
        problems.append("--model-args base_url=...: required, e.g. base_url=http://127.0.0.1:8000/v1")
    elif parts.scheme not in ("http", "https") or not parts.netloc:
        problems.append(
            f"--model-args base_url={base_url!r}: expected an http(s) URL such as http://host:8000/v1"
        )
    kw["base_url"] = base_url.rstrip("/") + ("/v1" if parts.path in ("", "/") else "")
    kw["model"] = str(args.get("model", "")).strip()
    if not kw["model"]:
        problems.append("--model-args model=...: required (the name the server serves, see its /v1/models)")
    space = str(args.get("coordinate_space", "molmo"))
    try:
        kw["coord_space"] = COORD_ALIASES.get(space) or CoordSpace(space)
    except ValueError:
        problems.append(
            f"--model-args coordinate_space={space!r}: expected one of molmo, "
            f"{', '.join(c.value for c in CoordSpace)}"
        )
    for name, lo in {**_INT_ARGS, **_FLOAT_ARGS}.items():
        if name in args:
            cast = int if name in _INT_ARGS else float
            try:
                kw[name] = cast(args[name])
                if kw[name] < lo:
                    raise ValueError
            except (TypeError, ValueError):
                problems.append(f"--model-args {name}={args[name]!r}: expected a {cast.__name__} >= {lo}")
    for name, default in (("send_hints", "false"), ("discover", "true")):
        flag = str(args.get(name, default)).lower()
        if flag not in ("true", "false", "1", "0", "yes", "no"):
            problems.append(f"--model-args {name}={flag!r}: expected true or false")
        kw[name] = flag in ("true", "1", "yes")
    kw["given"] = frozenset(k for k in ("coordinate_space", "prompt_style") if args.get(k))
    for name in ("api_key_env", "prompt_style", "fingerprint"):
        if args.get(name):
            kw[name] = str(args[name])
    if kw.get("api_key_env") and kw["api_key_env"] not in os.environ:
        problems.append(
            f"--model-args api_key_env={kw['api_key_env']}: the environment variable "
            f"{kw['api_key_env']} is not set"
        )
    if problems:
        raise ConfigError(problems)
    return ClientSettings(**kw)


# --- pure helpers -------------------------------------------------------------------------------


def advertised(models_body: Any, model: str) -> dict[str, str]:
    """What a ``GET /models`` answer says about ``model``: ``coord_space`` and ``prompt_style`` from the
    entry's ``molmo_eval`` block (`molmo-eval serve` writes it); {} when the server says nothing."""
    data = models_body.get("data") if isinstance(models_body, dict) else None
    for entry in data if isinstance(data, list) else ():
        if isinstance(entry, dict) and entry.get("id") == model and isinstance(entry.get("molmo_eval"), dict):
            hints = entry["molmo_eval"]
            return {k: hints[k] for k in ("coord_space", "prompt_style") if isinstance(hints.get(k), str)}
    return {}


def reconcile(s: ClientSettings, hints: Mapping[str, str]) -> tuple[ClientSettings, list[str]]:
    """Settings with the server's advertised space and style where the user gave none, and a warning for
    each given value that contradicts the server (the given value is kept: the user may mean it)."""
    from dataclasses import replace

    kw: dict[str, Any] = {}
    warnings = []
    for arg, attr, cast in (("coordinate_space", "coord_space", CoordSpace), ("prompt_style", "prompt_style", str)):
        if attr not in hints:
            continue
        text = hints.get(attr, "")
        try:
            value = cast(text)
        except ValueError:
            warnings.append(f"the server advertises {attr} {text!r} for model {s.model!r}, which molmo-eval "
                            f"does not know; keeping {getattr(s, attr)!r}")
            continue
        mine = getattr(s, attr)
        if arg not in s.given:
            kw[attr] = value
        elif value != mine:
            shown = mine.value if isinstance(mine, CoordSpace) else mine
            warnings.append(f"--model-args {arg}={shown} contradicts the server, which advertises {attr} "
                            f"{text!r} for model {s.model!r}; using {shown} (drop the argument to follow the server)")
    return replace(s, **kw), warnings



def backoff_delay(
    retry: int, base: float, cap: float, rng: random.Random, retry_after: float | None = None
) -> float:
    """Delay before retry number ``retry`` (1, 2, ...): ``min(cap, base * 2**(retry-1))`` with equal
    jitter (half fixed, half uniform), so that clients that failed together do not retry together;
    never shorter than the server's Retry-After (itself capped at ``cap``)."""
    d = min(cap, base * 2 ** (retry - 1))
    d = d / 2 + rng.uniform(0, d / 2)
    if retry_after is not None:
        d = max(d, min(cap, retry_after))
    return d


def data_url(image: Image) -> str:
    """The image's encoded bytes as a data URL; formats that servers may not read become PNG."""
    data, mime = image.data, _mime(image.data)
    if mime is None:
        from PIL import Image as PILImage

        with PILImage.open(io.BytesIO(data)) as im:
            buf = io.BytesIO()
            im.convert("RGB").save(buf, format="PNG")
        data, mime = buf.getvalue(), "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _mime(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((m for magic, m in IMAGE_MIME.items() if data.startswith(magic)), None)


def chat_body(request: Request, model: str, hints: bool) -> dict[str, Any]:
    """The chat-completions body for one request: images first, then the prompt (Molmo's order)."""
    content: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": data_url(im)}} for im in request.images
    ]
    content.append({"type": "text", "text": request.prompt})
    s = request.settings
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": s.max_new_tokens,
        "temperature": s.temperature,
    }
    if s.stop:
        body["stop"] = list(s.stop)
    if hints:
        body["molmo_eval"] = {"answer_kind": request.answer_kind.value, "task": request.task}
    return body


@dataclass(frozen=True)
class Fault:
    """Why one attempt did not produce a generation."""

    reason: str  # counter key: http_500, http_429, timeout, connection, malformed, ...
    message: str
    retryable: bool = True
    fatal: bool = False  # stop the run: no request can succeed (bad key, URL or model name)
    retry_after: float | None = None


def parse_completion(body: bytes) -> Generation | Fault:
    """A 200 answer's body -> the generation, or a retryable 'malformed' fault."""
    try:
        data = json.loads(body)
        message = data["choices"][0]["message"]
        content = message["content"]
        if isinstance(content, list):  # some servers return content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise TypeError(f"message content is {type(content).__name__}")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        return Fault("malformed", f"malformed completion ({type(e).__name__}: {e}): {body[:200]!r}")
    native = message.get("molmo_eval") if isinstance(message, dict) else None
    points = native.get("points") if isinstance(native, dict) else None
    if points is not None:
        return Generation(text=content, points=tuple((float(x), float(y)) for x, y in points))
    return Generation(text=content)


def http_fault(status: int, body: bytes, headers: Mapping[str, str]) -> Fault:
    """A non-200 answer -> a fault saying whether to retry, fail the sample, or stop the run."""
    try:
        err = json.loads(body)["error"]
        detail = str(err.get("message", err)) if isinstance(err, dict) else str(err)
    except (ValueError, KeyError, TypeError):
        detail = body[:200].decode("utf-8", "replace")
    msg = f"HTTP {status}: {detail}".strip()
    if status in FATAL_STATUS:
        hint = (
            "check api_key_env"
            if status in (401, 403)
            else "check base_url (usually ending in /v1) and model=, see the server's /v1/models"
        )
        return Fault(f"http_{status}", f"{msg} ({hint})", retryable=False, fatal=True)
    retry_after = None
    try:
        retry_after = float(headers.get("retry-after", ""))
    except ValueError:
        pass
    retryable = status in RETRY_STATUS or status >= 500
    return Fault(f"http_{status}", msg, retryable=retryable, retry_after=retry_after)


@dataclass
class Counters:
    """What the client did: requests (samples sent), attempts, retries, failures (samples that
    gave up), and the reason of every failed attempt."""

    requests: int = 0
    attempts: int = 0
    retries: int = 0
    failures: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> dict[str, int]:
        out = {
            "requests": self.requests,
            "attempts": self.attempts,
            "retries": self.retries,
            "failures": self.failures,
        }
        out.update({f"fault_{k}": v for k, v in sorted(self.reasons.items())})
        return out


# --- the model --------------------------------------------------------------------------------


class OpenAIModel:
    """Any OpenAI-compatible chat-completions server (vLLM, SGLang, TGI, `molmo-eval serve`)."""

    name = "openai"
    description = "any OpenAI-compatible chat-completions server (vLLM, SGLang, TGI, molmo-eval serve)"
    needs_pixels = False

    def __init__(self, **model_args: Any):
        try:
            import httpx  # noqa: F401
        except ImportError:
            raise MissingDependency("httpx", "openai", "model 'openai'") from None
        self.settings = parse_settings(model_args)
        self._api_key = os.environ[self.settings.api_key_env] if self.settings.api_key_env else None
        if self.settings.discover:
            self.settings, notes = reconcile(self.settings, self._server_hints())
            for note in notes:
                log.warning("model 'openai': %s", note)
        self.coord_space = self.settings.coord_space
        self.prompt_style = self.settings.prompt_style
        self.fingerprint = self.settings.fingerprint or _fingerprint(self.settings)
        self.counters = Counters()
        self._rng = random.Random()
        self._loop: _LoopThread | None = None
        self._clients: list[Any] = []

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIModel(base_url={self.settings.base_url!r}, model={self.settings.model!r})"

    def cache_extra(self, request: Request) -> str:
        return ""  # the output is a function of prompt, images and settings

    def _server_hints(self) -> dict[str, str]:
        """``GET {base_url}/models`` -> what the server advertises for our model ({} when it cannot say:
        unreachable, no such endpoint, no hints; the run then finds out about the server as usual)."""
        import httpx

        headers = {"authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        try:
            resp = httpx.get(self.settings.base_url.rstrip("/") + "/models", headers=headers,
                             timeout=min(10.0, self.settings.timeout))
            return advertised(resp.json(), self.settings.model) if resp.status_code == 200 else {}
        except (httpx.HTTPError, ValueError) as e:
            log.debug("model 'openai': no model list from %s (%s)", self.settings.base_url, e)
            return {}

    def counts(self) -> dict[str, int]:
        """Requests, attempts, retries, failures and fault reasons so far (for the run record)."""
        return self.counters.snapshot()

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        if not requests:
            return []
        bodies = [
            json.dumps(chat_body(r, self.settings.model, self.settings.send_hints)).encode() for r in requests
        ]
        if self._loop is None:
            self._loop = _LoopThread()
        return self._loop.run(self._send_all(bodies))

    def close(self) -> None:
        if self._loop is not None:
            for client in self._clients:
                self._loop.run(client.aclose())
            self._loop.close()
        self._loop, self._clients = None, []

    def __enter__(self) -> OpenAIModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inside the event loop thread --

    async def _send_all(self, bodies: Sequence[bytes]) -> list[Generation]:
        n = self.settings.max_concurrency
        if not self._clients:
            self._clients = [
                _make_client(self.settings, self._api_key, min(SHARD, n - i)) for i in range(0, n, SHARD)
            ]
        slots: asyncio.Queue[int] = asyncio.Queue()
        for i in range(n):
            slots.put_nowait(i)
        tasks = [asyncio.ensure_future(self._send_one(slots, b)) for b in bodies]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        errors = [e for t in done if (e := t.exception()) is not None]  # a fatal answer stops them all
        if errors:
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            raise errors[0]
        return [t.result() for t in tasks]

    async def _send_one(self, slots: asyncio.Queue[int], body: bytes) -> Generation:
        slot = await slots.get()  # held through backoff too, so a throttled server sees less load
        try:
            return await self._send_in_slot(self._clients[slot // SHARD], body)
        finally:
            slots.put_nowait(slot)

    async def _send_in_slot(self, client: Any, body: bytes) -> Generation:
        s, c = self.settings, self.counters
        c.requests += 1
        for attempt in range(s.max_retries + 1):
            c.attempts += 1
            out = await self._attempt(client, body)
            if isinstance(out, Generation):
                return out
            c.reasons[out.reason] += 1
            if out.fatal:
                raise ConfigError(f"model 'openai' at {s.url}: {out.message}")
            if not out.retryable or attempt == s.max_retries:
                c.failures += 1
                tries = f"after {attempt + 1} attempts" if attempt else "not retried"
                return Generation(text="", error=f"openai: {out.message} ({tries})")
            c.retries += 1
            await asyncio.sleep(
                backoff_delay(attempt + 1, s.backoff, s.max_backoff, self._rng, out.retry_after)
            )
        raise AssertionError("unreachable")

    async def _attempt(self, client: Any, body: bytes) -> Generation | Fault:
        import httpx

        try:
            resp = await asyncio.wait_for(_post(client, self.settings.url, body), self.settings.timeout)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            return Fault("timeout", f"no complete answer within {self.settings.timeout:g}s")
        except httpx.TransportError as e:
            return Fault("connection", f"connection error ({type(e).__name__}: {e})")
        status, content, headers = resp
        if status == 200:
            return parse_completion(content)
        return http_fault(status, content, headers)


async def _post(client: Any, url: str, body: bytes) -> tuple[int, bytes, Mapping[str, str]]:
    resp = await client.post(url, content=body)
    return resp.status_code, resp.content, resp.headers


def _fingerprint(s: ClientSettings) -> str:
    """Server and model name (and whether hints are sent): what decides the outputs. Never the key,
    and not concurrency, time-outs or retries."""
    payload = json.dumps([s.base_url, s.model, s.send_hints])
    return f"openai-{hashlib.blake2b(payload.encode(), digest_size=8).hexdigest()}-{s.model}"


def _make_client(s: ClientSettings, api_key: str | None, connections: int) -> Any:
    import httpx

    headers = {"content-type": "application/json", "user-agent": f"molmo-eval/{__version__}"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(headers=headers, limits=limits, timeout=httpx.Timeout(s.timeout))


class _LoopThread:
    """An event loop in a daemon thread: connections stay open across batches, and `generate`
    works from any caller, also one that runs its own loop (a notebook)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="molmo-eval-openai", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result()
        except BaseException:
            fut.cancel()
            raise

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()
