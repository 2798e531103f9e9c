"""The sample viewer: chosen samples of a run, drawn with their ground truth and the prediction.

    report rows + samples.jsonl -> pick (worst / best / random / disagree between two runs)
      -> the image, found through the sample's task loader under the run's data root
      -> overlay: ground-truth boxes, masks and points green; predicted points/boxes red (a second
         run blue); the point a question refers to yellow -> HTML cards (embedded JPEG) or a listing

Reads records and the benchmark files the run was made from; never runs a model. The data root is
the one recorded in the run's configuration (``data_dirs[task]``, else ``data_root``, else the
embedded mini world of `molmo_eval.data.embedded`). A sample whose image cannot be found is still shown,
without its picture, with the reason.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from molmo_eval.core import registry
from molmo_eval.core.errors import ConfigError, MolmoEvalError
from molmo_eval.data.embedded import default_data_root, portable_root
from molmo_eval.data.images import load_image
from molmo_eval.metrics.stats import seed_for
from molmo_eval.report.model import find_row

HOW = ("worst", "best", "random", "disagree")
SCORE_COLUMNS = ("accuracy", "correct", "point_in_box", "f1", "iou", "circular", "vanilla", "count_correct")
GT, PRED, PRED_B, GIVEN = (34, 197, 94), (239, 68, 68), (59, 130, 246), (250, 204, 21)
MIN_SIDE = 320  # small images are enlarged so that overlays stay readable


# --- choosing samples --------------------------------------------------------------------------


def sample_score(line: Mapping[str, Any], primary: str = "") -> float | None:
    """The per-sample number samples are ranked by: the task's primary metric column when the
    sample has it, else the first applicable of the usual per-sample columns."""
    scores = line.get("scores") or {}
    for k in (primary, *SCORE_COLUMNS):
        v = scores.get(k) if k else None
        if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
            return float(v)
    return None


@dataclass(frozen=True)
class Pick:
    """One sample to show, with its line from one run (or two, for a disagreement)."""
    task: str
    uid: str
    why: str  # "worst", "best", "random", "disagree"
    lines: tuple[Mapping[str, Any], ...]
    labels: tuple[str, ...]
    record_config: Mapping[str, Any]
    variant: str = "official"


def select(
    lines: Sequence[Mapping[str, Any]], how: str, n: int, *, primary: str = "", seed: int = 0
) -> list[Mapping[str, Any]]:
    """``n`` lines of one run: lowest or highest score first (ties in file order), or a seeded
    random choice. Lines without an applicable score are skipped."""
    scored = [(v, i, ln) for i, ln in enumerate(lines) if (v := sample_score(ln, primary)) is not None]
    if how == "worst":
        scored.sort(key=lambda t: (t[0], t[1]))
    elif how == "best":
        scored.sort(key=lambda t: (-t[0], t[1]))
    elif how == "random":

        rng = np.random.default_rng(seed_for(seed, "viewer", len(lines)))
        idx = (
            sorted(rng.choice(len(scored), size=min(n, len(scored)), replace=False).tolist())
            if scored
            else []
        )
        return [scored[i][2] for i in idx]
    else:
        raise ConfigError(f"--samples {how!r}: expected one of {', '.join(HOW)}")
    return [t[2] for t in scored[:n]]


def disagreements(
    a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]], n: int, *, primary: str = ""
) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """Samples (by uid) whose scores differ between two runs, largest difference first."""
    by_uid = {ln.get("uid"): ln for ln in b}
    out = []
    for i, la in enumerate(a):
        lb = by_uid.get(la.get("uid"))
        if lb is None:
            continue
        sa, sb = sample_score(la, primary), sample_score(lb, primary)
        if sa is not None and sb is not None and sa != sb:
            out.append((-abs(sa - sb), i, la, lb))
    out.sort(key=lambda t: (t[0], t[1]))
    return [(t[2], t[3]) for t in out[:n]]


def pick_for_table(
    table: Any, store: Any, how: str, n: int, *, view: str | None = None, seed: int = 0
) -> list[Pick]:
    """Samples of every task of a report table, from the ``view`` row (default: the baseline, else
    the first row). ``disagree`` compares the baseline (else the first row) with the ``view`` row
    (default: the first other row)."""
    entries = [r.entry for r in table.rows]
    base_i = next((i for i, r in enumerate(table.rows) if r.is_baseline), None)
    other = base_i if base_i is not None else 0
    if view is not None:
        subject = find_row(entries, view)
    elif how == "disagree":
        subject = next((i for i in range(len(entries)) if i != other), other)
    else:
        subject = other
    if how == "disagree" and other == subject:
        if len(entries) < 2:
            raise ConfigError("--samples disagree needs two runs (or a grid)")
        other = 1 if subject == 0 else 0
    picks: list[Pick] = []
    tasks = list(dict.fromkeys(c.task for c in table.columns))
    for task in tasks:
        e = entries[subject]
        tr = e.record.tasks.get(task)
        lines = store.lines(e, task)
        if tr is None or lines is None:
            continue
        if how == "disagree":
            o = entries[other]
            other_lines = store.lines(o, task)
            if other_lines is None:
                continue
            for la, lb in disagreements(other_lines, lines, n, primary=tr.primary_metric):
                picks.append(
                    Pick(
                        task,
                        str(la.get("uid")),
                        how,
                        (la, lb),
                        (o.label, e.label),
                        o.record.config,
                        tr.variant,
                    )
                )
        else:
            for ln in select(lines, how, n, primary=tr.primary_metric, seed=seed):
                picks.append(
                    Pick(task, str(ln.get("uid")), how, (ln,), (e.label,), e.record.config, tr.variant)
                )
    return picks


# --- finding images ----------------------------------------------------------------------------


class ImageFinder:
    """Sample id -> ImageRef through each task's own loader, one split loaded once."""
    def __init__(self) -> None:
        self._refs: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self._errors: dict[tuple[str, str, str, str], str] = {}

    def data_dir(self, config: Mapping[str, Any], task: Any) -> Path:
        dirs = config.get("data_dirs") or {}
        if task.name in dirs:
            return Path(dirs[task.name])
        root = config.get("data_root")
        if root is None:
            return default_data_root() / task.data_dir
        return portable_root(Path(root)) / task.data_dir  # a cached world: generated here if need be

    def find(
        self, config: Mapping[str, Any], task_name: str, variant: str, split: str, sample_id: str
    ) -> tuple[Any | None, str]:
        """(ImageRef, "") or (None, why not)."""
        try:
            task = registry.get_task(task_name, variant)
            d = self.data_dir(config, task)
        except MolmoEvalError as e:
            return None, str(e)
        key = (task_name, variant, str(d), split)
        if key not in self._refs and key not in self._errors:
            try:
                self._refs[key] = {s.id: s.image for s in task.load(d, split)}
            except (MolmoEvalError, OSError) as e:
                self._errors[key] = f"cannot load {task_name} {split} from {d}: {e}"
        if key in self._errors:
            return None, self._errors[key]
        ref = self._refs[key].get(sample_id)
        return (ref, "") if ref is not None else (None, f"sample {sample_id} not in {d}")


