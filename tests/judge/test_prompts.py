"""Tests for j1core/judge/prompts.py: messages, chat-templated ids, the shared prefix of both orders, answer helpers.

    python -m pytest tests/judge/test_prompts.py
"""
import random

import pytest

from j1core.judge.prompts import (
    ANSWER_LAYOUT,
    FORMAT_INSTRUCTIONS,
    FORMATS,
    OPEN_THINK,
    SLOTS,
    SYSTEM_PROMPT,
    answer_choices,
    forced_suffix,
    judge_messages,
    judge_prompt_ids,
    judge_prompt_text,
    render_answer,
)
from j1core.model import load_tokenizer

QUESTION = "What is the capital of France?"
GOOD = "The capital of France is Paris."
BAD = "France has no capital; it is governed from Lyon."


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("smollm2-135m-instruct")


def args_for(fmt, a=GOOD, b=BAD):
    return (QUESTION, a) if fmt == "pointwise" else (QUESTION, a, b)


@pytest.mark.parametrize("fmt", FORMATS)
def test_messages_hold_instructions_question_and_responses_in_order(fmt):
    messages = judge_messages(fmt, *args_for(fmt))
    assert [m["role"] for m in messages] == ["system", "user"]
    system, user = messages[0]["content"], messages[1]["content"]
    assert system.startswith(SYSTEM_PROMPT) and FORMAT_INSTRUCTIONS[fmt] in system
    assert user.index(QUESTION) < user.index(GOOD)
    if fmt != "pointwise":
        assert user.index(GOOD) < user.index(BAD)
        assert user.index("[End of Response A]") < user.index("[Response B]")


def test_response_count_must_fit_the_format():
    with pytest.raises(ValueError, match="response_b"):
        judge_messages("pairwise", QUESTION, GOOD)
    with pytest.raises(ValueError, match="pointwise"):
        judge_messages("pointwise", QUESTION, GOOD, BAD)
    with pytest.raises(ValueError, match="unknown judge format"):
        judge_messages("listwise", QUESTION, GOOD, BAD)


def test_braces_in_user_text_are_kept_verbatim():
    text = "Fill {response_a} and {0} in"
    user = judge_messages("pairwise", text, "{x}", "}{")[1]["content"]
    assert text in user and "\n{x}\n" in user and "\n}{\n" in user


@pytest.mark.parametrize("fmt", FORMATS)
def test_prompt_ids_match_the_chat_template(tok, fmt):
    messages = judge_messages(fmt, *args_for(fmt))
    expected = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    expected = list(expected["input_ids"] if hasattr(expected, "keys") else expected)
    assert judge_prompt_ids(tok, fmt, *args_for(fmt), open_think=False) == expected
    opened = judge_prompt_ids(tok, fmt, *args_for(fmt))
    assert opened[:len(expected)] == expected
    assert tok.decode(opened[len(expected):]) == OPEN_THINK


@pytest.mark.parametrize("fmt", ["pairwise", "pairwise_scores", "scores_verdict"])
def test_both_orders_share_everything_before_the_first_response(tok, fmt):
    rng = random.Random(0)
    words = ["alpha", "beta", "\n", "42", "x=1;", "Paris", "  ", "é", "```", "[Response B]"]
    for _ in range(10):
        a, b = (" ".join(rng.choices(words, k=rng.randint(1, 12))) for _ in range(2))
        if a.strip() == b.strip():
            continue
        ids_ab = judge_prompt_ids(tok, fmt, QUESTION, a, b)
        ids_ba = judge_prompt_ids(tok, fmt, QUESTION, b, a)
        text = judge_prompt_text(tok, fmt, QUESTION, a, b)
        before_responses = text[:text.index("[Response A]\n") + len("[Response A]\n")]
        prefix = tok(before_responses, add_special_tokens=False)["input_ids"]
        assert ids_ab[:len(prefix)] == prefix and ids_ba[:len(prefix)] == prefix


