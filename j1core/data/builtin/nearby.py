"""Family "nearby" (J1's noisy-instruction idea): the rejected response is a correct, fluent answer to a
subtly different instruction: another entity, another quantity of the same story, another format, the
other direction, another occasion, another superlative, another text operation. Each template has its own
wording and response style, different from the first built-in "relevance" family's.

    python -m j1core.data.builtin
"""
from __future__ import annotations

from fractions import Fraction

from j1core.data.builtin.common import ITEMS, NAMES, TOPICS, balance, fmt, pick
from j1core.data.builtin.fact_tables import FACTS

FAMILY = "nearby"
SUBJECT_TABLES = ("capitals", "symbols", "years")


def other_entity(rng):
    fact = rng.choice([f for f in FACTS if f.table in SUBJECT_TABLES])
    other = rng.choice([f for f in FACTS if f.table == fact.table and f != fact])
    ask = rng.choice(("Could you remind me: {}", "I always forget this one. {}", "Trivia night prep! {}"))
    return ask.format(fact.question.lower() if ask.startswith("Could") else fact.question), \
        *balance(rng, fact.say(fact.right), other.say(other.right))


STORIES = (  # (setup, {quantity question: (worked answer)}); a and b are the two numbers
    ("{n} sold {a} red and {b} blue umbrellas at the market.",
     {"How many umbrellas did {n} sell in all?": "{a} + {b} = {s} umbrellas were sold in all.",
      "How many more red umbrellas than blue ones did {n} sell?": "{a} - {b} = {d} more red umbrellas than blue."}),
    ("A library had {a} books and lent out {b} of them this week.",
     {"How many books are still on the shelves?": "{a} - {b} = {d} books are still on the shelves.",
      "If the lent books come back and {b} new books arrive, how many books will the library have?":
          "{a} + {b} = {s} books."}),
    ("A farm has {a} sheep and {b} goats.",
     {"How many animals are on the farm altogether?": "{a} + {b} = {s} animals altogether.",
      "How many legs do the sheep have altogether?": "{a} x 4 = {l} legs."}),
    ("{n} walked {a} km on Saturday and {b} km on Sunday.",
     {"How far did {n} walk over the weekend?": "{a} + {b} = {s} km over the weekend.",
      "How much farther did {n} walk on Saturday than on Sunday?": "{a} - {b} = {d} km farther on Saturday."}),
)


def other_quantity(rng):
    setup, questions = rng.choice(STORIES)
    b, a = sorted(rng.sample(range(12, 120), 2))
    values = dict(n=rng.choice(NAMES), a=a, b=b, s=a + b, d=a - b, l=a * 4)
    asked, other = rng.sample(sorted(questions), 2)
    return f"{setup} {asked}".format(**values), *balance(rng, questions[asked].format(**values),
                                                          questions[other].format(**values))


def other_format(rng):
    denominator = rng.choice((2, 4, 5, 8, 10, 20, 25))
    value = Fraction(rng.randint(1, denominator - 1), denominator)
    forms = {"a percentage": f"{fmt(float(value) * 100)}%", "a decimal": fmt(float(value)),
             "a fraction in lowest terms": f"{value.numerator}/{value.denominator}"}
    given = rng.choice(sorted(forms))
    asked = pick(rng, sorted(forms), given)
    other = pick(rng, sorted(forms), given, asked)
    lead = rng.choice(("Written as {} it is {}.", "As {}: {}", "{} -> {}"))
    return (f"Write {forms[given]} as {asked}.", *balance(rng, lead.format(asked, forms[asked]),
                                                          lead.format(other, forms[other])))


def other_direction(rng):
    if rng.random() < 0.5:
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        k, i = rng.randint(2, 5), rng.randint(5, 20)
        want = rng.choice(("after", "before"))
        answer = {"after": letters[i + k], "before": letters[i - k]}
        other = "before" if want == "after" else "after"
        return (f"Which letter comes {k} places {want} {letters[i]} in the alphabet?",
                *balance(rng, f"{k} places {want} {letters[i]} is {answer[want]}.",
                         f"{k} places {other} {letters[i]} is {answer[other]}."))
    x, k = rng.randint(20, 400), rng.randint(3, 60)
    want = rng.choice(("more", "less"))
    answer = {"more": x + k, "less": x - k}
    other = "less" if want == "more" else "more"
    return (f"What number is {k} {want} than {x}?", *balance(rng, f"{k} {want} than {x} is {answer[want]}.",
                                                             f"{k} {other} than {x} is {answer[other]}."))


