"""A VQAv2 split in the official file layout with realistic answer diversity, for the scoring benches.

Real VQAv2 val (214k questions, 2.1M human answers) holds tens of thousands of distinct answer
strings, with case, punctuation, article, plural and number-word variants of the common ones, and a
long tail of rare phrases. A split made of copies of a few thousand questions would let any memo
cache hit every time; this one draws every question afresh:

- the answer vocabulary: common VQA answers (yes/no, counts, colours, objects, activities), adjective
  + noun phrases and a long tail of pseudo-words and pseudo-word pairs, ranked and drawn with a Zipf
  law, so a few answers are very frequent and most are rare;
- each question: a consensus answer given by k of the 10 annotators (k from 3 to 10), the others
  drawn from the vocabulary; every answer is written in a surface variant with some probability
  (capitalised, trailing period, an article, a plural, a hyphen, a digit for a number word, a
  contraction without its apostrophe...);
- the prediction: the consensus answer (often in another surface variant) or another answer.

Deterministic from the seed. `write_split` writes the questions, annotations and results files.
"""

from __future__ import annotations

import json
import random
from bisect import bisect
from itertools import accumulate
from pathlib import Path

COMMON = [
    "yes", "no", "2", "1", "3", "white", "4", "black", "red", "blue", "0", "green", "5", "brown", "yellow",
    "gray", "6", "frisbee", "tennis", "baseball", "nothing", "left", "right", "kitchen", "pizza", "orange",
    "dog", "cat", "giraffe", "elephant", "skateboarding", "surfing", "skiing", "snow", "grass", "wood",
    "water", "bathroom", "table", "umbrella", "train", "bus", "man", "woman", "sunny", "day", "night",
    "eating", "standing", "sitting", "walking", "flying", "kite", "horse", "cow", "sheep", "bear", "zebra",
    "bird", "clock", "phone", "laptop", "tv", "bed", "couch", "chair", "plate", "cake", "donut", "banana",
    "apple", "sandwich", "broccoli", "hot dog", "soccer", "tennis racket", "baseball bat", "stop sign",
    "fire hydrant", "traffic light", "motorcycle", "bicycle", "car", "truck", "airplane", "boat", "street",
    "beach", "ocean", "sky", "clouds", "tree", "trees", "building", "fence", "sign", "window", "door",
    "pink", "purple", "silver", "tan", "black and white", "red and white", "blue and white", "metal",
    "plastic", "glass", "ceramic", "leather", "cotton", "summer", "winter", "spring", "fall", "morning",
    "afternoon", "evening", "noon", "10", "8", "7", "12", "20", "100", "1000", "15", "9", "11", "30", "25",
    "50", "don't know", "can't tell", "it's raining", "man's", "woman's", "nobody", "none", "many", "lots",
    "several", "both", "all", "food", "drinking", "playing", "riding", "talking", "reading", "sleeping",
]
ADJECTIVES = ["big", "small", "old", "new", "wooden", "metal", "dirty", "clean", "tall", "short", "white",
              "black", "red", "blue", "green", "striped", "plaid", "empty", "full", "open", "closed", "wet",
              "dry", "cloudy", "bright", "dark", "young", "little", "large", "brick"]
NOUNS = ["dog", "cat", "man", "woman", "boy", "girl", "car", "bus", "train", "table", "chair", "plate",
         "cup", "bowl", "shirt", "hat", "jacket", "building", "house", "wall", "floor", "field", "road",
         "tree", "bench", "board", "ball", "bag", "box", "bottle", "sign", "pole", "light", "window", "door",
         "bike", "boat", "plane", "kite", "horse", "bird", "cake", "pizza", "glass", "vase", "clock", "book",
         "bed", "couch", "rug"]
NUMBER_WORDS = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six",
                "7": "seven", "8": "eight", "9": "nine", "10": "ten"}
CONTRACTIONS = {"don't know": "dont know", "can't tell": "cant tell", "it's raining": "its raining",
                "man's": "mans", "woman's": "womans"}
QUESTION_STARTS = ["what", "what is the", "what color is the", "how many", "is the", "are the", "is this",
                   "are there", "does the", "what is", "which", "where is the", "who is", "why", "what kind of",
                   "what type of", "is there a", "what is the man", "what is the woman", "do you",
                   "what sport is", "what room is", "is it", "can you", "what are the", "has the", "was",
                   "could", "what brand", "what time", "what animal is", "how", "what is on the",
                   "what number is", "is he", "is she", "are they", "what is in the", "none of the above",
                   "what does the", "what are", "is that a", "what is the person", "are these", "is the man",
                   "is the woman", "what is this", "are", "do", "is", "what color", "what color are the",
                   "what color is", "how many people are", "what is the name", "is this a", "are there any",
                   "which of", "what is the color of the", "where are the", "who", "where", "when", "what is he",
                   "what is she"]