@pytest.mark.parametrize("fmt", FORMATS)
def test_forced_suffix_opens_the_rendered_answer(fmt):
    values = {"verdict": "B", "score_a": 2.5, "score_b": 9.0, "score": 10.0}
    answer = render_answer(fmt, **{k: v for k, v in values.items() if k in ANSWER_LAYOUT[fmt]})
    assert answer.startswith("</think>") and answer.startswith(forced_suffix(fmt))
    assert forced_suffix(fmt) == ANSWER_LAYOUT[fmt][0] and ANSWER_LAYOUT[fmt][1] in SLOTS


def test_forced_suffix_strings():
    assert forced_suffix("pairwise") == "</think>\n<answer>[["
    assert forced_suffix("pairwise_scores") == forced_suffix("scores_verdict") == "</think>\n<score_A>"
    assert forced_suffix("pointwise") == "</think>\n<score>"


@pytest.mark.parametrize("fmt", ["pairwise", "scores_verdict"])
def test_each_verdict_choice_is_one_token_after_the_opening_brackets(tok, fmt):
    assert answer_choices(fmt) == ("A", "B")
    layout = ANSWER_LAYOUT[fmt]
    before = "reasoning" + "".join(p for p in layout[:layout.index("verdict")] if p not in SLOTS)
    base = tok(before, add_special_tokens=False)["input_ids"]
    for choice in answer_choices(fmt):
        ids = tok(before + choice, add_special_tokens=False)["input_ids"]
        assert ids[:len(base)] == base and len(ids) == len(base) + 1


def test_score_formats_have_no_verdict_choices():
    assert answer_choices("pairwise_scores") == () and answer_choices("pointwise") == ()


def test_render_answer_checks_its_values():
    assert render_answer("pairwise", verdict="A") == "</think>\n<answer>[[A]]</answer>"
    assert render_answer("pointwise", score=7.0) == "</think>\n<score>7.0</score>"
    for bad in ({"verdict": "C"}, {}):
        with pytest.raises(ValueError):
            render_answer("pairwise", **bad)
    for score in (7.55, 11.0, -1.0, float("nan")):
        with pytest.raises(ValueError):
            render_answer("pointwise", score=score)


@pytest.mark.parametrize("fmt", FORMATS)
def test_paper_style_is_one_user_message_with_the_paper_template(fmt):
    from j1core.judge.paper_prompts import PAPER_TEMPLATES

    messages = judge_messages(fmt, *args_for(fmt), style="paper")
    assert [m["role"] for m in messages] == ["user"]
    content = messages[0]["content"]
    assert content.startswith(PAPER_TEMPLATES[fmt].split("{instruction}")[0])
    positions = [content.index(text) for text in args_for(fmt)]
    assert positions == sorted(positions)  # question first: both orders share the prefix up to response A
    assert "{" not in content.replace(QUESTION, "").replace(GOOD, "").replace(BAD, "")


def test_paper_style_orders_share_their_prefix(tok):
    a = judge_prompt_ids(tok, "pairwise", QUESTION, GOOD, BAD, style="paper")
    b = judge_prompt_ids(tok, "pairwise", QUESTION, BAD, GOOD, style="paper")
    shared = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    assert shared > 0.8 * len(judge_prompt_ids(tok, "pairwise", QUESTION, "", "", style="paper"))


