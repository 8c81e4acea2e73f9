"""Judge prompts for the four J1 formats, rendered through the tokenizer's chat template.

    python -m pytest tests/judge/test_prompts.py

Formats:
  pairwise         which of A and B is better       -> <answer>[[A]]</answer> or <answer>[[B]]</answer>
  pairwise_scores  a 0-10 score for each response   -> <score_A>7.5</score_A> <score_B>3.0</score_B>
  scores_verdict   both scores, then the verdict    -> <score_A>..</score_A> <score_B>..</score_B>
                                                     <answer>[[A]]</answer>
  pointwise        a 0-10 score for one response    -> <score>6.0</score>
Reasoning always comes first, inside <think>...</think>; scores are 0 to 10 with at most one decimal.

Layout: the instructions sit in the system message and the question opens the user message, so the two
orders (x,a,b) and (x,b,a) of a pair share every token up to the first response, and a rollout engine can
prefill that prefix once. A multi-turn prompt (a list of chat messages) takes the question's place as a
transcript, "[User]: ...\n[Assistant]: ...\n[User]: ..." (j1core/data/messages.py). By default the
assistant turn is pre-opened with "<think>\n" (OPEN_THINK), so the completion starts inside the reasoning;
the parser in j1core/judge/rewards.py accepts completions with or without it.

Constrained verdict decoding (the bundled SmolLM2 never emits the format on its own, see DESIGN.md): the
answer that follows the reasoning is a fixed layout of literal text and slots (ANSWER_LAYOUT). The trainer
caps the reasoning, appends forced_suffix(fmt), samples the first slot (answer_choices(fmt) for a verdict),
and closes it with the rest of the layout; render_answer(fmt, ...) writes that whole tail.
"""
from __future__ import annotations

import string
from pathlib import Path

from j1core.data.messages import transcript
from j1core.errors import UserError
from j1core.judge.paper_prompts import PAPER_PLAN_TEMPLATES, PAPER_TEMPLATES, PLACEHOLDERS

FORMATS = ("pairwise", "pairwise_scores", "scores_verdict", "pointwise")

OPEN_THINK = "<think>\n"
CLOSE_THINK = "</think>"

SYSTEM_PROMPT = (
    "You judge answers to a user's question. Reason step by step inside <think></think>, then write only "
    "the final output, exactly in the format shown. Judge correctness and helpfulness, not order or length.")

FORMAT_INSTRUCTIONS = {
    "pairwise": (
        "Decide which response, A or B, is better: answer [[A]] or [[B]].\n"
        "Format (example):\n<think>your reasoning</think>\n<answer>[[A]]</answer>"),
    "pairwise_scores": (
        "Score each response from 0 to 10, at most one decimal; the better one scores higher.\n"
        "Format (example):\n<think>your reasoning</think>\n<score_A>7.5</score_A>\n<score_B>3.0</score_B>"),
    "scores_verdict": (
        "Score each response from 0 to 10, at most one decimal, then name the better (higher-scored) one.\n"
        "Format (example):\n<think>your reasoning</think>\n<score_A>7.5</score_A>\n<score_B>3.0</score_B>\n"
        "<answer>[[A]]</answer>"),
    "pointwise": (
        "Score the response from 0 to 10, at most one decimal.\n"
        "Format (example):\n<think>your reasoning</think>\n<score>6.0</score>"),
}

PAIR_TEMPLATE = ("Question:\n{prompt}\n\n[Response A]\n{response_a}\n[End of Response A]\n\n"
                 "[Response B]\n{response_b}\n[End of Response B]")
SINGLE_TEMPLATE = "Question:\n{prompt}\n\n[Response]\n{response}\n[End of Response]"

# What follows the reasoning: literal strings and slot names, in order. The parser reads this same grammar
# (ASCII whitespace between the parts is allowed there; these are the canonical separators).
VERDICT_SLOT, SCORE_A_SLOT, SCORE_B_SLOT, SCORE_SLOT = "verdict", "score_a", "score_b", "score"
SLOTS = (VERDICT_SLOT, SCORE_A_SLOT, SCORE_B_SLOT, SCORE_SLOT)
ANSWER_LAYOUT = {
    "pairwise": ("</think>\n<answer>[[", VERDICT_SLOT, "]]</answer>"),
    "pairwise_scores": ("</think>\n<score_A>", SCORE_A_SLOT, "</score_A>\n<score_B>", SCORE_B_SLOT, "</score_B>"),
    "scores_verdict": ("</think>\n<score_A>", SCORE_A_SLOT, "</score_A>\n<score_B>", SCORE_B_SLOT,
                       "</score_B>\n<answer>[[", VERDICT_SLOT, "]]</answer>"),
    "pointwise": ("</think>\n<score>", SCORE_SLOT, "</score>"),
}


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown judge format {fmt!r}; choose one of {FORMATS}")


def is_pairwise(fmt: str) -> bool:
    check_format(fmt)
    return fmt != "pointwise"


PROMPT_STYLES = ("compact", "paper", "paper_plan")