# --- drawing -----------------------------------------------------------------------------------


def draw(pixels: np.ndarray, lines: Sequence[Mapping[str, Any]]) -> bytes:
    """JPEG of the image with the first line's ground truth and every line's prediction drawn."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.asarray(pixels, dtype=np.uint8)).convert("RGB")
    w, h = img.size
    s = max(1.0, MIN_SIDE / max(w, h))
    if s > 1.0:
        img = img.resize((round(w * s), round(h * s)), Image.Resampling.BILINEAR)
    first = lines[0]
    target = first.get("target") or {}
    mask = target_mask(target, (h, w))
    if mask is not None:
        img = _tint(img, mask, GT)
    d = ImageDraw.Draw(img)
    for box in _boxes(target):
        d.rectangle([v * s for v in box], outline=GT, width=2)
    for x, y in target.get("points") or []:
        _ring(d, x * s, y * s, 6, GT)
    given = (first.get("prompt_fields") or {}).get("point")
    if isinstance(given, (list, tuple)) and len(given) == 2:
        _cross(d, given[0] * s, given[1] * s, 8, GIVEN)
    for line, colour in zip(lines, (PRED, PRED_B)):
        _draw_answer(d, line.get("answer"), s, colour)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _boxes(target: Mapping[str, Any]) -> list[Sequence[float]]:
    out = [target["box"]] if _is_box(target.get("box")) else []
    out += [b for b in target.get("boxes") or [] if _is_box(b)]
    return out


def _is_box(b: Any) -> bool:
    return isinstance(b, (list, tuple)) and len(b) == 4 and all(isinstance(v, (int, float)) for v in b)


def target_mask(target: Mapping[str, Any], hw: tuple[int, int]) -> np.ndarray | None:
    """Union of the target's masks (COCO RLE or polygons) as an (H, W) bool array, or None."""
    masks = list(target.get("masks") or []) + ([target["mask"]] if target.get("mask") is not None else [])
    if not masks:
        return None
    from pycocotools import mask as mask_utils

    h, w = hw
    out = np.zeros((h, w), dtype=bool)
    for m in masks:
        try:
            if isinstance(m, dict):
                rle = dict(m)
                if isinstance(rle.get("counts"), str):
                    rle["counts"] = rle["counts"].encode()
                dec = mask_utils.decode(rle)
            else:
                dec = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(m, h, w)))
        except (TypeError, ValueError, KeyError):
            continue
        dec = dec.max(axis=2) if dec.ndim == 3 else dec
        if dec.shape == out.shape:
            out |= dec.astype(bool)
    return out if out.any() else None


