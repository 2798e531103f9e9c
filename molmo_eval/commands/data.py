"""`molmo-eval data`: generate the synthetic world (`synth`) and look at any benchmark split (`show`).

    molmo-eval data synth --out DIR --size mini|small|full [--seed N]
    molmo-eval data show --task T [--split S] [--n 16] [--data-root DIR] --out FILE.png

`show` reads through the task plugins (the same loaders as an evaluation, real data or synthetic)
and draws a contact sheet: each sample's image with its ground truth (boxes, mask outlines, points) and
its question and answer under it. Without ``--data-root`` it shows the embedded mini world.
"""

from __future__ import annotations

import argparse
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

from molmo_eval.core.errors import ConfigError

SIZES = ("mini", "small", "full")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="generate the synthetic benchmark world or draw samples of a split")
    data_sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    s = data_sub.add_parser("synth", help="write every benchmark split of the synthetic world in its official format")
    s.add_argument("--out", type=Path, required=True, help="folder to write (becomes a --data-root)")
    s.add_argument("--size", choices=SIZES, default="mini", help="mini (default), small or full")
    s.add_argument("--seed", type=int, default=0, help="world seed (default 0, the embedded world)")
    s.add_argument("--only", default="", help="comma-separated benchmark folders to write (default: all)")
    s.set_defaults(func=synth)

    d = data_sub.add_parser("show", help="draw a contact sheet of samples with their ground truth")
    d.add_argument("--task", required=True, help="task name, e.g. refcoco or pointqa")
    d.add_argument("--split", default=None, help="split (default: the task's first default split)")
    d.add_argument("-n", "--n", dest="n", type=int, default=16, help="number of samples (default 16)")
    d.add_argument("--data-root", type=Path, default=None, help="benchmark data root (default: embedded mini world)")
    d.add_argument("--out", type=Path, required=True, help="PNG file to write")
    d.add_argument("--start", type=int, default=0, help="index of the first sample shown (default 0)")
    d.set_defaults(func=show)


# --- synth -----------------------------------------------------------------------------------------

def synth(args: argparse.Namespace) -> int:
    from molmo_eval.data.embedded import write_manifest
    from molmo_eval.reference_model.world.world import BENCHMARKS, write_world
    from molmo_eval.run.progress import Progress

    only = [b for b in args.only.split(",") if b] or list(BENCHMARKS)
    unknown = [b for b in only if b not in BENCHMARKS]
    if unknown:
        raise ConfigError(f"--only: unknown benchmark folder(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    t0 = time.perf_counter()
    state: dict[str, Any] = {"name": None, "done": 0}
    with Progress() as progress:
        def tick(name: str, done: int, total: int) -> None:
            if name != state["name"]:
                if state["name"] is not None:
                    progress.finish()
                progress.start(f"world {name}", total)
                state.update(name=name, done=0)
            progress.advance(done - state["done"])
            state["done"] = done

        info = write_world(args.out, args.size, args.seed, benchmarks=only, progress=tick)
        if state["name"] is not None:
            progress.finish()
    write_manifest(args.out, {"world_version": info["world_version"], "size": args.size, "seed": args.seed,
                              "world_digest": info["digest"]})
    for name, b in info["benchmarks"].items():
        splits = ", ".join(f"{k} {v}" for k, v in b["samples"].items())
        print(f"{name:8s} {b['digests']['images']:6d} images  {splits}")
    print(f"world v{info['world_version']} {args.size} seed {args.seed}: digest {info['digest'][:16]}, "
          f"written to {args.out} in {time.perf_counter() - t0:.1f}s")
    return 0


# --- show ------------------------------------------------------------------------------------------

def show(args: argparse.Namespace) -> int:
    from molmo_eval.core import registry

    task = registry.get_task(args.task)
    split = task.check_split(args.split) if args.split else task.default_splits[0]
    if args.n < 1:
        raise ConfigError("--n must be at least 1")
    if args.data_root is None:
        from molmo_eval.data.embedded import default_data_root

        root = default_data_root()
    else:
        root = args.data_root
    samples = task.load(root / task.data_dir, split)
    chosen = samples[args.start:args.start + args.n]
    if not chosen:
        raise ConfigError(f"--start {args.start}: the split has only {len(samples)} samples")
    draw_sheet(chosen, args.out, f"{task.name} / {split} ({len(samples)} samples)")
    print(f"wrote {args.out} ({len(chosen)} samples of {task.name}/{split})")
    return 0


PANEL_W = 4.2  # inches per panel
LINE_H = 0.13  # inches per caption line (7.5 pt monospace and its leading)
CAPTION_PAD = 0.12  # inches between an image and its caption, and below the caption


def draw_sheet(samples: list, out: Path, title: str) -> None:
    """Write `sheet_figure` as a PNG."""
    fig = sheet_figure(samples, title)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)


