"""Family "offtopic": the rejected response is fluent and correct, but about something else entirely (another
fact, another how-to, another word, another topic); the chosen one answers what was asked. Each template asks
in its own way and answers in its own style.

    python -m j1core.data.builtin
"""
from __future__ import annotations

from j1core.data.builtin.common import NAMES, balance
from j1core.data.builtin.fact_tables import FACTS

FAMILY = "offtopic"

HOW_TO = (
    ("boil an egg", "Put the egg in boiling water for about 8 to 10 minutes, then cool it in cold water."),
    ("make a cup of tea", "Pour freshly boiled water over a tea bag, wait three to five minutes, then remove it."),
    ("water a cactus", "Water it deeply but rarely, only when the soil has dried out completely."),
    ("clean a cast-iron pan", "Rinse it with hot water, scrub off food, dry it fully and rub in a thin layer of oil."),
    ("fix a flat bicycle tyre", "Take out the inner tube, find the hole, patch it or fit a new tube, then pump it up."),
    ("fall asleep faster", "Keep a regular bedtime, avoid screens for an hour before bed, and keep the room cool."),
    ("remember new words", "Review them a few times over several days and use each one in a sentence of your own."),
    ("keep cut flowers fresh", "Trim the stems at an angle, change the water every two days and keep them cool."),
    ("start running", "Begin with short run-walk sessions three times a week and add a few minutes each week."),
    ("save money on groceries", "Plan meals for the week, shop with a list, and buy staples in larger packs."),
    ("tie a reef knot", "Cross right over left and tuck under, then left over right and tuck under, then pull."),
    ("unclog a sink", "Pour in boiling water, then try a plunger; if that fails, clean out the trap under the sink."),
)
WORDS = (
    ("ephemeral", "lasting for a very short time"), ("benevolent", "kind and wanting to do good"),
    ("candid", "honest and direct"), ("meticulous", "very careful about small details"),
    ("frugal", "careful not to spend much money"), ("ubiquitous", "found everywhere"),
    ("resilient", "able to recover quickly from difficulties"), ("verbose", "using more words than needed"),
    ("novice", "a person new to an activity"), ("arid", "very dry, with little rain"),
    ("lenient", "not strict when punishing or judging"), ("tedious", "long, slow and dull"),
    ("gregarious", "fond of company and sociable"), ("obsolete", "no longer used or needed"),
    ("placid", "calm and not easily upset"), ("vivid", "very bright or very clear"),
)
TIPS = {
    "gardening": "water early in the morning so less evaporates", "music": "practise slowly before playing fast",
    "chess": "develop your knights and bishops before moving the queen", "cooking": "taste as you go and season "
    "little by little", "trains": "book early, since advance tickets are usually cheaper", "dogs": "reward good "
    "behaviour right away so the dog links the two", "bicycles": "check the tyre pressure before every ride",
    "coffee": "grind the beans just before brewing", "bread": "let the dough rise somewhere warm",
    "birds": "put out fresh water as well as seed", "mountains": "start early and turn back if the weather turns",
    "winter": "dress in layers rather than one thick coat",
}


def fact_for_fact(rng):
    fact = rng.choice(FACTS)
    other = rng.choice([f for f in FACTS if f.table != fact.table])
    ask = rng.choice(("{}", "Quick question: {}", "{} Thanks in advance."))
    return ask.format(fact.question), *balance(rng, fact.say(fact.right), other.say(other.right))


def how_to(rng):
    (task, steps), (_, other) = rng.sample(HOW_TO, 2)
    ask = rng.choice(("How do I {}?", "What's the easiest way to {}?", "Can you explain how to {}?"))
    return ask.format(task), *balance(rng, steps, other)


def define_word(rng):
    (word, meaning), (other, other_meaning) = rng.sample(WORDS, 2)
    style = rng.choice(("'{}' means {}.", "{}: {}.", "The word {} means {}."))
    return (rng.choice(("What does '{}' mean?", "Define the word {}.", "Meaning of {}?")).format(word),
            *balance(rng, style.format(word, meaning), style.format(other, other_meaning)))


def topic_tip(rng):
    topic, other = rng.sample(sorted(TIPS), 2)
    name = rng.choice(NAMES)
    return (f"{name} here. Could you give me one good tip about {topic}?",
            *balance(rng, f"For {topic}: {TIPS[topic]}.", f"For {other}: {TIPS[other]}."))


def sum_or_story(rng):
    a, b = rng.randint(12, 95), rng.randint(12, 95)
    fact = rng.choice(FACTS)
    return f"Please add {a} and {b}.", *balance(rng, f"{a} + {b} = {a + b}.", fact.say(fact.right))


def email_reply(rng):
    name = rng.choice(NAMES)
    day = rng.choice(("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"))
    fact = rng.choice(FACTS)
    return (f"Reply to {name}'s email in one line: 'Can we meet on {day}?' Say yes.",
            *balance(rng, f"Hi {name}, {day} works for me. See you then!",
                     f"Hi {name}, fun fact: {fact.say(fact.right)}"))


TEMPLATES = (fact_for_fact, how_to, define_word, topic_tip, sum_or_story, email_reply)
HELDOUT_TEMPLATES = ("define_word", "email_reply")