SYLLABLES = ["ka", "lo", "mi", "ter", "san", "bu", "ri", "vel", "do", "nar", "pe", "quo", "zi", "ban", "tor",
             "el", "mu", "ship", "gan", "fe", "lin", "os", "ra", "chi", "wen", "dra", "pol", "ux", "ny", "sto"]


def vocabulary(size: int, rng: random.Random) -> list[str]:
    """``size`` distinct answers: the common ones first, then phrases, then a long tail."""
    words = list(dict.fromkeys(COMMON))
    phrases = [f"{a} {n}" for a in ADJECTIVES for n in NOUNS]
    rng.shuffle(phrases)
    words += phrases
    seen = set(words)
    while len(words) < size:
        w = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if rng.random() < 0.3:
            w += " " + "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3)))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words[:size]


def variant(answer: str, rng: random.Random) -> str:
    """One surface form of ``answer``, as annotators and models write them."""
    r = rng.random()
    if r < 0.10:
        return answer.capitalize()
    if r < 0.14:
        return answer + "."
    if r < 0.18 and not answer[0].isdigit():
        return ("a " if r < 0.16 else "the ") + answer
    if r < 0.21 and answer in NUMBER_WORDS:
        return NUMBER_WORDS[answer]
    if r < 0.23 and answer in CONTRACTIONS:
        return CONTRACTIONS[answer]
    if r < 0.25 and " " in answer:
        return answer.replace(" ", "-", 1)
    if r < 0.27 and answer[-1].isalpha():
        return answer + "s"
    if r < 0.28:
        return answer.upper()
    if r < 0.29:
        return " " + answer + " "
    return answer


def answer_type(answer: str) -> str:
    if answer in ("yes", "no"):
        return "yes/no"
    return "number" if answer.isdigit() or answer in NUMBER_WORDS.values() else "other"


def write_split(folder: Path, n: int, seed: int = 0, vocab_size: int = 60_000) -> dict[str, int]:
    """Write ``n`` questions (official VQAv2 file names, split val2014) and a results file to
    ``folder``; returns counts that describe the split's diversity."""
    rng = random.Random(seed)
    vocab = vocabulary(vocab_size, rng)
    cum = list(accumulate(1.0 / (r + 2) ** 1.05 for r in range(len(vocab))))

    def draw() -> str:
        return vocab[bisect(cum, rng.random() * cum[-1])]

    questions, annotations, results = [], [], []
    for i in range(n):
        qid, image_id = 1_000_000 + i, 1 + i // 3
        main = "yes" if rng.random() < 0.2 else "no" if rng.random() < 0.2 else draw()
        k = 10 if rng.random() < 0.35 else rng.randint(3, 9)
        raw = [main] * k + [draw() for _ in range(10 - k)]
        rng.shuffle(raw)
        texts = [variant(a, rng) for a in raw]
        pred = variant(main, rng) if rng.random() < 0.55 else variant(draw(), rng)
        if rng.random() < 0.02:
            pred += "\n"
        questions.append({"image_id": image_id, "question": f"question {i} about image {image_id}?",
                          "question_id": qid})
        annotations.append({
            "question_type": rng.choice(QUESTION_STARTS), "multiple_choice_answer": main,
            "answers": [{"answer": a, "answer_confidence": rng.choice(("yes", "yes", "maybe", "no")),
                         "answer_id": j + 1} for j, a in enumerate(texts)],
            "image_id": image_id, "answer_type": answer_type(main), "question_id": qid})
        results.append({"question_id": qid, "answer": pred})
    meta = {"info": {"description": "synthetic VQAv2-like split"}, "task_type": "Open-Ended",
            "data_type": "mscoco", "data_subtype": "val2014", "license": {}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "v2_OpenEnded_mscoco_val2014_questions.json").write_text(json.dumps({**meta, "questions": questions}))
    (folder / "v2_mscoco_val2014_annotations.json").write_text(json.dumps({**meta, "annotations": annotations}))
    (folder / "results.json").write_text(json.dumps(results))
    distinct = {a["answer"] for ann in annotations for a in ann["answers"]}
    return {"questions": n, "distinct_answers": len(distinct),
            "distinct_predictions": len({r["answer"] for r in results}),
            "distinct_answer_sets": len({tuple(a["answer"] for a in ann["answers"]) for ann in annotations})}