def sheet_figure(samples: list, title: str) -> Any:
    """A grid of panels: each sample's image with its ground truth — masks outlined (never tinted, so
    an object keeps its colour), boxes as rectangles, points as crosses — and its question and answer in
    a caption band of its own under the image. Panel rows are laid out top to bottom with explicit
    heights (image, then as many caption lines as the row's longest caption), so a caption never runs
    into the image above or below. Image axes are labelled with the sample uid, captions ``caption:uid``."""
    from molmo_eval.report.plots import matplotlib_agg

    matplotlib_agg("molmo-eval data show")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from molmo_eval.data.images import load_image

    cols = min(4, len(samples))
    rows = [samples[i:i + cols] for i in range(0, len(samples), cols)]
    pictures = [load_image(s.image, decode=True).pixels if s.image is not None else None for s in samples]
    captions = [_caption(s) for s in samples]
    img_w = PANEL_W - 0.3
    heights = []  # per row: (image height, caption height) in inches
    for r, row in enumerate(rows):
        shapes = [p.shape for p in pictures[r * cols:r * cols + len(row)] if p is not None]
        img_h = max((img_w * h / w for h, w, *_ in shapes), default=img_w)
        lines = max(c.count("\n") + 1 for c in captions[r * cols:r * cols + len(row)])
        heights.append((img_h, 2 * CAPTION_PAD + lines * LINE_H))
    title_h = 0.5
    fig_w, fig_h = PANEL_W * cols, title_h + sum(a + b for a, b in heights)
    fig = Figure(figsize=(fig_w, fig_h))
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontsize=12, y=1 - 0.25 / fig_h, va="center")
    top = fig_h - title_h
    for r, row in enumerate(rows):
        img_h, cap_h = heights[r]
        for c, sample in enumerate(row):
            i = r * cols + c
            left = (c * PANEL_W + 0.15) / fig_w
            ax = fig.add_axes((left, (top - img_h) / fig_h, img_w / fig_w, img_h / fig_h), label=sample.uid)
            ax.axis("off")
            ax.set_anchor("S")  # a shorter image sits on its caption
            if pictures[i] is not None:
                _panel(ax, sample, pictures[i])
            cap = fig.add_axes((left, (top - img_h - cap_h) / fig_h, img_w / fig_w, cap_h / fig_h),
                               label=f"caption:{sample.uid}")
            cap.axis("off")
            cap.text(0, 1 - CAPTION_PAD / cap_h, captions[i], fontsize=7.5, family="monospace", va="top",
                     ha="left", transform=cap.transAxes)
        top -= img_h + cap_h
    return fig


_COLOURS = ("#ff1f5b", "#00cd6c", "#009ade", "#af58ba", "#ffc61e", "#f28522")


