"""Family "confident": length and tone are no cue. One response is long and sure of itself, the other short,
plain or hedged; which of them is right is a coin flip, so in half the pairs the long, confident response is
the wrong one (a trick question, a misconception, 9.11 > 9.9, agreeing with the user's wrong claim) and in
the other half it is the right one. Each template asks in its own way.

    python -m j1core.data.builtin
"""
from __future__ import annotations

from j1core.data.builtin.common import fmt
from j1core.data.builtin.fact_tables import FACTS
from j1core.data.builtin.relevance import WORDS

FAMILY = "confident"

# question, right answer, wrong answer (short forms)
TRICKS = (
    ("How many months have 28 days?", "All 12 of them.", "Just one: February."),
    ("Which weighs more, a kilogram of feathers or a kilogram of steel?", "They weigh the same: one kilogram each.",
     "The kilogram of steel."),
    ("If you overtake the person in second place in a race, what place are you in?", "Second place.",
     "First place."),
    ("A farmer has 17 sheep and all but 9 run away. How many are left?", "9 sheep.", "8 sheep."),
    ("What colour is a polar bear's skin?", "Black.", "White."),
    ("How many animals of each kind did Moses take on the ark?", "None: in the story it was Noah, not Moses.",
     "Two of each kind."),
    ("Can you see the Great Wall of China from the Moon with the naked eye?",
     "No, it is far too narrow to see from the Moon.", "Yes, it is visible from the Moon."),
    ("Do people only use 10% of their brains?", "No, we use virtually all of the brain.",
     "Yes, only about 10% of it."),
    ("Botanically speaking, is a tomato a fruit or a vegetable?", "A fruit.", "A vegetable."),
    ("Can lightning strike the same place twice?", "Yes, and tall buildings are struck many times a year.",
     "No, lightning never strikes the same place twice."),
    ("Does water boil at a higher or lower temperature on a high mountain than at sea level?",
     "Lower than at sea level.", "Higher than at sea level."),
    ("Are bats blind?", "No, bats can see, and many also use echolocation.", "Yes, bats are completely blind."),
    ("What is 1/2 + 1/3?", "5/6.", "2/5."),
    ("Is a whale a fish?", "No, a whale is a mammal.", "Yes, a whale is a large fish."),
    ("When is the Earth closest to the Sun?", "In early January.", "In July, during the northern summer."),
    ("How long does it take light from the Sun to reach Earth?", "About 8 minutes.", "About 8 seconds."),
)
SURE = ("Great question! {} This is a well-known fact, and I am completely certain about it.",
        "{} I'm 100% sure about this; it's something everyone learns early on, so you can rely on it.",
        "Absolutely. {} There is no doubt here: this is the standard answer, and any reference book says the same.",
        "Let me be clear. {} I have checked this carefully and it is definitely correct, no need to look it up.")
PLAIN = ("{}", "{}", "Answer: {}")
HEDGED = ("I think it's this: {}", "If I remember correctly: {} (worth double-checking)", "Not fully sure, but {}",
          "Probably: {}")


def coin(rng, right: str, wrong: str, loud=SURE, quiet=PLAIN) -> tuple[str, str]:
    """(chosen, rejected): a random one of the two answers gets the loud style, the other the quiet one."""
    loud_style, quiet_style = rng.choice(loud), rng.choice(quiet)
    if rng.random() < 0.5:
        return loud_style.format(right), quiet_style.format(wrong)
    return quiet_style.format(right), loud_style.format(wrong)


def trick_confident(rng):
    question, right, wrong = rng.choice(TRICKS)
    return rng.choice(("{}", "{} Explain if you like.", "Riddle time: {}")).format(question), *coin(rng, right, wrong)


def trick_hedged(rng):
    question, right, wrong = rng.choice(TRICKS)
    ask = rng.choice(("Quick one: {}", "My friend and I disagree. {}", "{} Be honest."))
    return ask.format(question), *coin(rng, right, wrong, SURE, HEDGED)


def fact_confident(rng):
    fact = rng.choice(FACTS)
    ask = rng.choice(("Do you know this? {}", "{}", "Settle a debate: {}"))
    return ask.format(fact.question), *coin(rng, fact.say(fact.right), fact.say(fact.wrong))


def math_confident(rng):
    a, b = rng.randint(6, 19), rng.randint(6, 19)
    op = rng.choice(("x", "+"))
    right = a * b if op == "x" else a + b
    wrong = right + rng.choice((-a, a, -10, 10, -1, 1)) if op == "x" else right + rng.choice((-10, 10, -1, 1))
    return rng.choice(("What is {}?", "{} = ?", "Compute {} for me.")).format(f"{a} {op} {b}"), \
        *coin(rng, f"{a} {op} {b} = {fmt(right)}.", f"{a} {op} {b} = {fmt(wrong)}.")


def agree_with_user(rng):
    fact = rng.choice(FACTS)
    claim = rng.choice(("I read online that {} Is that right?", "My teacher said {} True?", "Pretty sure {} Yes?"))
    right = f"Not quite. {fact.say(fact.right)}"
    wrong = f"Yes, that's right. {fact.say(fact.wrong)}"
    loud = ("{} I'm completely sure about this, it's a well-known fact.", "{} There is no doubt about it at all.")
    said = fact.say(fact.wrong)
    said = said[0].lower() + said[1:] if said.startswith(("The ", "A ", "An ")) else said
    return claim.format(said), *coin(rng, right, wrong, loud, ("{}",))


def decimals_compare(rng):
    whole, tenths, hundredths = rng.randint(1, 20), rng.randint(2, 9), rng.randint(10, 19)
    big, small = f"{whole}.{tenths}", f"{whole}.{hundredths}"
    if float(small) >= float(big):
        return None
    first, second = rng.sample((big, small), 2)
    right = f"{big} is larger."
    wrong = f"{small} is larger, because {hundredths} is more than {tenths}."
    return rng.choice(("Which is larger, {} or {}?", "Is {} bigger than {}?", "Compare {} and {}.")).format(
        first, second), *coin(rng, right, wrong)


def count_letters(rng):
    word = rng.choice([w for w in WORDS if max(w.count(c) for c in w) >= 2])
    letter = rng.choice(sorted({c for c in word if word.count(c) >= 2}))
    n = word.count(letter)
    spelled = "-".join(word)
    right, wrong = f"{spelled}: the letter {letter} appears {n} times.", f"{spelled}: the letter {letter} appears " \
        f"{n - 1} time{'s' if n - 1 != 1 else ''}."
    return f"How many times does the letter '{letter}' appear in '{word}'?", *coin(rng, right, wrong)


def detailed_or_terse(rng):
    fact = rng.choice(FACTS)
    loud = ("{} To explain: this is the accepted answer, and it is easy to confirm in an encyclopedia or atlas.",
            "Here is a full answer. {} This is the answer you will find in standard references and quiz books.")
    return f"{fact.question} (one line is fine)", *coin(rng, fact.say(fact.right), fact.say(fact.wrong), loud,
                                                        ("{}",))


TEMPLATES = (trick_confident, trick_hedged, fact_confident, math_confident, agree_with_user, decimals_compare,
             count_letters, detailed_or_terse)
HELDOUT_TEMPLATES = ("trick_hedged", "count_letters")