def _tint(img: Any, mask: np.ndarray, colour: tuple[int, int, int], alpha: float = 0.35) -> Any:
    from PIL import Image

    m = Image.fromarray(mask.astype(np.uint8) * 255).resize(img.size, Image.Resampling.NEAREST)
    arr = np.asarray(img, dtype=np.float32)
    sel = np.asarray(m) > 0
    arr[sel] = (1 - alpha) * arr[sel] + alpha * np.array(colour, dtype=np.float32)
    return Image.fromarray(arr.round().astype(np.uint8))


def _ring(d: Any, x: float, y: float, r: float, colour: tuple[int, int, int]) -> None:
    d.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=2)


def _dot(d: Any, x: float, y: float, r: float, colour: tuple[int, int, int]) -> None:
    d.ellipse([x - r - 1.5, y - r - 1.5, x + r + 1.5, y + r + 1.5], fill=(255, 255, 255))
    d.ellipse([x - r, y - r, x + r, y + r], fill=colour)


def _cross(d: Any, x: float, y: float, r: float, colour: tuple[int, int, int]) -> None:
    for dx, dy in ((r, 0), (0, r)):
        d.line([x - dx, y - dy, x + dx, y + dy], fill=(0, 0, 0), width=5)
        d.line([x - dx, y - dy, x + dx, y + dy], fill=colour, width=3)


def _draw_answer(d: Any, answer: Any, s: float, colour: tuple[int, int, int]) -> None:
    if not isinstance(answer, Mapping) or not answer.get("parse_ok", True):
        return
    kind, value = answer.get("kind"), answer.get("value")
    if kind == "points" and isinstance(value, list):
        for p in value:
            if isinstance(p, (list, tuple)) and len(p) == 2:
                _dot(d, p[0] * s, p[1] * s, 4, colour)
    elif kind == "box" and _is_box(value):
        d.rectangle([float(v) * s for v in value or ()], outline=colour, width=3)


