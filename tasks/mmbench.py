"""MMBench (dev_en) with CircularEval and heuristic choice extraction, as VLMEvalKit scores it without a
judge (DESIGN §5). A task plugin: load -> prompt -> parse -> score -> finalize -> metrics.

Data: ``MMBench_DEV_EN.tsv`` in VLMEvalKit's layout (index, question, hint, A, B, C, D, answer,
category, l2-category, split, image). ``image`` is base64 JPEG or, for circular copies, the base row's
index as text (any value of 1-64 characters is such a reference, as in VLMEvalKit). A file with circular
copies (rows ``index + k * 1e6``, or a ``g_index`` column) is used as is; a base-only file is expanded
exactly as VLMEvalKit's ``CIRCULAR`` tool does (`molmo_eval.metrics.mmbench.circularize`).

Cells are read as VLMEvalKit reads them through ``pandas.read_csv(sep="\\t")``: pandas' default NA
strings ("", "NA", "N/A", "None", "null", "nan", ...) are missing values, and a column whose every
present cell is an integer / number / boolean becomes one, so ``3`` stays "3" but ``3`` in a column
with gaps reads "3.0". That decides which options exist and the option text that ``can_infer_text``
matches. Rows without an image are skipped, as VLMEvalKit's dataset does.
"""

from __future__ import annotations

import csv
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from molmo_eval.core.errors import DataError, MissingDependency
from molmo_eval.core.metric import Metric
from molmo_eval.core.task import ParseContext, Task
from molmo_eval.core.types import (
    Answer,
    AnswerKind,
    CoordSpace,
    Generation,
    GenerationSettings,
    ImageRef,
    Sample,
    SampleScore,
)
from molmo_eval.data.files import require_file
from molmo_eval.data.images import MAX_IMAGE_BYTES
from molmo_eval.data.validate import unique
from molmo_eval.metrics import mmbench as circ
from molmo_eval.parsing.choice import parse_choice

FILES = {"dev_en": "MMBench_DEV_EN.tsv"}
REQUIRED = ("index", "question", "answer", "A", "B")

# pandas' default na_values (pandas._libs.parsers.STR_NA_VALUES)
NA_STRINGS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                        "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})
_INT = re.compile(r" *[+-]?[0-9]+ *")
_FLOAT = re.compile(r" *[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity) *", re.IGNORECASE)
_TRUE, _FALSE = frozenset({"True", "TRUE", "true"}), frozenset({"False", "FALSE", "false"})


# --- reading cells as pandas does ----------------------------------------------------------------

def pandas_column(cells: Sequence[str]) -> list[str | None]:
    """``str(value)`` of each cell after pandas' C-parser type inference of the whole column
    (None = NaN): all-integer columns -> int64 (float64 when a cell is missing), all-numeric -> float64,
    all-boolean -> bool; anything else stays text."""
    vals: list[str | None] = [None if c in NA_STRINGS else c for c in cells]
    present = [v for v in vals if v is not None]
    if not present:
        return vals
    if all(_INT.fullmatch(v) for v in present) and (len(present) < len(vals) or _fits_int64(present)):
        if len(present) == len(vals):
            return [str(int(v)) for v in present]
        return [None if v is None else str(float(int(v))) for v in vals]
    if all(_FLOAT.fullmatch(v) for v in present):
        return [None if v is None else str(float(v)) for v in vals]
    if all(v in _TRUE or v in _FALSE for v in present):
        return [None if v is None else str(v in _TRUE) for v in vals]
    return vals


def _fits_int64(values: Sequence[str]) -> bool:
    return all(-(2 ** 63) <= int(v) < 2 ** 64 for v in values)


def read_table(path: Path, delimiter: str = "\t") -> tuple[list[str], list[dict[str, str | None]]]:
    """Header and rows of a TSV/CSV, every column interpreted as `pandas_column` does."""
    require_file(path, "table")
    limit = max(csv.field_size_limit(), MAX_IMAGE_BYTES * 4 // 3 + 1024)
    csv.field_size_limit(limit)  # base64 images are long cells
    try:
        with open(path, encoding="utf-8", newline="") as f:
            raw = [r for r in csv.reader(f, delimiter=delimiter) if r]
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"unreadable table ({type(e).__name__}: {e})", path=path) from None
    if not raw:
        raise DataError("empty table", path=path, expected="a header row with columns " + ", ".join(REQUIRED))
    header, body = raw[0], raw[1:]
    for i, r in enumerate(body, 2):
        if len(r) != len(header):
            raise DataError(f"has {len(r)} cells but the header has {len(header)}", path=path,
                            record=f"at line {i}")
    return header, _typed(header, body)