def test_a_template_file_of_ones_own_is_used_and_checked(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("Q: {instruction}\nA: {response_A}\nB: {response_B}\nWhich is better?")
    messages = judge_messages("pairwise", QUESTION, GOOD, BAD, style=str(path))
    assert messages == [{"role": "user", "content": f"Q: {QUESTION}\nA: {GOOD}\nB: {BAD}\nWhich is better?"}]
    with pytest.raises(ValueError, match=r"mine.txt: a pointwise template needs exactly the placeholders"):
        judge_messages("pointwise", QUESTION, GOOD, style=str(path))
    with pytest.raises(ValueError, match="--prompt-style 'nope'"):
        judge_messages("pairwise", QUESTION, GOOD, BAD, style="nope")


# ---------------------------------------------------------------- multi-turn prompts

CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello! "}, {"role": "user", "content": QUESTION}]
TRANSCRIPT = f"[System]: Be brief.\n[User]: Hi\n[Assistant]: Hello!\n[User]: {QUESTION}"


@pytest.mark.parametrize("style", ["compact", "paper"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_conversation_is_rendered_as_a_transcript(fmt, style):
    messages = judge_messages(fmt, CONVERSATION, *args_for(fmt)[1:], style=style)
    assert messages == judge_messages(fmt, TRANSCRIPT, *args_for(fmt)[1:], style=style)
    assert TRANSCRIPT in messages[-1]["content"]
    one_message = [{"role": "user", "content": QUESTION}]  # one user turn reads exactly as the string prompt
    assert judge_messages(fmt, one_message, *args_for(fmt)[1:], style=style) == \
        judge_messages(fmt, *args_for(fmt), style=style)


def test_conversation_orders_share_their_prefix(tok):
    a = judge_prompt_ids(tok, "pairwise", CONVERSATION, GOOD, BAD)
    b = judge_prompt_ids(tok, "pairwise", CONVERSATION, BAD, GOOD)
    prefix = judge_prompt_text(tok, "pairwise", CONVERSATION, GOOD, BAD).split(GOOD)[0]
    shared = len(tok(prefix, add_special_tokens=False)["input_ids"]) - 2  # the last tokens may merge
    assert a[:shared] == b[:shared] and a != b


@pytest.mark.parametrize("fmt", FORMATS)
def test_paper_plan_style_asks_for_a_plan_then_its_execution_and_the_paper_answer(fmt):
    """--prompt-style paper_plan: the paper's template with the thinking paragraph replaced by plan, then execute
    (a reconstruction, see paper_prompts.py); everything else of the paper's template is kept."""
    from j1core.judge.paper_prompts import PAPER_PLAN_TEMPLATES, PAPER_TEMPLATES

    content = judge_messages(fmt, *args_for(fmt), style="paper_plan")[0]["content"]
    assert content.startswith(PAPER_PLAN_TEMPLATES[fmt].split("{instruction}")[0])
    plan, execute = content.index("evaluation plan"), content.index("execute the plan")
    assert plan < execute < content.index("<answer>" if fmt in ("pairwise", "scores_verdict") else "<score")
    paper = judge_messages(fmt, *args_for(fmt), style="paper")[0]["content"]
    assert "evaluation plan" not in paper
    kept = [part for part in PAPER_TEMPLATES[fmt].split("\n\n") if "<think>" not in part]
    assert all(part.split("{")[0] in content for part in kept)  # instructions, answer format and body unchanged


def test_the_paper_plan_answer_parses_and_its_tricks_do_not():
    """What the plan prompt asks for: plan and execution in the think block, then the paper's answer."""
    from j1core.judge.rewards import parse_judgment

    plan = ("<think> Plan: 1. Check the capital. 2. Check for errors.\nExecution: 1. A says Paris, right; "
            "B says Lyon, wrong. 2. B invents a fact. </think>\n")
    assert parse_judgment("pairwise", plan + "<answer> [[A]] </answer>").verdict == "A"
    assert parse_judgment("pointwise", plan.replace("A says", "It says") + "<score> 8.5 </score>").score == 8.5
    assert not parse_judgment("pairwise", plan + "Plan executed. <answer> [[A]] </answer>").parsed
    assert not parse_judgment("pairwise", plan.replace("</think>", "") + "<answer> [[A]] </answer>").parsed
    assert not parse_judgment("pairwise", plan + "<answer> [[A]] </answer> <answer> [[B]] </answer>").parsed


def test_paper_plan_style_orders_share_their_prefix_and_build_training_prompts(tok):
    from j1core.data.builtin import builtin_pairs
    from j1core.judge.step import build_prompts

    a = judge_prompt_ids(tok, "pairwise", QUESTION, GOOD, BAD, style="paper_plan")
    b = judge_prompt_ids(tok, "pairwise", QUESTION, BAD, GOOD, style="paper_plan")
    assert next(i for i, (x, y) in enumerate(zip(a, b)) if x != y) > len(a) // 2
    prompts = build_prompts(builtin_pairs("train")[:2], "mixed", tok, "paper_plan")
    assert prompts and all("evaluation plan" in tok.decode(p.ids) for p in prompts)
