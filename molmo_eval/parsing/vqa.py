"""VQA answer normalization (parse stage for vqav2 / textvqa scoring).

Two normalizers, each a pure function of one string, memoized because benchmark answers repeat:

- `normalize_answer`: the official VQA evaluation (``vqaEval.py`` of GT-Vision-Lab/VQA, master, as run
  by Python 3): ``processPunctuation`` then ``processDigitArticle``;
- `evalai_process`: the EvalAI answer processor used by MMF/M4C, LLaVA's TextVQA evaluator and
  lmms-eval (lowercasing and ``'s`` tokenization first, a different comma rule).

Quirks kept on purpose, because published numbers were computed with them:

- punctuation next to a space is deleted, elsewhere replaced by a space; *every* punctuation mark is
  deleted when the text contains ``digit,digit`` anywhere ("1,000" -> "1000" but also "a-b 1,2" -> "ab 12");
- a period is deleted unless a digit follows ("3.5" stays), but at most 32 of them: the official code
  passes ``re.UNICODE`` (= 32) where ``re.sub`` expects ``count``;
- the period regex ``(?!<=\\d)`` is a look-ahead typo that never fires, so "5." loses its period;
- number words only up to "ten", and "none" -> "0"; articles a/an/the are dropped after the number map;
- the contractions map is applied to whole lower-cased words; its capitalized keys ("Im", "Ive", "Id've")
  therefore never match, and "somebody'd" maps to "somebodyd";
- apostrophes, colons, ``#``, ``$``, ``%``, ``&``, ``*``, ``|``, ``~``, ``^`` and ``'`` are not punctuation.

``\\d`` follows Python 3 ``re`` (any Unicode decimal digit). The unmodified Python 2 script matches
ASCII digits only; the two differ only on non-ASCII digits such as "١,٢".
"""

from __future__ import annotations

import re
from functools import lru_cache

# vqaEval.py self.punct (single characters; the space rule looks at the original text)
PUNCTUATION: tuple[str, ...] = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-",
                                ">", "<", "@", "`", ",", "?", "!")
_PUNCT_SET = frozenset(PUNCTUATION)

NUMBER_WORDS: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
ARTICLES = frozenset({"a", "an", "the"})

# The official contractions table, written as "key value" pairs (keys are matched against
# lower-cased words, so the capitalized keys are dead entries, kept for fidelity).
_CONTRACTION_PAIRS = """
aint ain't  arent aren't  cant can't  couldve could've  couldnt couldn't  couldn'tve couldn't've
couldnt've couldn't've  didnt didn't  doesnt doesn't  dont don't  hadnt hadn't  hadnt've hadn't've
hadn'tve hadn't've  hasnt hasn't  havent haven't  hed he'd  hed've he'd've  he'dve he'd've  hes he's
howd how'd  howll how'll  hows how's  Id've I'd've  I'dve I'd've  Im I'm  Ive I've  isnt isn't
itd it'd  itd've it'd've  it'dve it'd've  itll it'll  let's let's  maam ma'am  mightnt mightn't
mightnt've mightn't've  mightn'tve mightn't've  mightve might've  mustnt mustn't  mustve must've
neednt needn't  notve not've  oclock o'clock  oughtnt oughtn't  ow's'at 'ow's'at  'ows'at 'ow's'at
'ow'sat 'ow's'at  shant shan't  shed've she'd've  she'dve she'd've  she's she's  shouldve should've
shouldnt shouldn't  shouldnt've shouldn't've  shouldn'tve shouldn't've  somebody'd somebodyd
somebodyd've somebody'd've  somebody'dve somebody'd've  somebodyll somebody'll  somebodys somebody's
someoned someone'd  someoned've someone'd've  someone'dve someone'd've  someonell someone'll
someones someone's  somethingd something'd  somethingd've something'd've  something'dve something'd've
somethingll something'll  thats that's  thered there'd  thered've there'd've  there'dve there'd've
therere there're  theres there's  theyd they'd  theyd've they'd've  they'dve they'd've  theyll they'll
theyre they're  theyve they've  twas 'twas  wasnt wasn't  wed've we'd've  we'dve we'd've  weve we've
werent weren't  whatll what'll  whatre what're  whats what's  whatve what've  whens when's
whered where'd  wheres where's  whereve where've  whod who'd  whod've who'd've  who'dve who'd've
wholl who'll  whos who's  whove who've  whyll why'll  whyre why're  whys why's  wont won't
wouldve would've  wouldnt wouldn't  wouldnt've wouldn't've  wouldn'tve wouldn't've  yall y'all
yall'll y'all'll  y'allll y'all'll  yall'd've y'all'd've  y'alld've y'all'd've  y'all'dve y'all'd've
youd you'd  youd've you'd've  you'dve you'd've  youll you'll  youre you're  youve you've
"""
_tokens = _CONTRACTION_PAIRS.split()
CONTRACTIONS: dict[str, str] = dict(zip(_tokens[0::2], _tokens[1::2], strict=True))
del _tokens

