"""Word-level tokenizer: the world's words plus the model's special tokens.

Text -> ids before the language model, ids -> text after generation. Words are case-sensitive
runs of letters/digits (with an apostrophe part, "what's"); every other non-space character is a
token of its own. Points are the tokens ``<point> <x_k> <y_k>`` with k in 0..99 (the bin that holds
the point, ``k = floor(100 * x / W)``), which the harness decodes to bin centres. Unknown words
map to ``<unk>``; the vocabulary is stored with each checkpoint.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

N_BINS = 100
PAD, UNK, EOS, SEP = "<pad>", "<unk>", "<eos>", "<answer>"
VISION_START, VISION_END, POINT = "<vision_start>", "<vision_end>", "<point>"
SPECIALS: tuple[str, ...] = (PAD, UNK, EOS, SEP, VISION_START, VISION_END, POINT,
                             *(f"<x_{k}>" for k in range(N_BINS)), *(f"<y_{k}>" for k in range(N_BINS)))

_TOKEN = re.compile(r"<(?:x|y)_\d+>|<point>|[A-Za-z0-9]+(?:'[A-Za-z]+)?|[^\sA-Za-z0-9]")
_NO_SPACE_BEFORE = set(".,?!;:)]}%")
_NO_SPACE_AFTER = set("([{")


def split_words(text: str) -> list[str]:
    """The tokens of ``text`` as strings (the vocabulary is built from these)."""
    return _TOKEN.findall(text)


def point_tokens(x: float, y: float, width: int, height: int) -> str:
    """``<point> <x_k> <y_k>`` for a pixel point: the bins that hold it, clipped to 0..99."""
    kx = min(N_BINS - 1, max(0, math.floor(N_BINS * x / width)))
    ky = min(N_BINS - 1, max(0, math.floor(N_BINS * y / height)))
    return f"{POINT} <x_{kx}> <y_{ky}>"


def bin_centre(k: int, extent: int) -> float:
    """Pixel coordinate of the centre of bin ``k`` along an axis of ``extent`` pixels."""
    return (k + 0.5) / N_BINS * extent


class Tokenizer:
    """Maps tokens to ids: special tokens first (fixed ids), then the words in the given order."""

    def __init__(self, words: Sequence[str]):
        vocab = list(SPECIALS) + [w for w in dict.fromkeys(words) if w not in SPECIALS]
        self.vocab: tuple[str, ...] = tuple(vocab)
        self._ids = {w: i for i, w in enumerate(self.vocab)}
        self.pad_id, self.unk_id, self.eos_id = self._ids[PAD], self._ids[UNK], self._ids[EOS]
        self.sep_id, self.point_id = self._ids[SEP], self._ids[POINT]
        self.vision_start_id, self.vision_end_id = self._ids[VISION_START], self._ids[VISION_END]
        self.x0_id, self.y0_id = self._ids["<x_0>"], self._ids["<y_0>"]

    @classmethod
    def from_texts(cls, texts: Iterable[str], extra_words: Iterable[str] = ()) -> Tokenizer:
        """A vocabulary of ``extra_words`` and every word of ``texts``, in first-seen order."""
        words = list(extra_words)
        for t in texts:
            words.extend(split_words(t))
        return cls(words)

    def __len__(self) -> int:
        return len(self.vocab)

    def id_of(self, word: str) -> int | None:
        """The id of one vocabulary entry, None when it has none."""
        return self._ids.get(word)

    def encode(self, text: str) -> list[int]:
        return [self._ids.get(w, self.unk_id) for w in split_words(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids`` up to the first <eos>; pads and the answer marker are dropped."""
        out: list[str] = []
        for i in ids:
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.sep_id):
                continue
            out.append(self.vocab[i] if 0 <= i < len(self.vocab) else PAD)
        return join_words(out)

    def unknown(self, text: str) -> list[str]:
        """Words of ``text`` outside the vocabulary."""
        return [w for w in split_words(text) if w not in self._ids]

    def is_x(self, i: int) -> bool:
        return self.x0_id <= i < self.x0_id + N_BINS

    def is_y(self, i: int) -> bool:
        return self.y0_id <= i < self.y0_id + N_BINS

    def to_json(self) -> dict[str, object]:
        return {"type": "word-level", "vocab": list(self.vocab)}

    @classmethod
    def from_json(cls, d: dict[str, object]) -> Tokenizer:
        vocab = list(d["vocab"])  # type: ignore[call-overload]
        if tuple(vocab[:len(SPECIALS)]) != SPECIALS:
            raise ValueError("tokenizer vocabulary does not start with this version's special tokens")
        return cls(vocab[len(SPECIALS):])


def join_words(words: Sequence[str]) -> str:
    """Words back to text: no space before closing punctuation or after opening brackets."""
    text = ""
    for i, w in enumerate(words):
        if i and w not in _NO_SPACE_BEFORE and words[i - 1] not in _NO_SPACE_AFTER:
            text += " "
        text += w
    return text
