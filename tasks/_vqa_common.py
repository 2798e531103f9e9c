"""Helpers shared by the short-answer tasks (vqav2, textvqa, gqa, pope): prompts, text answers,
image paths and the readers of the benchmarks' usual prediction files."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from operator import attrgetter
from pathlib import Path
from types import MappingProxyType
from typing import Any

from molmo_eval.core.errors import DataError
from molmo_eval.core.types import Answer, AnswerKind, Generation, ImageRef, Sample
from molmo_eval.data.files import confined, field, iter_jsonl, read_json, read_json_typed

SHORT_ANSWER_SUFFIX = "\nAnswer the question using a single word or phrase."


def short_answer_prompt(question: str, style: str, molmo_style: str) -> str:
    """The LLaVA / lmms-eval short-answer prompt by default; Molmo's ``<style>: <question>`` form
    (its evaluation prompts for vqa2, text_vqa, gqa...) for the "molmo" style."""
    if style == "molmo":
        return f"{molmo_style}: {question}"
    return question + SHORT_ANSWER_SUFFIX


def text_answer(generation: Generation) -> Answer:
    """The raw text is the answer (normalization belongs to the scorer, as in the official code);
    empty text is flagged unparseable but still scored as written."""
    return _text_answer(generation.text)


@lru_cache(maxsize=1 << 16)
def _text_answer(text: str) -> Answer:
    # Answers are immutable, so equal texts share one (short answers repeat a lot)
    return Answer(AnswerKind.TEXT, text, parse_ok=bool(text.strip()))


_ID_OF, _TASK_OF, _SPLIT_OF = attrgetter("id"), attrgetter("task"), attrgetter("split")
NO_FIELDS: Mapping[str, str] = MappingProxyType({})  # shared read-only empty SampleScore.fields


class Shared:
    """One object per distinct value in a loader's samples: answer strings (VQAv2 has 2 million answers
    but tens of thousands of distinct ones), small mappings that many samples hold alike (breakdown
    metadata, POPE's label, a question asked of many images). A large split then costs memory for
    what differs between its questions only. Samples are immutable, so sharing is invisible to
    every reader. ``intern`` and ``metas`` are dict lookups, for loaders that map them over columns."""

    def __init__(self) -> None:
        self._strings = _Interned()
        self._maps = _Maps()
        self.intern = self._strings.__getitem__  # text -> the first equal string met
        self.metas = _Metas().__getitem__  # (answer type, question type) -> shared meta

    def strings(self, texts: Iterable[str]) -> tuple[str, ...]:
        return tuple(map(self.intern, texts))

    def mapping(self, *items: tuple[str, str]) -> Mapping[str, str]:
        """``dict(items)``, the same object for the same items."""
        return self._maps[items]

    def meta(self, answer_type: str, question_type: str) -> Mapping[str, str]:
        return self.metas((answer_type, question_type))


class _Maps(dict[tuple[tuple[str, str], ...], Mapping[str, str]]):
    def __missing__(self, items: tuple[tuple[str, str], ...]) -> Mapping[str, str]:
        m = self[items] = dict(items)
        return m


class _Metas(dict[tuple[str, str], Mapping[str, str]]):
    def __missing__(self, key: tuple[str, str]) -> Mapping[str, str]:
        meta = self[key] = {"answer_type": key[0], "question_type": key[1]}
        return meta


class _Interned(dict[str, str]):
    """``memo[s]`` is the first string equal to ``s`` that was looked up."""

    def __missing__(self, key: str) -> str:
        self[key] = key
        return key


class ImagePaths:
    """Confined image paths with one check per distinct image (loaders see each image many times),
    and one `ImageRef` per image for the samples that ask about it."""

    def __init__(self, root: Path, source: Path):
        self.root, self.source = root, source
        self._seen: dict[str, ImageRef] = {}

    def __call__(self, relative: str, record: object) -> str:
        return self.ref(relative, record).path  # type: ignore[return-value]

    def ref(self, relative: str, record: object) -> ImageRef:
        ref = self._seen.get(relative)
        if ref is None:
            ref = self._seen[relative] = ImageRef(path=str(confined(self.root, relative, path=self.source,
                                                                    record=record)))
        return ref


def value(rec: Any, name: str, types: tuple[type, ...], *, path: Path, index: object,
          expected: str | None = None) -> Any:
    """``rec[name]`` when its type is exactly one of ``types`` (the fast path for loaders that read
    millions of records); otherwise `molmo_eval.data.files.field`, which accepts subclasses or raises a
    DataError naming file, record and field. An int ``index`` reads "at index N"."""
    try:
        v = rec[name]
    except (KeyError, TypeError, IndexError):
        pass
    else:
        if type(v) in types:
            return v
    where = f"at index {index}" if isinstance(index, int) else index
    return field(rec, name, path=path, index=where, types=types, expected=expected)


def as_id(value: Any, *, path: Path, record: object, name: str) -> str:
    """A benchmark id (int or str in the files) as the string Sample.id."""
    if type(value) is int or type(value) is str:
        return str(value)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DataError(f"has type {type(value).__name__}", path=path, record=record, field=name,
                        expected="an integer or string id")
    return str(value)


def check_unique_ids(samples: Sequence[Sample], path: Path, name: str) -> list[Sample]:
    """Loaders: a benchmark id must name one question of a split."""
    if len(set(map(_ID_OF, samples))) == len(samples):
        return list(samples)
    seen: set[str] = set()
    for s in samples:  # which id is the first to repeat
        if s.id in seen:
            raise DataError("duplicate id", path=path, record=f"{name} {s.id}", field=name,
                            expected="each question once")
        seen.add(s.id)
    return list(samples)


def samples_by_id(samples: Sequence[Sample], path: Path) -> dict[str, Sample]:
    by_id: dict[str, Sample] = {}
    for s in samples:
        if s.id in by_id:
            raise DataError(f"question id {s.id} occurs in several splits; score one split at a time",
                            path=path)
        by_id[s.id] = s
    return by_id


def read_json_answers(path: Path, samples: Sequence[Sample], *, id_key: str, answer_key: str,
                      unknown_ids: str) -> dict[str, Generation]:
    """``[{id_key: ..., answer_key: str}, ...]`` -> {uid: Generation}. ``unknown_ids``: "error" (VQA's
    loadRes asserts the id sets match) or "ignore" (GQA's eval.py looks predictions up by id)."""
    fast = _collect_fast(path, samples, id_key=id_key, answer_key=answer_key, unknown_ids=unknown_ids)
    if fast is not None:
        return fast
    data = read_json(path, "predictions file")
    if not isinstance(data, list):
        raise DataError(f"top level is a {type(data).__name__}", path=path,
                        expected=f"a JSON list of {{{id_key!r}, {answer_key!r}}} objects")
    return _collect(((i, rec) for i, rec in enumerate(data)), path, samples, id_key=id_key,
                    answer_keys=(answer_key,), unknown_ids=unknown_ids, where="index")


def read_jsonl_answers(path: Path, *, id_key: str,
                       answer_keys: tuple[str, ...]) -> list[tuple[int, str | None, str]]:
    """JSON lines -> [(line number, id or None, answer text)] in file order."""
    out = []
    for lineno, rec in iter_jsonl(path, "predictions file"):
        text = _answer_text(rec, answer_keys, path=path, record=f"at line {lineno}")
        rid = rec.get(id_key)
        out.append((lineno, None if rid is None else as_id(rid, path=path, record=f"at line {lineno}",
                                                          name=id_key), text))
    return out


def _answer_text(rec: Any, keys: tuple[str, ...], *, path: Path, record: object) -> str:
    if not isinstance(rec, Mapping):
        raise DataError("record is not an object", path=path, record=record, expected="a JSON object")
    for k in keys:
        if k in rec:
            return field(rec, k, path=path, index=record, types=str)
    raise DataError("missing field", path=path, record=record, field=keys[0],
                    expected=" or ".join(repr(k) for k in keys) + " holding the answer text")


def _collect_fast(path: Path, samples: Sequence[Sample], *, id_key: str, answer_key: str,
                  unknown_ids: str) -> dict[str, Generation] | None:
    """`read_json_answers` for a file of the usual shape, decoded into structs of the two fields; None
    (the generic reader then reads the file and names what is wrong) without msgspec, or for a file
    of another shape or that names a question twice."""
    records = read_json_typed(path, "predictions file", prediction_schema(id_key, answer_key))
    if records is None:
        return None
    by_id = samples_by_id(samples, path)
    qids = list(map(str, map(attrgetter(id_key), records)))
    found = list(map(by_id.get, qids))
    places = set(zip(map(_TASK_OF, samples), map(_SPLIT_OF, samples)))
    if len(places) == 1:  # one split, the usual case: Sample.uid ("task/split/id") from the id in hand
        prefix = "{}/{}/".format(*places.pop())
        uids = [prefix + q for q, s in zip(qids, found) if s is not None]
    else:
        uids = [s.uid for s in found if s is not None]
    if len(uids) != len(found):  # (not `None in found`: that calls Sample.__eq__ on every element)
        _check_known([q for q, s in zip(qids, found) if s is None], unknown_ids, samples, path, id_key)
    generation = _Generations().__getitem__  # one (immutable) Generation per distinct prediction text
    out = dict(zip(uids, map(generation, (t for t, s in zip(map(attrgetter(answer_key), records), found)
                                          if s is not None))))
    return out if len(out) == len(uids) else None  # a question answered twice: the generic reader says where


class _Generations(dict[str, Generation]):
    """``gens[text]``: the Generation of a prediction text, made once per distinct text. Generations are
    immutable, so questions answered alike share one, as equal parsed answers do (`_text_answer`):
    214k predictions of VQAv2 val hold a few tens of thousands of distinct strings."""

    def __missing__(self, text: str) -> Generation:
        gen = self[text] = Generation(text)
        return gen


@lru_cache(maxsize=8)
def prediction_schema(id_key: str, answer_key: str) -> Any:
    """msgspec type of ``[{id_key: int | str, answer_key: str}, ...]`` (None without msgspec)."""
    try:
        import msgspec
    except ImportError:
        return None
    return list[msgspec.defstruct("Prediction", [(id_key, int | str), (answer_key, str)], gc=False)]  # type: ignore[misc]


def _check_known(unknown: list[str], unknown_ids: str, samples: Sequence[Sample], path: Path, id_key: str) -> None:
    if unknown and unknown_ids == "error":
        raise DataError(f"{len(unknown)} predictions name questions that are not in split "
                        f"{samples[0].split if samples else '?'} (first: {', '.join(unknown[:5])})",
                        path=path, field=id_key, expected="question ids of the scored split")


def _collect(records: Iterable[tuple[int, Any]], path: Path, samples: Sequence[Sample], *, id_key: str,
             answer_keys: tuple[str, ...], unknown_ids: str, where: str) -> dict[str, Generation]:
    by_id = samples_by_id(samples, path)
    out: dict[str, Generation] = {}
    unknown: list[str] = []
    for i, rec in records:
        at = f"at {where} {i}"
        text = _answer_text(rec, answer_keys, path=path, record=at)
        qid = as_id(field(rec, id_key, path=path, index=at), path=path, record=at, name=id_key)
        sample = by_id.get(qid)
        if sample is None:
            unknown.append(qid)
            continue
        if sample.uid in out:
            raise DataError(f"second prediction for question {qid}", path=path, record=at, field=id_key,
                            expected="one prediction per question")
        out[sample.uid] = Generation(text=text)
    _check_known(unknown, unknown_ids, samples, path, id_key)
    return out

