"""Throughput of the `openai` model against a stub server (issue 8). Not part of the test suite.

    python bench/bench_openai_concurrency.py [--latency-ms 50] [--concurrency 64] [--seconds 2]

A stub OpenAI-compatible server (stdlib, in its own process, loopback only) answers every
chat-completions request after ``--latency-ms``. The `openai` model sends requests carrying one
small PNG, first one at a time (max_concurrency=1), then ``--concurrency`` at a time; each phase
sends about ``--seconds`` worth of requests at its ideal rate, after a warm-up. Target: 64-way
concurrency reaches >= 30x the throughput of one request at a time (the ideal is 64x).
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from molmo_eval.core.types import AnswerKind, GenerationSettings, ImageRef, Request  # noqa: E402
from molmo_eval.data.images import load_image  # noqa: E402
from molmo_eval.models.openai_api import OpenAIModel  # noqa: E402

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the harness does: idle OpenMP threads sleep

ANSWER = json.dumps(
    {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": "stub",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "yes"}, "finish_reason": "stop"}
        ],
    }
).encode()


class StubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall
    latency = 0.05

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.latency)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)


def stub_server(latency: float, port_out: mp.Queue, stop: mp.Event) -> None:  # type: ignore[valid-type]
    StubHandler.latency = latency
    ThreadingHTTPServer.request_queue_size = 1024
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), StubHandler)
    httpd.daemon_threads = True
    port_out.put(httpd.server_address[1])
    import threading

    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    stop.wait(timeout=600)  # bounded: the server never outlives the benchmark by more than this
    httpd.shutdown()


def requests(n: int) -> list[Request]:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buf, format="PNG")
    im = load_image(ImageRef(data=buf.getvalue()), False)
    return [
        Request(
            uid=f"bench/x/{i}",
            prompt=f"Is there a red square? ({i})",
            images=(im,),
            settings=GenerationSettings(max_new_tokens=8),
            answer_kind=AnswerKind.YESNO,
        )
        for i in range(n)
    ]


def throughput(url: str, concurrency: int, n: int) -> tuple[float, dict[str, int]]:
    with OpenAIModel(
        base_url=url, model="stub", max_concurrency=str(concurrency), timeout="30", max_retries="0"
    ) as model:
        model.generate(requests(min(n, concurrency)))  # warm-up: open the connections
        batch = requests(n)
        t = time.perf_counter()
        gens = model.generate(batch)
        dt = time.perf_counter() - t
        assert len(gens) == n and all(g.error is None and g.text == "yes" for g in gens), gens[:3]
        return n / dt, model.counters.snapshot()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=2.0, help="ideal duration of each phase")
    args = ap.parse_args()
    latency = args.latency_ms / 1000
    ports: mp.Queue = mp.Queue()
    stop = mp.Event()
    proc = mp.Process(target=stub_server, args=(latency, ports, stop), daemon=True)
    proc.start()
    try:
        url = f"http://127.0.0.1:{ports.get(timeout=30)}/v1"
        n1 = max(1, round(args.seconds / latency))
        nc = max(args.concurrency, round(args.seconds / latency) * args.concurrency)
        one, _ = throughput(url, 1, n1)
        many, counters = throughput(url, args.concurrency, nc)
    finally:
        stop.set()
        proc.join(timeout=10)
    ratio = many / one
    print(f"stub latency {args.latency_ms:g} ms")
    print(f"  1 at a time : {n1:6d} requests, {one:8.1f} req/s (ideal {1 / latency:.1f})")
    print(
        f"  {args.concurrency:2d} at a time: {nc:6d} requests, {many:8.1f} req/s "
        f"(ideal {args.concurrency / latency:.1f}); counters {counters}"
    )
    print(f"  speed-up {ratio:.1f}x (target >= 30x for 64-way): {'PASS' if ratio >= 30 else 'FAIL'}")


if __name__ == "__main__":
    main()