def user_template(fmt: str, style: str) -> str | None:
    """The paper's template for fmt (paper_plan: its plan-then-execute variant), a user's template file (any
    other style value), or None for compact."""
    if style == "compact":
        return None
    if style == "paper":
        return PAPER_TEMPLATES[fmt]
    if style == "paper_plan":
        return PAPER_PLAN_TEMPLATES[fmt]
    path = Path(style)
    if not path.is_file():
        raise UserError(f"--prompt-style {style!r}: not one of {PROMPT_STYLES} and not a template file")
    try:
        text = path.read_text(encoding="utf-8")
        found = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except (UnicodeDecodeError, ValueError) as err:
        raise UserError(f"{path}: not a template ({err}); write literal braces as {{{{ and }}}}") from None
    wanted = PLACEHOLDERS["pairwise" if fmt != "pointwise" else "pointwise"]
    if found != set(wanted):
        raise UserError(f"{path}: a {fmt} template needs exactly the placeholders "
                         f"{', '.join('{' + n + '}' for n in wanted)}; it has {sorted(found) or 'none'}")
    return text


def judge_messages(fmt: str, prompt, response_a: str, response_b: str | None = None,
                   style: str = "compact") -> list[dict]:
    """The messages of one judge prompt; pointwise takes response_a alone. compact: j1's system + user
    messages; paper (or a template file): one user message, the template filled in. A prompt given as chat
    messages fills the question's place as a transcript (j1core/data/messages.transcript)."""
    prompt = transcript(prompt)
    if is_pairwise(fmt):
        if response_b is None:
            raise ValueError(f"format {fmt!r} judges two responses: response_b is missing")
    elif response_b is not None:
        raise ValueError("format 'pointwise' judges one response: pass response_b=None")
    template = user_template(fmt, style)
    if template is not None:
        values = {"instruction": prompt.strip(), "response_A": response_a.strip(), "response": response_a.strip()}
        if response_b is not None:
            values["response_B"] = response_b.strip()
        return [{"role": "user", "content": template.format_map(values)}]
    if response_b is not None:
        user = PAIR_TEMPLATE.format(prompt=prompt.strip(), response_a=response_a.strip(),
                                    response_b=response_b.strip())
    else:
        user = SINGLE_TEMPLATE.format(prompt=prompt.strip(), response=response_a.strip())
    system = SYSTEM_PROMPT + "\n\n" + FORMAT_INSTRUCTIONS[fmt]
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def judge_prompt_text(tokenizer, fmt: str, prompt, response_a: str, response_b: str | None = None,
                      open_think: bool = True, style: str = "compact") -> str:
    """The chat-templated prompt with the generation prompt added (and "<think>\\n" when open_think)."""
    messages = judge_messages(fmt, prompt, response_a, response_b, style)
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text + (OPEN_THINK if open_think else "")


def judge_prompt_ids(tokenizer, fmt: str, prompt, response_a: str, response_b: str | None = None,
                     open_think: bool = True, style: str = "compact") -> list[int]:
    # The template already holds its special tokens as text; adding them again would double a BOS.
    text = judge_prompt_text(tokenizer, fmt, prompt, response_a, response_b, open_think, style)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def forced_suffix(fmt: str) -> str:
    """Text that closes the reasoning and opens the first answer slot, e.g. "</think>\\n<answer>[[".

    Appended after a capped reasoning; the next sampled tokens fill the slot (a verdict letter for the
    verdict formats, a score for the score formats)."""
    check_format(fmt)
    return ANSWER_LAYOUT[fmt][0]


def answer_choices(fmt: str) -> tuple[str, ...]:
    """The verdict letters a constrained decoder may sample, ("A", "B"); () for the score-only formats.

    For scores_verdict the verdict is the last slot: the scores come first."""
    check_format(fmt)
    return ("A", "B") if VERDICT_SLOT in ANSWER_LAYOUT[fmt] else ()


def format_score(value: float) -> str:
    if not 0.0 <= value <= 10.0 or round(value, 1) != value:
        raise ValueError(f"score {value!r} is not in [0, 10] with at most one decimal")
    return f"{value:.1f}"


def render_answer(fmt: str, verdict: str | None = None, score_a: float | None = None,
                  score_b: float | None = None, score: float | None = None) -> str:
    """The canonical text from "</think>" to the end, e.g. "</think>\\n<answer>[[B]]</answer>".

    A completion is the reasoning followed by this; it is also a format-only warm-up target."""
    check_format(fmt)
    values = {VERDICT_SLOT: verdict, SCORE_A_SLOT: score_a, SCORE_B_SLOT: score_b, SCORE_SLOT: score}
    parts = []
    for part in ANSWER_LAYOUT[fmt]:
        if part not in SLOTS:
            parts.append(part)
        elif values[part] is None:
            raise ValueError(f"format {fmt!r} needs a value for {part}")
        elif part == VERDICT_SLOT:
            if verdict not in ("A", "B"):
                raise ValueError(f"verdict must be 'A' or 'B', got {verdict!r}")
            parts.append(verdict)
        else:
            parts.append(format_score(values[part]))
    return "".join(parts)