GIFTS = ("the flowers", "the birthday card", "the book", "the scarf", "helping me move", "the lovely dinner",
         "the lift to the station", "looking after my cat", "the concert tickets", "the homemade jam")


def thank_you_note(rng):
    name, gift = rng.choice(NAMES), rng.choice(GIFTS)
    other_name = pick(rng, NAMES, name)
    notes = {
        "right": f"Dear {name}, thank you so much for {gift}. It really made my week!",
        "gift": f"Dear {name}, thank you so much for {pick(rng, GIFTS, gift)}. It really made my week!",
        "person": f"Dear {other_name}, thank you so much for {gift}. It really made my week!",
        "occasion": f"Dear {name}, I'm sorry I missed your party. I hope we can catch up soon!",
    }
    return (f"Write a one-line thank-you note to {name} for {gift}.",
            *balance(rng, notes["right"], notes[rng.choice(("gift", "person", "occasion"))]))


def clock_offset(rng):
    start, hours = rng.randint(1, 11), rng.randint(2, 7)
    minutes = rng.choice(("00", "15", "30", "45"))
    later, earlier = (start + hours - 1) % 12 + 1, (start - hours - 1) % 12 + 1
    want = rng.choice(("later", "earlier"))
    answer = {"later": later, "earlier": earlier}
    other = "earlier" if want == "later" else "later"
    return (f"It is {start}:{minutes} now. What time will the clock show {hours} hours {want}?",
            *balance(rng, f"{hours} hours {want} it will show {answer[want]}:{minutes}.",
                     f"{hours} hours {other} it will show {answer[other]}:{minutes}."))


SUPERLATIVES = (("the largest planet", "Jupiter", "the smallest planet", "Mercury"),
                ("the tallest land animal", "the giraffe", "the heaviest land animal", "the African elephant"),
                ("the largest ocean", "the Pacific", "the smallest ocean", "the Arctic"),
                ("the planet closest to the Sun", "Mercury", "the planet farthest from the Sun", "Neptune"),
                ("the largest continent", "Asia", "the smallest continent", "Australia"),
                ("the fastest land animal", "the cheetah", "the fastest bird in a dive", "the peregrine falcon"),
                ("the longest bone in the body", "the femur", "the smallest bone in the body", "the stapes"),
                ("the most common gas in the air", "nitrogen", "the gas we need to breathe", "oxygen"))


def superlative_swap(rng):
    row = rng.choice(SUPERLATIVES)
    swap = rng.random() < 0.5
    asked, answer, other, other_answer = (row[2], row[3], row[0], row[1]) if swap else row
    ask = rng.choice(("Name {}.", "Which is {}?", "Tell me {}, please."))
    return ask.format(asked), *balance(rng, f"{answer[0].upper() + answer[1:]} is {asked}.",
                                       f"{other_answer[0].upper() + other_answer[1:]} is {other}.")


def text_ops(rng):
    topic = rng.choice(TOPICS)
    words = [rng.choice(NAMES), "likes", topic, "and", rng.choice(ITEMS)]
    sentence = " ".join(words)
    ops = {"the first word": f"'{words[0]}'", "the last word": f"'{words[-1]}'",
           "the number of words": str(len(sentence.split())),
           "the number of letters in the first word": str(len(words[0]))}
    asked, other = rng.sample(sorted(ops), 2)
    return (f'Sentence: "{sentence}"\nWhat is {asked} of this sentence?',
            *balance(rng, f"{asked[0].upper() + asked[1:]} is {ops[asked]}.",
                     f"{other[0].upper() + other[1:]} is {ops[other]}."))


TEMPLATES = (other_entity, other_quantity, other_format, other_direction, thank_you_note, clock_offset,
             superlative_swap, text_ops)
HELDOUT_TEMPLATES = ("clock_offset", "superlative_swap")
