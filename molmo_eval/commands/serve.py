"""`molmo-eval serve`: expose a registered model as an OpenAI-compatible server
(see molmo_eval.interop.serve).

molmo-eval serve --model hf-molmo --model-args pretrained=/models/Molmo2-4B --port 8000
molmo-eval --model openai --model-args base_url=http://127.0.0.1:8000/v1,model=hf-molmo --tasks pope
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

from molmo_eval.core.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model over an OpenAI-compatible HTTP API (/v1/chat/completions)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model", required=True, metavar="NAME", help="registered model (see `molmo-eval models`)"
    )
    p.add_argument("--model-args", "--model_args", metavar="K=V,...", help="model arguments")
    p.add_argument("--device", metavar="DEV", help="device passed to the model, e.g. cpu or cuda:0")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; anything else exposes the model to the network)",
    )
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument(
        "--served-model-name",
        metavar="NAME",
        help="the name clients pass as `model` (default: the model's name)",
    )
    p.add_argument(
        "--max-batch-size",
        type=int,
        default=8,
        metavar="N",
        help="most concurrent requests answered by one generate call (default 8)",
    )
    p.add_argument(
        "--batch-wait-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="wait this long for more requests before generating (default 0: batch what is queued)",
    )
    p.add_argument(
        "--max-request-pixels",
        type=int,
        default=None,
        metavar="N",
        help="most decoded image pixels in one request, all its images together (default 64000000); "
        "more is refused with 413",
    )
    p.add_argument(
        "--max-in-flight",
        type=int,
        default=None,
        metavar="N",
        help="most chat requests read, decoded or answered at once (default 32); more get 503",
    )
    p.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="require `Authorization: Bearer $VAR` (the key is read from this environment variable)",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks and log every request")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    import logging

    from molmo_eval.core import registry
    from molmo_eval.core.config import parse_kv
    from molmo_eval.interop.serve import Server

    problems = []
    if args.max_batch_size < 1:
        problems.append(f"--max-batch-size: expected a positive integer, got {args.max_batch_size}")
    for flag, v in (("--max-request-pixels", args.max_request_pixels), ("--max-in-flight", args.max_in_flight)):
        if v is not None and v < 1:
            problems.append(f"{flag}: expected a positive integer, got {v}")
    if not 0 <= args.port <= 65535:
        problems.append(f"--port: expected 0..65535, got {args.port}")
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            problems.append(f"--api-key-env {args.api_key_env}: the environment variable is not set")
    if problems:
        raise ConfigError(problems)
    if args.debug:
        logging.basicConfig(level=logging.DEBUG)
    kwargs = parse_kv(args.model_args, "--model-args") if args.model_args else {}
    if args.device is not None:
        kwargs["device"] = args.device
    try:
        model = registry.model_factory(args.model)(**kwargs)
    except TypeError as e:
        raise ConfigError(f"--model-args for model {args.model!r}: {e}") from None
    try:
        server = Server(
            model,
            args.host,
            args.port,
            served_name=args.served_model_name,
            max_batch=args.max_batch_size,
            batch_wait_s=args.batch_wait_ms / 1000,
            api_key=api_key,
            **{k: v for k, v in (("max_request_pixels", args.max_request_pixels),
                                 ("max_in_flight", args.max_in_flight)) if v is not None},
        )
    except OSError as e:
        raise ConfigError(
            f"--host {args.host} --port {args.port}: cannot listen ({e.strerror or e})"
        ) from None
    if not _is_loopback(args.host):
        print(
            f"molmo-eval serve: warning: listening on {args.host}, reachable from other machines"
            + ("" if api_key else " without an API key (--api-key-env)"),
            file=sys.stderr,
        )
    print(
        f"serving {args.model} as `{server.app.served}` at {server.url} "
        f"(fingerprint {model.fingerprint}); Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nmolmo-eval serve: stopped", file=sys.stderr)
    finally:
        server.close()
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