def _panel(ax: Any, sample: Any, img: Any) -> None:
    """The image at its own aspect ratio, with the target drawn on top of it: a mask as its outline
    (white halo, coloured line), a box as a rectangle (dashed when the mask is drawn too), points as
    crosses."""
    h, w = img.shape[:2]
    ax.imshow(img, extent=(0, w, h, 0), interpolation="nearest")
    t = sample.target
    masks = list(t.get("masks") or ([t["mask"]] if t.get("mask") is not None else []))
    outlined = False
    for i, m in enumerate(masks):
        decoded = _decode_mask(m, h, w)
        if decoded is not None and decoded.any():
            _outline(ax, decoded, _COLOURS[i % len(_COLOURS)])
            outlined = True
    boxes = list(t.get("boxes") or ([t["box"]] if t.get("box") is not None else []))
    for i, b in enumerate(boxes):
        x1, y1, x2, y2 = (float(v) for v in b)
        ax.add_patch(_rect(x1, y1, x2 - x1, y2 - y1, _COLOURS[i % len(_COLOURS)], dashed=outlined))
    points = list(t.get("points") or [])
    if sample.prompt_fields.get("point") is not None:
        points.append(sample.prompt_fields["point"])
    for x, y in points:
        ax.plot([x], [y], marker="x", color="white", markersize=9, mew=3)
        ax.plot([x], [y], marker="x", color="#ff1f5b", markersize=8, mew=1.6)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)


def _outline(ax: Any, mask: Any, colour: str) -> None:
    """The border of a mask, drawn along pixel edges (the mask is padded so a border at the image edge
    closes), over a white halo so it shows on any background."""
    import numpy as np

    padded = np.pad(mask.astype(float), 1)
    ys, xs = np.arange(padded.shape[0]) - 0.5, np.arange(padded.shape[1]) - 0.5  # pixel centres
    for width, c in ((3.2, "white"), (1.6, colour)):
        ax.contour(xs, ys, padded, levels=[0.5], colors=[c], linewidths=width)


def _rect(x: float, y: float, w: float, h: float, colour: str, dashed: bool = False) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, fill=False, edgecolor=colour, linewidth=1.8, linestyle="--" if dashed else "-")


def _decode_mask(m: Any, h: int, w: int) -> Any:
    """A COCO RLE dict or polygon list decoded to an (h, w) mask, or None for other forms."""
    try:
        from pycocotools import mask as coco_mask
    except ImportError:  # the masks are just not drawn
        return None
    if isinstance(m, dict) and "counts" in m:
        rle = dict(m)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
        if isinstance(rle["counts"], list):
            rle = coco_mask.frPyObjects(rle, *rle["size"])
        return coco_mask.decode(rle)
    if isinstance(m, list) and m and isinstance(m[0], list):
        return coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(m, h, w)))
    return None


def _caption(sample: Any) -> str:
    f, t = sample.prompt_fields, sample.target
    lines = [f"id {sample.id}"]
    text = f.get("question") or f.get("expression") or f.get("label") or ""
    lines += textwrap.wrap(f"Q: {text}", 46)
    options = f.get("options") or {}
    if options:
        lines += textwrap.wrap("   ".join(f"{k}. {v}" for k, v in options.items()), 46)
    lines += textwrap.wrap(f"A: {_answer(t)}", 46)
    meta = ", ".join(f"{k}={v}" for k, v in sample.meta.items() if v is not None)
    if meta:
        lines += textwrap.wrap(meta, 46)
    return "\n".join(lines[:10])


def _answer(t: Any) -> str:
    for key in ("answer", "label"):
        if key in t and isinstance(t[key], str):
            extra = ""
            if t.get("answers"):
                extra = f"  (accepted: {', '.join(dict.fromkeys(t['answers']))})"
            return t[key] + extra
    if t.get("answers"):
        counts = Counter(t["answers"])
        return ", ".join(f"{a}×{n}" if n > 1 else a for a, n in counts.most_common(4))
    if "count" in t:
        return f"{t['count']} target(s)"
    if t.get("box") is not None:
        return "box " + ", ".join(f"{float(v):.0f}" for v in t["box"])
    return ""
