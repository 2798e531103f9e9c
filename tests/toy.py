"""A tiny task used to test the harness itself (registry, runner, cache, records, CLI).

Each sample is a solid-colour PNG; the question asks for its colour. Data is generated into a
temporary folder by `make_toy_data`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from molmo_eval.core.errors import MolmoEvalError
from molmo_eval.core.task import ParseContext, Task
from molmo_eval.core.types import Answer, AnswerKind, Generation, ImageRef, Sample, SampleScore
from molmo_eval.data.files import confined, field, read_json
from molmo_eval.metrics.generic import mean

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "white": (250, 250, 250)}


def make_toy_data(root: Path, n: int = 40, splits: tuple[str, ...] = ("a", "b")) -> Path:
    """Write `n` samples per split under root/toy and return root."""
    d = root / "toy"
    (d / "images").mkdir(parents=True, exist_ok=True)
    names = sorted(COLOURS)
    for split in splits:
        rows = []
        for i in range(n):
            colour = names[i % len(names)]
            img = d / "images" / f"{split}_{i}.png"
            if not img.exists():
                Image.new("RGB", (8 + i % 5, 8), COLOURS[colour]).save(img)
            rows.append({"id": i, "image": f"images/{split}_{i}.png", "answer": colour,
                         "shade": "light" if colour == "white" else "dark"})
        (d / f"questions_{split}.json").write_text(json.dumps(rows))
    return root


def oracle_text(uid: str, root: Path) -> str:
    """The right answer for a toy sample uid (for scripted models in tests)."""
    _, split, sid = uid.split("/")
    rows = json.loads((root / "toy" / f"questions_{split}.json").read_text())
    return rows[int(sid)]["answer"]


@dataclass(frozen=True)
class ToyTask(Task):
    name = "toy"
    description = "colour of a solid image (harness tests only)"
    splits = ("a", "b")
    default_splits = ("a",)
    answer_kind = AnswerKind.TEXT
    primary_metric = "accuracy"
    data_dir = "toy"
    variants = ("official", "lenient")
    breakdowns = ("shade",)

    def data_files(self, data_dir: Path, split: str) -> list[Path]:
        return [data_dir / f"questions_{split}.json"]

    def load(self, data_dir: Path, split: str) -> list[Sample]:
        path = data_dir / f"questions_{split}.json"
        rows = read_json(path, "toy question file")
        out = []
        for i, r in enumerate(rows):
            rel = field(r, "image", path=path, index=i, types=str)
            out.append(Sample(id=str(field(r, "id", path=path, index=i, types=int)), task=self.name, split=split,
                              image=ImageRef(path=str(confined(data_dir, rel, path=path, record=i))),
                              prompt_fields={"question": "What colour is the image?"},
                              target={"answer": field(r, "answer", path=path, index=i, types=str)},
                              meta={"shade": r.get("shade", "")}))
        return out

    def prompt(self, sample: Sample, style: str = "default", space=None) -> str:
        q = sample.prompt_fields["question"]
        return f"{q} Answer with one word." if style == "default" else f"toy: {q}"

    def parse(self, sample: Sample, generation: Generation, ctx: ParseContext) -> Answer:
        text = generation.text.strip().lower().rstrip(".")
        if self.variant == "lenient":
            text = text.split()[-1] if text.split() else ""
        return Answer(AnswerKind.TEXT, text, parse_ok=bool(text))

    def score(self, sample: Sample, answer: Answer) -> SampleScore:
        ok = answer.parse_ok and answer.value == sample.target["answer"]
        return SampleScore(sample.uid, {"accuracy": float(ok)})

    def metrics(self):
        return (mean("accuracy"),)

    def read_predictions(self, path: Path, samples):
        rows = read_json(path, "predictions")
        by_id = {str(r["id"]): r["answer"] for r in rows}
        out = {}
        for s in samples:
            if s.id in by_id:
                out[s.uid] = Generation(text=by_id[s.id])
        return out


class ExplodingModel:
    """Raises on any batch that contains a request whose uid is in `bad` (tests isolation)."""

    name = "exploding"
    needs_pixels = True
    prompt_style = "default"

    def __init__(self, bad: set[str], answers: dict[str, str]):
        from molmo_eval.core.types import CoordSpace

        self.bad, self.answers, self.calls = bad, answers, 0
        self.coord_space = CoordSpace.PIXELS
        self.fingerprint = "exploding-v1"

    def cache_extra(self, request) -> str:
        return request.uid

    def generate(self, requests):
        self.calls += len(requests)
        if any(r.uid in self.bad for r in requests):
            raise RuntimeError("boom")
        assert all(r.images and r.images[0].pixels is not None for r in requests)
        return [Generation(text=self.answers.get(r.uid, "")) for r in requests]


class ConfigFailingModel(ExplodingModel):
    def generate(self, requests):
        raise MolmoEvalError("model misconfigured")