# every word process_digit_article maps or drops (a number word's digits are neither articles nor
# contraction keys, so a text without any of these words comes out as its words joined)
_WORDS_MAPPED = frozenset(NUMBER_WORDS) | ARTICLES | frozenset(CONTRACTIONS)

_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")  # sic: the look-behind was meant, a look-ahead was written
_PERIOD_STRIP_MAX = int(re.UNICODE)  # vqaEval.py: periodStrip.sub("", text, re.UNICODE) -> count=32
_COMMA_STRIP = re.compile(r"(\d)(\,)(\d)")  # vqaEval.py
_EVALAI_COMMA_STRIP = re.compile(r"(?<=\d)(\,)+(?=\d)")  # EvalAIAnswerProcessor: also "1,,2"

_CACHE = 1 << 18  # distinct answer strings remembered (a few tens of MB at most)


def clean_answer(text: str) -> str:
    """Newlines and tabs to spaces, then strip; mirrors the first lines of vqaEval.py ``evaluate``."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def process_punctuation(text: str, comma_rule: re.Pattern[str] = _COMMA_STRIP) -> str:
    """Mirrors vqaEval.py ``processPunctuation``, including the document-wide comma rule and the
    32-period limit (see the module docstring)."""
    present = _PUNCT_SET.intersection(text)
    out = text
    if present:
        if comma_rule.search(text) is not None:
            table = dict.fromkeys(map(ord, present))
        else:  # each mark is tested against the *original* text, as in the official loop
            table = {ord(p): (None if (p + " " in text or " " + p in text) else " ") for p in present}
        out = text.translate(table)
    if "." in out:
        out = _PERIOD_STRIP.sub("", out, count=_PERIOD_STRIP_MAX)
    return out


def process_digit_article(text: str) -> str:
    """Mirrors vqaEval.py ``processDigitArticle``: lower-case, split on whitespace, number words to
    digits, drop articles, expand contractions, join with single spaces."""
    split = text.lower().split()
    if _WORDS_MAPPED.isdisjoint(split):  # no word that the loop below would change or drop
        return " ".join(split)
    words = []
    for word in split:
        word = NUMBER_WORDS.get(word, word)
        if word not in ARTICLES:
            words.append(CONTRACTIONS.get(word, word))
    return " ".join(words)


@lru_cache(maxsize=_CACHE)
def normalize_answer(text: str) -> str:
    """The official VQA normalization of one (already cleaned) answer: punctuation, then digits,
    articles and contractions."""
    return process_digit_article(process_punctuation(text))


@lru_cache(maxsize=_CACHE)
def evalai_normalize(text: str) -> str:
    """EvalAIAnswerProcessor ``process_punctuation`` then ``process_digit_article`` (its comma rule);
    what lmms-eval applies to ground truths that are not all identical."""
    return process_digit_article(process_punctuation(text, _EVALAI_COMMA_STRIP))


def evalai_word_tokenize(text: str) -> str:
    """Mirrors EvalAIAnswerProcessor ``word_tokenize``: lower-case, drop ``,`` and ``?``, split ``'s``."""
    return text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()


@lru_cache(maxsize=_CACHE)
def evalai_process(text: str) -> str:
    """Mirrors ``EvalAIAnswerProcessor.__call__`` (MMF / M4C / LLaVA TextVQA / lmms-eval)."""
    return evalai_normalize(clean_answer(evalai_word_tokenize(text)))