# --- output ------------------------------------------------------------------------------------


def target_text(target: Mapping[str, Any], limit: int = 240) -> str:
    """A short readable form of a sample's targets (masks and long lists left out)."""
    keep = {k: v for k, v in target.items() if k not in ("mask", "masks", "segmentation")}
    if isinstance(keep.get("answers"), list):
        counts: dict[str, int] = {}
        for a in keep["answers"]:
            counts[str(a)] = counts.get(str(a), 0) + 1
        keep["answers"] = ", ".join(f"{a} x{c}" if c > 1 else a for a, c in counts.items())
    text = json.dumps(keep, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _score_text(line: Mapping[str, Any], primary: str = "") -> str:
    v = sample_score(line, primary)
    return "–" if v is None else f"{v:.2f}"


def html_cards(picks: Sequence[Pick], finder: ImageFinder | None = None) -> str:
    """The viewer section of the HTML report: one card per pick, images embedded as JPEG."""
    finder = finder or ImageFinder()
    out = [
        '<div class="legend"><span class="gt">■</span> ground truth (box / mask / points) '
        '<span class="pa">●</span> prediction <span class="pb">●</span> prediction of the second run '
        '<span class="given">+</span> point given in the question</div>',
        '<div class="cards">',
    ]
    for p in picks:
        first = p.lines[0]
        ref, why = finder.find(
            p.record_config, p.task, p.variant, str(first.get("split")), str(first.get("id"))
        )
        img_html = f'<div class="noimg">{html.escape(why)}</div>'
        if ref is not None:
            try:
                pixels = load_image(ref, decode=True).pixels
                assert pixels is not None
                jpeg = draw(pixels, p.lines)
                img_html = (
                    f'<img alt="{html.escape(p.uid)}" '
                    f'src="data:image/jpeg;base64,{base64.b64encode(jpeg).decode()}">'
                )
            except (MolmoEvalError, OSError, ValueError) as e:
                img_html = f'<div class="noimg">{html.escape(str(e))}</div>'
        rows = [
            f'<div class="uid">{html.escape(p.uid)} <span class="why">{p.why}</span></div>',
            f'<div class="prompt">{html.escape(str(first.get("prompt", "")))}</div>',
        ]
        for k, (line, label) in enumerate(zip(p.lines, p.labels)):
            out_text = (
                (line.get("output") or {}).get("text", "") if isinstance(line.get("output"), Mapping) else ""
            )
            err = (
                f' <span class="err">error: {html.escape(str(line["error"]))}</span>'
                if line.get("error")
                else ""
            )
            cls = "pa" if k == 0 else "pb"
            rows.append(
                f'<div class="out"><span class="{cls}">●</span> <b>{html.escape(label)}</b> '
                f"score {_score_text(line)}: <code>{html.escape(out_text)}</code>{err}</div>"
            )
        rows.append(
            f'<div class="target">target: <code>{html.escape(target_text(first.get("target") or {}))}'
            f"</code></div>"
        )
        out.append(f'<figure class="card">{img_html}<figcaption>{"".join(rows)}</figcaption></figure>')
    out.append("</div>")
    return "\n".join(out)


def markdown_listing(picks: Sequence[Pick]) -> str:
    """The chosen samples as text (no images), for Markdown and the terminal."""
    out = []
    for p in picks:
        first = p.lines[0]
        prompt = " ".join(str(first.get("prompt", "")).split())
        outs = "; ".join(
            f"{label}: `{_md_code((ln.get('output') or {}).get('text', ''))}` (score {_score_text(ln)})"
            for ln, label in zip(p.lines, p.labels)
        )
        target = _md_code(target_text(first.get("target") or {}))
        out.append(f"- **{p.uid}** ({p.why}) — {prompt} → {outs}; target `{target}`")
    return "\n".join(out) + ("\n" if out else "")


def _md_code(s: str) -> str:
    return " ".join(str(s).replace("`", "'").split())
