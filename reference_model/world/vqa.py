"""VQAv2 and TextVQA splits in their official JSON formats.

VQAv2 (``vqav2/``): ``v2_OpenEnded_mscoco_val2014_questions.json``, ``v2_mscoco_val2014_annotations.json``
and ``val2014/COCO_val2014_<image_id:012d>.jpg``. Three questions per image; ``question_type`` is the
longest of the 65 official VQA question-type prefixes that starts the question (else "none of the
above"); ``answer_type`` yes/no, number or other; yes/no answers balanced exactly 50/50; ten
simulated human answers (`annotators.vqa_answers`) and ``multiple_choice_answer`` = the most common.

TextVQA (``textvqa/``): ``TextVQA_0.5.1_val.json`` with the official record fields and
``train_images/<image_id>.jpg``; questions about words on signs, ten answers with OCR-like noise.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .annotators import most_common, textvqa_answers, vqa_answers
from .questions import QA, ask, q_read
from .rng import Rng, derive, eval_scene_id
from .scene import SceneSpec, make_scene
from .sink import Sink

# The official question types of VQA (mscoco_question_types.txt), matched as question prefixes.
VQA_QUESTION_TYPES: tuple[str, ...] = (
    "how many", "is the", "what", "what color is the", "what is the", "is this", "is this a", "what is",
    "are the", "what kind of", "is there a", "what type of", "is it", "what are the", "where is the",
    "is there", "does the", "what color are the", "are these", "are there", "which", "is", "what is the man",
    "is the man", "are", "how", "does this", "what is on the", "what does the", "how many people are",
    "what is in the", "what is this", "do", "what are", "are they", "what time", "what sport is",
    "are there any", "is he", "what color is", "why", "where are the", "what color", "who is",
    "what animal is", "is the woman", "is this an", "do you", "how many people are in", "what room is",
    "has", "is this person", "what is the woman", "can you", "why is the", "is the person",
    "what is the color of the", "what is the person", "could", "was", "is that a", "what number is",
    "what is the name", "what brand", "none of the above",
)

VQA_WEIGHTS: dict[str, float] = {
    "color": 1.6, "count": 1.5, "exist": 1.4, "verify_color": 0.8, "category": 1.0, "shape": 0.6,
    "where": 0.8, "read": 0.3, "relation": 0.9, "compare": 0.5, "hat": 0.4, "same_color": 0.1,
    "scene": 0.5, "which": 0.6,
}
QUESTIONS_PER_IMAGE = 3
_INFO = {"description": "molmo-eval synthetic world, written in the VQA v2 format", "version": "2.0",
         "year": 2017, "contributor": "molmo-eval", "date_created": "2017-04-26 17:00:44"}
_LICENSE = {"url": "http://creativecommons.org/licenses/by/4.0/", "name": "Creative Commons Attribution 4.0"}


def question_type(question: str) -> str:
    """The longest official VQA question type that prefixes the question (whole words)."""
    words = re.sub(r"[^a-z0-9' ]", " ", question.lower()).split()
    best, best_len = "none of the above", 0
    for t in VQA_QUESTION_TYPES[:-1]:
        tw = t.split()
        if len(tw) > best_len and words[:len(tw)] == tw:
            best, best_len = t, len(tw)
    return best


def balanced_ask(scene, rng: Rng, weights: dict[str, float], balance: list[int], seen: set,
                 tries: int = 24) -> QA | None:
    """A question whose yes/no answer (if any) evens out ``balance`` = [yes, no] counts and that asks
    nothing already asked about the image (``seen`` holds question texts and (family, objects))."""
    want = "yes" if balance[0] <= balance[1] else "no"
    for _ in range(tries):
        qa = ask(scene, rng, weights)
        if qa is None or qa.question in seen or (qa.objects and (qa.family, qa.objects) in seen):
            continue
        if qa.answer_type == "yes/no" and qa.answer != want:
            continue
        if qa.answer_type == "yes/no":
            balance[0 if qa.answer == "yes" else 1] += 1
        seen.add(qa.question)
        seen.add((qa.family, qa.objects))
        return qa
    return None


def write_vqav2(sink: Sink, n_images: int, seed: int, tick: Callable[[int, int], None]) -> dict[str, int]:
    questions, annotations = [], []
    balance = [0, 0]
    for i in range(n_images):
        scene = make_scene(eval_scene_id(seed, "vqav2", i), SceneSpec(min_categories=2))
        image_id = 100000 + 7 * i + 3
        sink.image(f"val2014/COCO_val2014_{image_id:012d}.jpg", scene.image)
        rng = Rng(derive("vqav2-questions", seed, i))
        seen: set = set()
        for k in range(QUESTIONS_PER_IMAGE):
            qa = balanced_ask(scene, rng, VQA_WEIGHTS, balance, seen)
            if qa is None:
                continue
            qid = image_id * 1000 + k
            answers = vqa_answers(qa, rng)
            questions.append({"image_id": image_id, "question": qa.question, "question_id": qid})
            annotations.append({
                "question_type": question_type(qa.question),
                "multiple_choice_answer": most_common([a for a, _ in answers], qa.answer),
                "answers": [{"answer": a, "answer_confidence": c, "answer_id": j + 1}
                            for j, (a, c) in enumerate(answers)],
                "image_id": image_id, "answer_type": qa.answer_type, "question_id": qid,
            })
        tick(i + 1, n_images)
    sink.json("v2_OpenEnded_mscoco_val2014_questions.json", {
        "info": _INFO, "task_type": "Open-Ended", "data_type": "mscoco", "license": _LICENSE,
        "data_subtype": "val2014", "questions": questions})
    sink.json("v2_mscoco_val2014_annotations.json", {
        "info": _INFO, "license": _LICENSE, "data_subtype": "val2014", "annotations": annotations,
        "data_type": "mscoco"})
    return {"val2014": len(questions)}


def _tokens(question: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", question.lower())


def write_textvqa(sink: Sink, n_images: int, seed: int, tick: Callable[[int, int], None]) -> dict[str, int]:
    records: list[dict] = []
    for i in range(n_images):
        rng = Rng(derive("textvqa-questions", seed, i))
        n_signs = 2 if rng.chance(0.5) else 1
        scene = make_scene(eval_scene_id(seed, "textvqa", i), SceneSpec(require={"sign": n_signs}))
        image_id = format(derive("textvqa-image", seed, i), "016x")
        sink.image(f"train_images/{image_id}.jpg", scene.image)
        signs = scene.of("sign")
        asked: set[tuple[int, ...]] = set()
        for _ in range(len(signs) * 4):
            if len(asked) >= len(signs):
                break
            qa = q_read(scene, rng)
            if qa is None or qa.objects in asked:
                continue
            asked.add(qa.objects)
            distractors = tuple(s.text.lower() for s in signs if s.text.lower() != qa.answer)
            records.append({
                "question": qa.question.lower() if rng.chance(0.5) else qa.question,
                "image_id": image_id,
                "image_classes": [c.capitalize() for c in scene.categories()],
                "flickr_original_url": f"https://synthetic.invalid/textvqa/{image_id}.jpg",
                "flickr_300k_url": f"https://synthetic.invalid/textvqa/{image_id}_300k.jpg",
                "image_width": scene.width, "image_height": scene.height,
                "answers": textvqa_answers(qa, rng, distractors),
                "question_tokens": _tokens(qa.question),
                "question_id": 34602 + len(records),
                "set_name": "val",
            })
        tick(i + 1, n_images)
    sink.json("TextVQA_0.5.1_val.json", {"dataset_type": "val", "dataset_name": "textvqa",
                                         "dataset_version": "0.5.1", "data": records})
    return {"val": len(records)}
