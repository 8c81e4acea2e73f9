"""Final-answer extraction and verification for math solutions (GSM8K "#### N", MATH \\boxed{}).

    python -m pytest tests/data/test_answer_check.py -q

A small own checker instead of a symbolic one: answers are compared as exact numbers when both sides
read as numbers (integers, decimals, a/b, \\frac{a}{b}, with $, %, thousands commas, trailing .0 and
units words stripped), as unordered lists when both sides are comma-separated, and otherwise as
normalised LaTeX strings. It does not prove symbolic equality (2\\sqrt{2} vs \\sqrt{8} differ), which
errs towards calling a correct answer wrong; for pair building that only costs yield.
"""
from __future__ import annotations

import re
from fractions import Fraction

ROUNDED_DIGITS = 3  # a decimal with at least this many places matches any value it is a rounding of

_NUMBER = r"-?\$?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\$?\.\d+"
_HASHES = re.compile(r"####\s*([^\n]+)")
_ANSWER_IS = re.compile(r"(?:final\s+)?answer\s*(?:is|:)\s*:?\s*([^\n]+)", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.\s|\.$|;")
_ANSWER_TAIL = re.compile(r"\s\(|,\s(?=[a-zA-Z])")  # '12 (dollars)', '12, so ...'

_LAST_NUMBER = re.compile(_NUMBER)
_NUMBER_THEN_WORDS = re.compile(r"^(-?\d[\d,]*(?:\.\d+)?(?:/\d+)?)\s*[a-zA-Z][a-zA-Z\s]*$")
_THOUSANDS = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")
_PLAIN_NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)$")
_RATIO = re.compile(r"^(-?(?:\d+(?:\.\d+)?|\.\d+))/(-?(?:\d+(?:\.\d+)?|\.\d+))$")
_ASSIGNMENT = re.compile(r"^[a-zA-Z]\s*=\s*(.+)$")


def extract_answer(text: str) -> str | None:
    """The final answer of a solution: '#### N', else the last \\boxed{}, else 'The answer is X',
    else the last number. None when the text holds none of them."""
    if text is None:
        return None
    hashes = _HASHES.findall(text)
    if hashes and hashes[-1].strip():
        return hashes[-1].strip()
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    stated = _ANSWER_IS.findall(text)
    if stated:
        candidate = _SENTENCE_END.split(stated[-1], maxsplit=1)[0]
        candidate = candidate.rsplit("=", 1)[-1]  # 'the answer is 20 * 0.2 = 4' -> '4'
        candidate = _ANSWER_TAIL.split(candidate, maxsplit=1)[0].strip()
        if candidate:
            return candidate
    numbers = _LAST_NUMBER.findall(text)
    if numbers:
        return numbers[-1].rstrip(",")
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} or \\fbox{...} (nested braces balanced), or of '\\boxed 5'."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    rest = text[start:].split("\\", 1)[1]
    rest = rest[len("boxed"):] if rest.startswith("boxed") else rest[len("fbox"):]
    if rest.startswith(" "):
        word = rest.strip().split()
        return word[0].rstrip(".$") if word else None
    if not rest.startswith("{"):
        return None
    depth = 0
    for i, char in enumerate(rest):
        depth += (char == "{") - (char == "}")
        if depth == 0:
            return rest[1:i].strip()
    return None  # unbalanced: the solution was cut off inside the box


def gsm8k_gold(answer_field: str) -> str | None:
    """The gold answer of a GSM8K record: the text after the last '####'."""
    found = _HASHES.findall(answer_field or "")
    return found[-1].strip() if found else None


def normalize_answer(answer: str) -> str:
    """Canonical string form: LaTeX spacing, $, %, degrees, \\text{} and 'x =' removed, \\dfrac -> a/b."""
    s = answer.strip()
    boxed = last_boxed(s) if s.startswith(("\\boxed", "\\fbox")) else None
    s = boxed if boxed is not None else s
    s = re.sub(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}", r"\1", s)
    for old, new in (("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\:", ""),
                     ("\\ ", ""), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("{,}", ","),
                     ("^\\circ", ""), ("^{\\circ}", ""), ("°", ""), ("\\%", ""), ("%", ""), ("\\$", ""),
                     ("$", ""), ("\\(", ""), ("\\)", ""), ("\\[", ""), ("\\]", "")):
        s = s.replace(old, new)
    s = s.strip().rstrip(".").strip()
    assignment = _ASSIGNMENT.match(s)
    if assignment:
        s = assignment.group(1)
    words = _NUMBER_THEN_WORDS.match(s)
    if words:
        s = words.group(1)
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\sqrt(\d+)", r"\\sqrt{\1}", s)
    s = re.sub(r"\\frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}", r"\1/\2", s)
    s = re.sub(r"\s+", "", s)
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    return s.lower()


def as_number(normalized: str) -> Fraction | None:
    """Exact value of a normalised answer that is a plain number or a ratio of numbers."""
    text = normalized[1:-1] if normalized.startswith("{") and normalized.endswith("}") else normalized
    if _PLAIN_NUMBER.match(text):
        return Fraction(text.rstrip(".") if text.endswith(".") else text)
    ratio = _RATIO.match(text)
    if ratio and Fraction(ratio.group(2)) != 0:
        return Fraction(ratio.group(1)) / Fraction(ratio.group(2))
    return None


def decimal_places(normalized: str) -> int:
    return len(normalized.split(".", 1)[1]) if _PLAIN_NUMBER.match(normalized) and "." in normalized else 0


def numbers_close(a: str, b: str) -> bool:
    """Exactly equal, or one side is a decimal with >= ROUNDED_DIGITS places that rounds the other
    (0.333 and 0.3333 match 1/3; 999999 never matches 1000000)."""
    value_a, value_b = as_number(a), as_number(b)
    if value_a == value_b:
        return True
    places = max(decimal_places(a), decimal_places(b))
    return places >= ROUNDED_DIGITS and abs(value_a - value_b) <= Fraction(1, 2 * 10 ** places)


def answers_equal(predicted: str | None, gold: str | None) -> bool:
    """Whether a predicted final answer equals the gold one (see the module docstring for the rules)."""
    if predicted is None or gold is None:
        return False
    return _normalized_equal(normalize_answer(predicted), normalize_answer(gold))


def _normalized_equal(pred: str, gold: str) -> bool:
    if pred == gold:
        return bool(pred)
    if as_number(pred) is not None and as_number(gold) is not None:
        return numbers_close(pred, gold)
    if "," in pred and "," in gold and not pred.startswith("(") and not gold.startswith("("):
        return _unordered_lists_equal(pred.split(","), gold.split(","))
    return False


def _unordered_lists_equal(pred_items: list[str], gold_items: list[str]) -> bool:
    if len(pred_items) != len(gold_items):
        return False
    remaining = list(gold_items)
    for item in pred_items:
        match = next((g for g in remaining if _normalized_equal(item, g)), None)
        if match is None:
            return False
        remaining.remove(match)
    return True


def is_correct(solution: str, gold: str) -> bool:
    """Extract the final answer of a solution and compare it with the gold answer."""
    return answers_equal(extract_answer(solution), gold)
