"""The SQLite response cache: keys, round trip, failures not cached, corruption never fatal."""

from __future__ import annotations

import logging

from molmo_eval.core.types import AnswerKind, Generation, GenerationSettings, Image, Request
from molmo_eval.run.cache import ResponseCache, request_key


def req(prompt="q", digest="d1", max_new=64, uid="t/s/1"):
    im = Image(digest=digest, size=(4, 4), data=b"")
    return Request(uid=uid, prompt=prompt, images=(im,), settings=GenerationSettings(max_new_tokens=max_new),
                   answer_kind=AnswerKind.TEXT)


def test_key_depends_on_everything_the_model_sees():
    base = request_key("fp", req())
    assert request_key("fp", req()) == base
    assert request_key("fp2", req()) != base
    assert request_key("fp", req(prompt="q2")) != base
    assert request_key("fp", req(digest="d2")) != base
    assert request_key("fp", req(max_new=8)) != base
    assert request_key("fp", req(), extra="t/s/2") != base
    assert request_key("fp", req(uid="t/s/9")) == base  # same content, no extra: shared output


def test_round_trip_and_errors_are_not_cached(tmp_path):
    c = ResponseCache(tmp_path, "model-fp")
    n = c.put_many([("k1", Generation("yes", points=((1.0, 2.5),))), ("k2", Generation("", error="timeout"))])
    assert n == 1 and len(c) == 1
    got = c.get_many(["k1", "k2", "k3"])
    assert got == {"k1": Generation("yes", points=((1.0, 2.5),))}
    c.put_many([("k1", Generation("other"))])  # first write wins, no duplicates
    assert c.get_many(["k1"])["k1"].text == "yes" and len(c) == 1
    c.close()
    again = ResponseCache(tmp_path, "model-fp")
    assert again.get_many(["k1"])["k1"].text == "yes"


def test_corrupt_cache_is_moved_aside_with_a_warning(tmp_path, caplog):
    c = ResponseCache(tmp_path, "fp")
    path = c.path
    c.close()
    path.write_bytes(b"this is not an sqlite database" * 100)
    with caplog.at_level(logging.WARNING):
        fresh = ResponseCache(tmp_path, "fp")
    assert "moved it to" in caplog.text
    assert len(fresh) == 0
    assert any(p.name.startswith(path.name + ".corrupt-") for p in tmp_path.iterdir())
    fresh.put_many([("k", Generation("ok"))])
    assert fresh.get_many(["k"])["k"].text == "ok"
