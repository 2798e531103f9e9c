"""POPE (``pope/coco_pope_{random,popular,adversarial}.json``, JSON lines) built the way POPE builds it.

Images with at least three object categories; per image three ground-truth categories are asked
about ("yes") and three absent ones ("no"), alternating yes/no, question ids from 1. The splits
share images and positive questions and differ only in how negatives are sampled:

- random: absent categories drawn uniformly;
- popular: the absent categories that occur in the most images of the pool;
- adversarial: the absent categories that co-occur most often with the image's categories.

Images ``pope/val2014/COCO_val2014_<id:012d>.jpg``; question text "Is there a <object> in the image?".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from .ontology import CATEGORY_NAMES
from .rng import Rng, derive, eval_scene_id
from .scene import SceneSpec, make_scene
from .sink import Sink

PER_IMAGE = 3  # positive and negative questions per image
SPLITS = ("random", "popular", "adversarial")


def negatives(present: list[str], frequency: Counter, cooccur: Counter, rng: Rng) -> dict[str, list[str]]:
    """POPE's three negative samplings for one image."""
    absent = [c for c in CATEGORY_NAMES if c not in present]
    order = {c: i for i, c in enumerate(CATEGORY_NAMES)}
    popular = sorted(absent, key=lambda c: (-frequency[c], order[c]))
    adversarial = sorted(absent, key=lambda c: (-sum(cooccur[(p, c)] for p in present), order[c]))
    return {"random": rng.sample(absent, PER_IMAGE), "popular": popular[:PER_IMAGE],
            "adversarial": adversarial[:PER_IMAGE]}


def question(category: str) -> str:
    return f"Is there a {category} in the image?"


def write_pope(sink: Sink, n_images: int, seed: int, tick: Callable[[int, int], None]) -> dict[str, int]:
    present: list[list[str]] = []
    files: list[str] = []
    for i in range(n_images):
        scene = make_scene(eval_scene_id(seed, "pope", i), SceneSpec(min_categories=PER_IMAGE, n_objects=(4, 9)))
        image_id = 800000 + 13 * i
        name = f"COCO_val2014_{image_id:012d}.jpg"
        sink.image(f"val2014/{name}", scene.image)
        present.append(scene.categories())
        files.append(name)
        tick(i + 1, n_images)
    frequency = Counter(c for cats in present for c in cats)
    cooccur = Counter((a, b) for cats in present for a in cats for b in CATEGORY_NAMES if b != a and b in cats)
    rows: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for i, cats in enumerate(present):
        rng = Rng(derive("pope-questions", seed, i))
        positives = rng.sample(cats, PER_IMAGE)
        negs = negatives(cats, frequency, cooccur, rng)
        for split in SPLITS:
            for pos, neg in zip(positives, negs[split], strict=True):
                for obj, label in ((pos, "yes"), (neg, "no")):
                    rows[split].append({"question_id": len(rows[split]) + 1, "image": files[i],
                                        "text": question(obj), "label": label})
    for split in SPLITS:
        sink.jsonl(f"coco_pope_{split}.json", rows[split])
    return {s: len(rows[s]) for s in SPLITS}
