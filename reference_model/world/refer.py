"""RefCOCO, RefCOCO+ and RefCOCOg in the refer toolkit's layout (``refer/``).

    refer/refcoco/refs(unc).p  + refcoco/instances.json      splits val, testA, testB
    refer/refcoco+/refs(unc).p + refcoco+/instances.json     same images, location words banned
    refer/refcocog/refs(umd).p + refcocog/instances.json     own images, longer expressions; val, test
    refer/images/mscoco/images/train2014/COCO_train2014_<image_id:012d>.jpg

As in the real datasets every image holds two or more objects of the referred category, so an
expression must tell them apart; testA images are about people, testB about other objects.
Refs pickles are lists of plain dicts with the refer key set (protocol 2); ``instances.json`` is
COCO (every object of the image annotated, bbox ``[x, y, w, h]``, exact pixel-border polygons).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from .formats import mask_polygons
from .language import Ref, article, coloured, referring, region, region_phrase
from .ontology import CATEGORIES, CATEGORY_NAMES, LOCATION_WORDS
from .rng import Rng, derive, eval_scene_id
from .scene import Scene, SceneObject, SceneSpec, make_scene
from .sink import Sink

IMAGE_DIR = "images/mscoco/images/train2014"
OTHER_KINDS = tuple(c for c in CATEGORY_NAMES if c not in ("person", "sign"))
_INFO = {"description": "molmo-eval synthetic world in the refer (RefCOCO) layout", "version": "1.0",
         "year": 2014, "contributor": "molmo-eval", "date_created": "2015-01-27 09:11:52.357475"}
_LICENSES = [{"url": "http://creativecommons.org/licenses/by/4.0/", "id": 1, "name": "CC BY 4.0"}]


def _tokens(raw: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", raw.lower())


class _Dataset:
    """Accumulates one refer dataset: images, annotations, refs and sentences."""

    def __init__(self) -> None:
        self.images: list[dict] = []
        self.annotations: list[dict] = []
        self.refs: list[dict] = []
        self.n_sent = 0

    def add_image(self, scene: Scene, image_id: int, anns: list[dict]) -> dict[int, int]:
        self.images.append({"license": 1, "file_name": f"COCO_train2014_{image_id:012d}.jpg", "coco_url": "",
                            "height": scene.height, "width": scene.width, "date_captured": "2013-11-14 16:28:13",
                            "flickr_url": "", "id": image_id})
        self.annotations += anns
        return {o.index: a["id"] for o, a in zip(scene.objects, anns, strict=True)}

    def add_ref(self, image_id: int, ann_id: int, category: str, split: str, raws: list[str]) -> int:
        sents = []
        for raw in raws:
            toks = _tokens(raw)
            sents.append({"tokens": toks, "raw": raw, "sent_id": self.n_sent, "sent": " ".join(toks)})
            self.n_sent += 1
        self.refs.append({"sent_ids": [s["sent_id"] for s in sents],
                          "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg", "ann_id": ann_id,
                          "ref_id": len(self.refs), "image_id": image_id, "split": split, "sentences": sents,
                          "category_id": _cat_id(category)})
        return len(sents)

    def instances(self) -> dict:
        cats = [{"supercategory": c.supercategory, "id": c.id, "name": c.name} for c in CATEGORIES]
        return {"info": _INFO, "images": self.images, "licenses": _LICENSES, "annotations": self.annotations,
                "categories": cats}


def coco_annotations(scene: Scene, image_id: int) -> list[dict]:
    """COCO annotations of every object of the image (exact pixel-border polygons)."""
    return [{"segmentation": mask_polygons(o.mask), "area": float(o.area), "iscrowd": 0, "image_id": image_id,
             "bbox": [float(v) for v in o.coco_bbox], "category_id": _cat_id(o.category),
             "id": image_id * 100 + o.index} for o in scene.objects]


def _cat_id(name: str) -> int:
    return next(c.id for c in CATEGORIES if c.name == name)


def _scene_for(seed: int, dataset: str, split: str, i: int, rng: Rng) -> tuple[Scene, str]:
    people = split == "testA" or (split in ("val", "test") and rng.chance(0.5))
    cat = "person" if people else rng.choice(OTHER_KINDS)
    n = rng.weighted((2, 3), (0.7, 0.3))
    theme = rng.choice(("street", "park", "kitchen")) if people else None
    scene = make_scene(eval_scene_id(seed, dataset, split, i), SceneSpec(theme=theme, require={cat: n}))
    return scene, cat


def short_expression(ref: Ref, rng: Rng) -> str:
    """RefCOCO-style short phrasing of a unique description."""
    p = ref.phrase
    if ref.kind == "location" and p.endswith((" on the left", " on the right")) and rng.chance(0.5):
        side = p.rsplit(" ", 1)[1]
        return f"{side} {p.split(' on the ')[0]}"
    return rng.choice((p, p, f"the {p}"))


def long_expression(scene: Scene, t: SceneObject, ref: Ref, rng: Rng) -> str:
    """RefCOCOg-style longer description: the unique clause plus more true detail."""
    base = coloured(t)
    if t.category == "person" and t.hat:
        base += f" wearing {article(t.hat + ' hat')}"
    elif t.category == "person" and ref.kind == "hat":
        base += " without a hat"
    if t.category == "sign":
        base += f" that says {t.text}"
    if ref.kind == "size":
        base = f"{ref.attr.replace('biggest', 'big').replace('smallest', 'small')} {base}"
    clause = ""
    if ref.kind == "location":
        clause = ref.phrase[len(t.category) + 1:] if ref.phrase.startswith(t.category) else f"on the {ref.attr}"
        clause = f"that is {clause}"
    elif ref.kind == "relation":
        clause = f"that is {ref.phrase[len(t.category) + 1:]}"
    where = f"{region_phrase(region(scene, t))} of the picture"
    parts = [article(base), clause, where if ref.kind != "location" and (not clause or rng.chance(0.5)) else ""]
    return " ".join(p for p in parts if p)


def _distinct(raws: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(raws))


def _targets(scene: Scene, cat: str) -> list[SceneObject]:
    return scene.of(cat)


def write_refer(sink: Sink, n_images: int, seed: int, tick: Callable[[int, int], None]) -> dict[str, int]:
    coco, plus, cocog = _Dataset(), _Dataset(), _Dataset()
    counts: dict[str, int] = {}
    total = n_images * 5
    done = 0
    for split in ("val", "testA", "testB"):
        for i in range(n_images):
            rng = Rng(derive("refcoco", seed, split, i))
            scene, cat = _scene_for(seed, "refcoco", split, i, rng)
            image_id = 600000 + len(coco.images) * 11
            sink.image(f"{IMAGE_DIR}/COCO_train2014_{image_id:012d}.jpg", scene.image)
            anns = coco_annotations(scene, image_id)
            ann_coco = coco.add_image(scene, image_id, anns)
            plus.add_image(scene, image_id, anns)
            for t in _targets(scene, cat):
                refs = referring(scene, t)
                if not refs:
                    continue
                picks = rng.sample(refs, min(len(refs), rng.randint(1, 3)))
                n = coco.add_ref(image_id, ann_coco[t.index], cat, split, _distinct(short_expression(r, rng) for r in picks))
                counts[f"refcoco/{split}"] = counts.get(f"refcoco/{split}", 0) + n
                plain = [r for r in refs if not r.has_location_words]
                if plain:
                    picks = rng.sample(plain, min(len(plain), rng.randint(1, 2)))
                    n = plus.add_ref(image_id, ann_coco[t.index], cat, split, _distinct(short_expression(r, rng) for r in picks))
                    counts[f"refcoco+/{split}"] = counts.get(f"refcoco+/{split}", 0) + n
            done += 1
            tick(done, total)
    for split in ("val", "test"):
        for i in range(n_images):
            rng = Rng(derive("refcocog", seed, split, i))
            scene, cat = _scene_for(seed, "refcocog", split, i, rng)
            image_id = 700000 + len(cocog.images) * 11
            sink.image(f"{IMAGE_DIR}/COCO_train2014_{image_id:012d}.jpg", scene.image)
            ann = cocog.add_image(scene, image_id, coco_annotations(scene, image_id))
            for t in _targets(scene, cat):
                refs = referring(scene, t)
                if not refs:
                    continue
                picks = rng.sample(refs, min(len(refs), rng.randint(1, 2)))
                n = cocog.add_ref(image_id, ann[t.index], cat, split, _distinct(long_expression(scene, t, r, rng) for r in picks))
                counts[f"refcocog/{split}"] = counts.get(f"refcocog/{split}", 0) + n
            done += 1
            tick(done, total)
    for name, ds, refs_file in (("refcoco", coco, "refs(unc).p"), ("refcoco+", plus, "refs(unc).p"),
                                ("refcocog", cocog, "refs(umd).p")):
        sink.pickle(f"{name}/{refs_file}", ds.refs)
        sink.json(f"{name}/instances.json", ds.instances())
    assert not any(w in LOCATION_WORDS for r in plus.refs for s in r["sentences"] for w in s["tokens"])
    return dict(sorted(counts.items()))
