"""The J1 paper's judge prompts (`--prompt-style paper`), as the paper's appendix prints them.

    python -m pytest tests/judge/test_prompts.py -q

Each is one user message with named placeholders: {instruction} (the question, or a multi-turn prompt's
transcript: j1core/data/messages.py), {response_A}/{response_B}
(pairwise formats) or {response} (pointwise). The paper asks for `<answer> [[A]] </answer>` and
`<score_A> 7 </score_A>`, with spaces inside the tags; j1's parser accepts that spacing (judge/rewards.py).
scores_verdict has no prompt of its own in the paper: it is the pairwise-scores prompt with the verdict
instruction of the pairwise prompt appended, so the judge commits to both.

PAPER_PLAN_TEMPLATES (`--prompt-style paper_plan`): the paper's seed-prompt ablation also trains with a prompt
in the style of EvalPlanner, which has the judge first write an evaluation plan, then execute it, then give the
verdict. Its verbatim text was not available here: these templates are a RECONSTRUCTION from the paper's
description, not the paper's wording. They are the paper's templates above with the thinking paragraph
replaced by a plan-then-execute paragraph; the plan and its execution both sit inside <think> </think>, so the
answer after </think> is the same as the paper prompt's and the same parser reads it.
"""
from __future__ import annotations

_PAIR_INTRO = (
    "You are given a user question and two responses from two AI assistants. Your task is to act as an impartial "
    "judge and evaluate which response better follows the user's instructions and provides a higher-quality "
    "answer.\n\n"
    "First, provide your reasoning within <think> and </think> tags. This should include your evaluation "
    "criteria for a high-quality response, a detailed comparison of the two responses, and when helpful, a "
    "reference answer as part of your evaluation. Be explicit in your thought process, referencing your "
    "criteria and explaining how each response aligns with or deviates from them.\n\n"
    "Avoid any position biases and ensure that the order in which the responses were presented does not "
    "influence your decision. Do not allow the length of the responses to influence your evaluation. Do not "
    "favor certain names of the assistants. Be as objective as possible.\n\n")

_PAIR_BODY = (
    "Below are the user's question and the two responses:\n\n"
    "[User Question]\n{instruction}\n\n"
    "[The Start of Assistant A's Answer]\n{response_A}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{response_B}\n[The End of Assistant B's Answer]")

_VERDICT = (
    "Finally, provide your verdict within <answer> and </answer> tags, strictly following this format:\n"
    "- <answer> [[A]] </answer> if Assistant A is better\n"
    "- <answer> [[B]] </answer> if Assistant B is better\n\n")

_SCORES = (
    "Finally, assign the assistant's response a score from 0 to 10, using either an integer or a decimal with "
    "up to 0.1 precision, with a higher score indicating a higher-quality response that better satisfies the "
    "criteria. Enclose the scores within the tags <score_A> </score_A>, and <score_B> </score_B>.\n\n")

PAPER_TEMPLATES = {
    "pairwise": _PAIR_INTRO + _VERDICT + _PAIR_BODY,
    "pairwise_scores": _PAIR_INTRO + _SCORES
    + "Format your output like this:\n<think> your_thinking_process </think>\n"
      "<score_A> your_score_a </score_A> <score_B> your_score_b </score_B>\n\n" + _PAIR_BODY,
    "scores_verdict": _PAIR_INTRO + _SCORES
    + "Then provide your verdict within <answer> and </answer> tags: <answer> [[A]] </answer> if Assistant A is "
      "better, <answer> [[B]] </answer> if Assistant B is better.\n\n"
      "Format your output like this:\n<think> your_thinking_process </think>\n"
      "<score_A> your_score_a </score_A> <score_B> your_score_b </score_B> <answer> [[A or B]] </answer>\n\n"
    + _PAIR_BODY,
    "pointwise": (
        "You are given a user question and a response from an AI assistant. Your task is to act as an impartial "
        "judge and evaluate how well the response fulfills the user's instructions. You will be shown multiple "
        "responses to the same prompt, but only one at a time. Evaluate each response independently.\n\n"
        "Think carefully about how to assess the quality of the response, and enclose your reasoning within "
        "<think> and </think> tags. Your reasoning should include your evaluation criteria, a clear "
        "understanding of what an ideal response would look like for this particular question, and a concrete "
        "example of such an ideal or reference answer if possible. Then compare the assistant's response to "
        "your ideal or reference answer, explaining how it aligns with or deviates from your expectations. Be "
        "specific and avoid vague or overly general judgments. Remain as objective as possible.\n\n"
        "Finally, assign the assistant's response a score from 0 to 10, using either an integer or a decimal "
        "with up to 0.1 precision. A higher score should indicate a higher-quality response. Enclose the score "
        "within <score> and </score> tags.\n\n"
        "Format your output like this:\n<think> your_thinking_process </think>\n<score> your_score </score>\n\n"
        "Below are the user's question and the assistant's response:\n\n"
        "[User Question]\n{instruction}\n\n"
        "[The Start of the Assistant's Answer]\n{response}\n[The End of the Assistant's Answer]"),
}

# The thinking paragraphs of the templates above, and the plan-then-execute paragraphs that replace them.
_PAIR_THINK = _PAIR_INTRO.split("\n\n")[1] + "\n\n"
_POINT_THINK = PAPER_TEMPLATES["pointwise"].split("\n\n")[1] + "\n\n"
_PAIR_PLAN = (
    "First, think within <think> and </think> tags, in two parts. Begin with an evaluation plan: without judging "
    "the responses yet, write down the criteria a high-quality response to this question must meet and the "
    "steps you will take to check them, including, when helpful, working out a reference answer yourself. "
    "Then execute the plan: follow its steps one by one on both responses, referencing the criteria and "
    "explaining how each response aligns with or deviates from them.\n\n")
_POINT_PLAN = (
    "First, think within <think> and </think> tags, in two parts. Begin with an evaluation plan: without judging "
    "the response yet, write down the criteria an ideal response to this question must meet and the steps you "
    "will take to check them, including, when possible, a concrete reference answer. Then execute the plan: "
    "follow its steps one by one on the response, explaining how it aligns with or deviates from your "
    "expectations. Be specific and avoid vague or overly general judgments. Remain as objective as "
    "possible.\n\n")


def _plan_variant(fmt: str, template: str) -> str:
    think, plan = (_POINT_THINK, _POINT_PLAN) if fmt == "pointwise" else (_PAIR_THINK, _PAIR_PLAN)
    return template.replace(think, plan).replace("<think> your_thinking_process </think>",
                                                 "<think> your_evaluation_plan your_plan_execution </think>")


PAPER_PLAN_TEMPLATES = {fmt: _plan_variant(fmt, template) for fmt, template in PAPER_TEMPLATES.items()}

PLACEHOLDERS = {"pairwise": ("instruction", "response_A", "response_B"), "pointwise": ("instruction", "response")}