def _typed(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[dict[str, str | None]]:
    cols = [pandas_column([r[j] for r in body]) for j in range(len(header))]
    return [{h: cols[j][i] for j, h in enumerate(header)} for i in range(len(body))]


# --- the benchmark file -> samples ----------------------------------------------------------------

def option_columns(header: Sequence[str], path: Path) -> list[str]:
    opts = [c for c in string.ascii_uppercase if c in header]
    if opts != list(string.ascii_uppercase[:len(opts)]):
        raise DataError("option columns must be consecutive letters from A", path=path, field="A",
                        expected=f"columns {', '.join(string.ascii_uppercase[:len(opts)])}")
    return opts


def _int_index(row: Mapping[str, Any], path: Path, n: int, name: str = "index") -> int:
    """An integer cell (``index``, ``g_index``) as pandas reads it: ``3``, ``3.0`` or ``3e6``."""
    v = row.get(name)
    text = str(v)
    try:
        if len(text) > 40:
            raise ValueError(v)
        f = float(text)
        if not f.is_integer():
            raise ValueError(v)
        return int(text) if _INT.fullmatch(text) else int(f)
    except (ValueError, OverflowError):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise DataError(f"{name} {shown!r} is not an integer", path=path, record=f"row {n}",
                        field=name) from None


def load_rows(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Rows of an MMBench TSV with circular copies (expanded here when the file holds only base rows)."""
    header, typed = read_table(path)
    rows: list[dict[str, Any]] = list(typed)
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DataError("missing column", path=path, field=missing[0],
                        expected=f"columns {', '.join(REQUIRED)} (have {', '.join(header[:12])})")
    opts = option_columns(header, path)
    for n, r in enumerate(rows, 1):
        r["index"] = str(_int_index(r, path, n))
        if r.get("g_index") is not None:
            r["g_index"] = str(_int_index(r, path, n, "g_index"))
    unique(((r["index"], f"row {n}") for n, r in enumerate(rows, 1)), path=path, name="index")
    has_copies = "g_index" in header or any(int(r["index"]) >= circ.BASE_OFFSET for r in rows)
    if not has_copies:
        try:
            rows = circ.circularize(rows, opts)
        except ValueError as e:
            raise DataError(f"cannot build circular copies: {e}", path=path, field="answer") from None
        # VLMEvalKit writes the expanded table and reads it back: pandas infers the columns again
        header = list(header) + (["g_index"] if "g_index" not in header else [])
        rows = _typed(header, [["" if r.get(h) is None else str(r[h]) for h in header] for r in rows])
    return opts, rows


def resolve_images(rows: Sequence[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    """Skip rows without an image; replace index references (1-64 characters) by the base64 they name."""
    rows = [r for r in rows if r.get("image") is not None]
    by_index = {r["index"]: r["image"] for r in rows}
    for r in rows:
        img = r["image"]
        if len(img) <= 64:
            target = by_index.get(img)
            if target is None or len(target) <= 64:
                raise DataError(f"image refers to index {img!r}, which has no base64 image", path=path,
                                record=f"index {r['index']}", field="image")
            r["image"] = target
    return rows


def row_sample(task: str, split: str, r: Mapping[str, Any], opts: Sequence[str], path: Path) -> Sample:
    index = int(r["index"])
    g_raw = r.get("g_index")
    group = circ.group_of(index, None if g_raw is None else int(float(g_raw)))
    choices = {c: r[c] for c in opts if r.get(c) is not None}
    answer = r.get("answer")
    if answer is None:
        raise DataError("missing answer", path=path, record=f"index {index}", field="answer",
                        expected="an option letter")
    return Sample(
        id=str(index), task=task, split=split, image=ImageRef(b64=r["image"]),
        prompt_fields={"question": "nan" if r.get("question") is None else r["question"],
                       "hint": r.get("hint"), "options": choices},
        target={"answer": answer, "choices": choices, "group": str(group), "main": group == index},
        meta={"category": r.get("category"), "l2_category": r.get("l2-category")},
    )


# --- predictions written by VLMEvalKit ----------------------------------------------------------

def read_prediction_table(path: Path) -> list[dict[str, str | None]]:
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        return _read_xlsx(path)
    header, rows = read_table(path, "," if suffix == ".csv" else "\t")
    header, rows = _lower_names(header, rows)
    for col in ("index", "prediction"):
        if col not in header:
            raise DataError("missing column", path=path, field=col,
                            expected=f"columns index and prediction (have {', '.join(header[:12])})")
    return rows


def _read_xlsx(path: Path) -> list[dict[str, str | None]]:
    try:
        import openpyxl
    except ImportError:
        raise MissingDependency("openpyxl", "xlsx", "reading VLMEvalKit .xlsx prediction files") from None
    require_file(path, "prediction file")
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        it: Iterator[tuple[Any, ...]] = wb.worksheets[0].iter_rows(values_only=True)
        header = [str(h) for h in next(it, ())]
        body = [["" if v is None else _excel_text(v) for v in row] for row in it
                if any(v is not None for v in row)]
    finally:
        wb.close()
    header, rows = _lower_names(header, _typed(header, [r + [""] * (len(header) - len(r)) for r in body]))
    for col in ("index", "prediction"):
        if col not in header:
            raise DataError("missing column", path=path, field=col, expected="columns index and prediction")
    return rows


def _lower_names(header: Sequence[str], rows: list[dict[str, str | None]]
                 ) -> tuple[list[str], list[dict[str, str | None]]]:
    """VLMEvalKit lowercases every column name except the option letters before evaluating."""
    names = {h: h if h in string.ascii_uppercase else h.lower() for h in header}
    return list(names.values()), [{names[k]: v for k, v in r.items()} for r in rows]


def _excel_text(v: Any) -> str:
    """pandas.read_excel turns integral floats into ints before inferring the column."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


@dataclass(frozen=True)
class MMBench(Task):
    name: ClassVar[str] = "mmbench"
    description: ClassVar[str] = "MMBench dev (en): multiple choice, CircularEval with heuristic extraction"
    splits: ClassVar[tuple[str, ...]] = tuple(FILES)
    default_splits: ClassVar[tuple[str, ...]] = ("dev_en",)
    answer_kind: ClassVar[AnswerKind] = AnswerKind.CHOICE
    primary_metric: ClassVar[str] = "circular_accuracy"
    data_dir: ClassVar[str] = "mmbench"
    breakdowns: ClassVar[tuple[str, ...]] = ("category", "l2_category")
    version: ClassVar[str] = "1"

    def data_files(self, data_dir: Path, split: str) -> list[Path]:
        return [data_dir / FILES[self.check_split(split)]]

    def limit_group(self, sample: Sample) -> str:
        """CircularEval scores a question on all its rotations: ``--limit N`` keeps N whole groups
        (the file lists every un-rotated row before any rotation, so N rows would be plain accuracy)."""
        return str(sample.target["group"])

    def load(self, data_dir: Path, split: str) -> list[Sample]:
        path = self.data_files(data_dir, split)[0]
        opts, rows = load_rows(path)
        rows = resolve_images(rows, path)
        return [row_sample(self.name, split, r, opts, path) for r in rows]

    def prompt(self, sample: Sample, style: str = "default", space: CoordSpace | None = None) -> str:
        """VLMEvalKit's ``ImageMCQDataset.build_prompt``; the Molmo style adds LLaVA's letter instruction."""
        f = sample.prompt_fields
        text = f"Hint: {f['hint']}\n" if f.get("hint") is not None else ""
        text += f"Question: {f['question']}\n"
        options = f.get("options") or {}
        if options:
            text += "Options:\n" + "".join(f"{k}. {v}\n" for k, v in options.items())
            text += "Please select the correct answer from the options above. \n"
        if style == "molmo":
            text += "Answer with the option's letter from the given choices directly."
        return text

    def generation_settings(self) -> GenerationSettings:
        return GenerationSettings(max_new_tokens=32)

    def parse(self, sample: Sample, generation: Generation, ctx: ParseContext) -> Answer:
        return parse_choice(generation.text, sample.target["choices"])

    def score(self, sample: Sample, answer: Answer) -> SampleScore:
        ok = answer.parse_ok and answer.value == sample.target["answer"]
        return SampleScore(sample.uid, {"correct": float(ok)}, {"group": str(sample.target["group"])})

    def finalize(self, samples: Sequence[Sample], scores: Sequence[SampleScore]) -> list[SampleScore]:
        groups = [str(s.target["group"]) for s in samples]
        mains = [bool(s.target["main"]) for s in samples]
        correct = [sc.values.get("correct", 0.0) for sc in scores]
        circular, vanilla = circ.group_hits(groups, mains, correct)
        return [replace(sc, values={**sc.values, "circular": float(c), "vanilla": float(v)})
                for sc, c, v in zip(scores, circular, vanilla, strict=True)]

    def metrics(self) -> tuple[Metric, ...]:
        return circ.metrics()

    def read_predictions(self, path: Path, samples: Sequence[Sample]) -> dict[str, Generation]:
        """A VLMEvalKit prediction file (.xlsx, .tsv or .csv) with columns ``index`` and ``prediction``;
        the prediction text is read as VLMEvalKit reads it (``str()`` of the pandas cell, "nan" if empty).
        Options and answers come from the benchmark file, not from the prediction file."""
        by_id = {s.id: s.uid for s in samples}
        out: dict[str, Generation] = {}
        unknown: list[str] = []
        for n, r in enumerate(read_prediction_table(path), 2):
            idx = str(_int_index(r, path, n))
            if idx not in by_id:
                unknown.append(idx)
                continue
            if by_id[idx] in out:
                raise DataError("duplicate index", path=path, record=f"index {idx}", field="index")
            pred = r.get("prediction")
            out[by_id[idx]] = Generation(text="nan" if pred is None else pred)
        if unknown:  # VLMEvalKit refuses files that are not a subset of the benchmark
            raise DataError(f"{len(unknown)} indices are not in the benchmark (first: {', '.join(unknown[:5])})",
                            path=path, field="index", expected="a subset of the benchmark's indices")
        return out


