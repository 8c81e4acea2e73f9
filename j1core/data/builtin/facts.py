"""Family "facts": a factual question (a capital, a chemical symbol, a year, a count, a fact of nature); the
rejected response gives the plausible wrong answer from fact_tables.py in the same words and format as the
chosen one. Each template asks in its own way and answers in its own style (a sentence, one word, a filled
blank, true/false, a chatty reply, a multiple-choice letter, JSON, either/or, an answer with a reason).

    python -m j1core.data.builtin
"""
from __future__ import annotations

import json

from j1core.data.builtin.common import balance
from j1core.data.builtin.fact_tables import FACTS, REASONS

FAMILY = "facts"


def answers(rng, write):
    """(chosen, rejected) = write(right), write(wrong) for a random fact, length-balanced."""
    fact = rng.choice(FACTS)
    return fact, balance(rng, write(fact, fact.right), write(fact, fact.wrong))


def plain_question(rng):
    fact, (chosen, rejected) = answers(rng, lambda f, a: f.say(a))
    return fact.question, chosen, rejected


def one_word(rng):
    fact = rng.choice(FACTS)
    ask = rng.choice(("Answer with just the answer, nothing else.", "One word (or number) only, please."))
    return f"{fact.question} {ask}", fact.right, fact.wrong


def fill_blank(rng):
    fact, (chosen, rejected) = answers(rng, lambda f, a: f.say(f"**{a}**"))
    return f"Fill in the blank: {fact.say('_____')}", chosen, rejected


def true_false(rng):
    fact = rng.choice(FACTS)
    shown_right = rng.random() < 0.5
    shown = fact.right if shown_right else fact.wrong
    correct = f"False. {fact.say(fact.right)}" if not shown_right else f"True. {fact.say(fact.right)}"
    mistaken = f"True. {fact.say(fact.wrong)}" if not shown_right else f"False. {fact.say(fact.wrong)}"
    return f"True or false: {fact.say(shown)}", *balance(rng, correct, mistaken)


def homework_chat(rng):
    fact = rng.choice(FACTS)
    q = fact.question[0].lower() + fact.question[1:]
    opener, closer = rng.choice(("No problem!", "Sure thing!", "Happy to help!")), rng.choice(
        ("Good luck with your homework!", "Hope your homework goes well!", "You've got this!"))
    prompt = rng.choice(("hey, quick question for my homework: {}", "sorry to bother u but {}", "{} (for school)"))
    return prompt.format(q), *balance(rng, f"{opener} {fact.say(fact.right)} {closer}",
                                      f"{opener} {fact.say(fact.wrong)} {closer}")


def multiple_choice(rng):
    fact = rng.choice(FACTS)
    others = sorted({f.right for f in FACTS if f.table == fact.table} - {fact.right, fact.wrong})
    options = [fact.right, fact.wrong, rng.choice(others)]
    rng.shuffle(options)
    marks = ("a)", "b)", "c)")
    listing = "\n".join(f"{m} {o}" for m, o in zip(marks, options))
    def mark(x):
        return f"{marks[options.index(x)]} {x}"
    return f"{fact.question}\n{listing}\nPick one option.", *balance(rng, mark(fact.right), mark(fact.wrong))


def json_answer(rng):
    fact = rng.choice(FACTS)
    key = rng.choice(("answer", "result", "value"))
    return (f'{fact.question} Reply in JSON, for example {{"{key}": "..."}}.', json.dumps({key: fact.right}),
            json.dumps({key: fact.wrong}))


def either_or(rng):
    fact = rng.choice(FACTS)
    first, second = rng.sample((fact.right, fact.wrong), 2)
    lead = rng.choice(("It's", "The answer is", "That would be"))
    chosen, rejected = balance(rng, f"{lead} {fact.right}.", f"{lead} {fact.wrong}.")
    return f"{fact.question} Is it {first} or {second}?", chosen, rejected


def with_reason(rng):
    fact = rng.choice(FACTS)
    reason = REASONS[fact.table]
    return (f"{fact.question} Give the answer and one short reason.",
            *balance(rng, f"{fact.say(fact.right)} {reason}", f"{fact.say(fact.wrong)} {reason}"))


TEMPLATES = (plain_question, one_word, fill_blank, true_false, homework_chat, multiple_choice, json_answer,
             either_or, with_reason)
HELDOUT_TEMPLATES = ("either_or", "json_answer")
