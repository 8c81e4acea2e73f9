"""Family "relevance" (kept from the first built-in set): the rejected response correctly answers a nearby but
different instruction (capital of another country, the k smallest instead of the k largest, descending
instead of ascending, ...). Each template draws an easy, medium or hard instance (or None when a draw would
not make a clean pair).

    python -m j1core.data.builtin
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from j1core.data.builtin.common import balance, fmt, listed

FAMILY = "relevance"
LEVELS = ("easy", "medium", "hard")

CAPITALS = {
    "easy": [("France", "Paris"), ("Spain", "Madrid"), ("Italy", "Rome"), ("Germany", "Berlin"), ("Japan", "Tokyo"),
             ("China", "Beijing"), ("Russia", "Moscow"), ("Egypt", "Cairo"), ("Greece", "Athens"),
             ("Portugal", "Lisbon"), ("Ireland", "Dublin"), ("England", "London")],
    "medium": [("Canada", "Ottawa"), ("Australia", "Canberra"), ("Brazil", "Brasilia"), ("Turkey", "Ankara"),
               ("Poland", "Warsaw"), ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Finland", "Helsinki"),
               ("Austria", "Vienna"), ("Hungary", "Budapest"), ("Argentina", "Buenos Aires"), ("Peru", "Lima"),
               ("Kenya", "Nairobi"), ("India", "New Delhi"), ("South Korea", "Seoul")],
    "hard": [("Kazakhstan", "Astana"), ("Nigeria", "Abuja"), ("Morocco", "Rabat"), ("Vietnam", "Hanoi"),
             ("New Zealand", "Wellington"), ("Switzerland", "Bern"), ("Mongolia", "Ulaanbaatar"),
             ("Chile", "Santiago"), ("Colombia", "Bogota"), ("Slovakia", "Bratislava"), ("Slovenia", "Ljubljana"),
             ("Croatia", "Zagreb"), ("Iceland", "Reykjavik"), ("Ethiopia", "Addis Ababa"), ("Ghana", "Accra")],
}
# word: French, Spanish, German, Italian
TRANSLATIONS = {
    "cat": ("chat", "gato", "Katze", "gatto"), "dog": ("chien", "perro", "Hund", "cane"),
    "water": ("eau", "agua", "Wasser", "acqua"), "bread": ("pain", "pan", "Brot", "pane"),
    "book": ("livre", "libro", "Buch", "libro"), "apple": ("pomme", "manzana", "Apfel", "mela"),
    "sun": ("soleil", "sol", "Sonne", "sole"), "moon": ("lune", "luna", "Mond", "luna"),
    "tree": ("arbre", "arbol", "Baum", "albero"), "red": ("rouge", "rojo", "rot", "rosso"),
    "black": ("noir", "negro", "schwarz", "nero"), "white": ("blanc", "blanco", "weiss", "bianco"),
    "friend": ("ami", "amigo", "Freund", "amico"), "school": ("ecole", "escuela", "Schule", "scuola"),
    "car": ("voiture", "coche", "Auto", "macchina"), "milk": ("lait", "leche", "Milch", "latte"),
    "cheese": ("fromage", "queso", "Kaese", "formaggio"), "day": ("jour", "dia", "Tag", "giorno"),
    "night": ("nuit", "noche", "Nacht", "notte"), "window": ("fenetre", "ventana", "Fenster", "finestra"),
    "house": ("maison", "casa", "Haus", "casa"), "thank you": ("merci", "gracias", "danke", "grazie"),
}
LANGUAGES = ("French", "Spanish", "German", "Italian")
# word, synonym, antonym
OPPOSITES = [("happy", "joyful", "sad"), ("big", "large", "small"), ("fast", "quick", "slow"),
             ("hot", "scorching", "cold"), ("begin", "start", "end"), ("rich", "wealthy", "poor"),
             ("smart", "clever", "foolish"), ("easy", "simple", "difficult"), ("quiet", "silent", "loud"),
             ("strong", "powerful", "weak"), ("empty", "vacant", "full"), ("buy", "purchase", "sell"),
             ("close", "shut", "open"), ("brave", "courageous", "cowardly"), ("angry", "furious", "calm"),
             ("ancient", "old", "modern"), ("tiny", "little", "huge"), ("bright", "radiant", "dark"),
             ("increase", "raise", "decrease"), ("victory", "win", "defeat"), ("love", "adore", "hate"),
             ("polite", "courteous", "rude"), ("generous", "giving", "stingy"), ("correct", "right", "wrong"),
             ("friend", "companion", "enemy"), ("accept", "receive", "reject"), ("laugh", "chuckle", "cry")]
WORD_TEXT = ("cat sun tree moon book lamp frog rain milk bread apple house river chair table water garden "
         "pencil window orange banana planet rocket silver dragon castle monkey yellow purple winter summer "
         "kitchen library picture blanket holiday chicken teacher morning diamond elephant mountain umbrella "
         "computer dinosaur sandwich hospital tomorrow airplane question notebook butterfly crocodile "
         "telephone adventure education chocolate pineapple volunteer telescope wonderful strawberry "
         "helicopter basketball everything restaurant television")
WORDS = tuple(WORD_TEXT.split())
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
# unit, asked unit, factor, other unit, factor
CONVERSIONS = [("km", "meters", 1000, "centimeters", 100000), ("m", "centimeters", 100, "millimeters", 1000),
               ("kg", "grams", 1000, "milligrams", 1000000), ("hours", "minutes", 60, "seconds", 3600),
               ("liters", "milliliters", 1000, "centiliters", 100), ("days", "hours", 24, "minutes", 1440),
               ("weeks", "days", 7, "hours", 168), ("feet", "inches", 12, "yards", Decimal(1) / 3),
               ("minutes", "seconds", 60, "milliseconds", 60000), ("yards", "feet", 3, "inches", 36)]
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven")


def numbers(rng, n, low=1, high=99):
    return rng.sample(range(low, high + 1), n)


def level_pick(level, easy, medium, hard):
    return {"easy": easy, "medium": medium, "hard": hard}[level]


def capital(rng, level):
    (country, city), (other, other_city) = rng.sample(CAPITALS[level], 2)
    ask = rng.choice(("What is the capital of {}?", "Name the capital city of {}.", "Which city is the capital of {}?"))
    return ask.format(country), f"The capital of {country} is {city}.", f"The capital of {other} is {other_city}."


def top_k(rng, level):
    n, k = level_pick(level, (5, 2), (7, 3), (9, 4))
    values = numbers(rng, n)
    want, other = rng.sample(("largest", "smallest"), 2)
    pick = {"largest": sorted(values, reverse=True)[:k], "smallest": sorted(values)[:k]}
    return (f"List the {k} {want} numbers in: {listed(values)}.", f"The {k} {want} are {listed(pick[want])}.",
            f"The {k} {other} are {listed(pick[other])}.")


def sort_order(rng, level):
    want = rng.choice(("ascending", "descending"))
    values = rng.sample(WORDS, 5) if level == "hard" else numbers(rng, level_pick(level, 4, 6, 0))
    up, down = listed(sorted(values)), listed(sorted(values, reverse=True))
    what = "these words alphabetically" if level == "hard" else "these numbers"
    chosen, rejected = (up, down) if want == "ascending" else (down, up)
    return f"Sort {what} in {want} order: {listed(values)}.", chosen + ".", rejected + "."


def convert_units(rng, level):
    unit, asked, factor, other, other_factor = rng.choice(CONVERSIONS)
    value = level_pick(level, rng.randint(1, 9), rng.randint(10, 99), Decimal(rng.randint(11, 99)) / 2)
    return (f"Convert {fmt(value)} {unit} to {asked}.", f"{fmt(value)} {unit} is {fmt(value * factor)} {asked}.",
            f"{fmt(value)} {unit} is {fmt(round(value * other_factor, 2))} {other}.")


def count_letters(rng, level):
    word = rng.choice([w for w in WORDS if len(w) in level_pick(level, (3, 4, 5), (6, 7, 8), (9, 10, 11))])
    vowels = sum(ch in "aeiou" for ch in word)
    counts = {"vowels (a, e, i, o, u)": vowels, "consonants": len(word) - vowels}
    want, other = rng.sample(sorted(counts), 2)
    if counts[want] == counts[other]:
        return None
    return (f"How many {want} are in the word '{word}'?", f"'{word}' has {counts[want]} {want.split()[0]}.",
            f"'{word}' has {counts[other]} {other.split()[0]}.")


def synonym_antonym(rng, level):
    word, synonym, antonym = rng.choice(level_pick(level, OPPOSITES[:9], OPPOSITES[9:18], OPPOSITES[18:]))
    answers = {"a synonym": synonym, "an antonym": antonym}
    want, other = rng.sample(sorted(answers), 2)
    ask = rng.choice(("Give {} for '{}'.", "What is {} of the word '{}'?"))
    return (ask.format(want, word), f"{want.capitalize()} of '{word}' is '{answers[want]}'.",
            f"{other.capitalize()} of '{word}' is '{answers[other]}'.")


def arithmetic_operation(rng, level):
    a, b = sorted(numbers(rng, 2, *level_pick(level, (2, 12), (13, 60), (61, 250))), reverse=True)
    results = {"sum": ("+", a + b), "difference": ("-", a - b), "product": ("x", a * b)}
    want, other = rng.sample(sorted(results), 2)
    def answer(op):
        return f"The {op} is {a} {results[op][0]} {b} = {fmt(results[op][1])}."
    return f"What is the {want} of {a} and {b}?", answer(want), answer(other)


def translate(rng, level):
    word = rng.choice(sorted(TRANSLATIONS))
    pool = LANGUAGES[:2] if level == "easy" else LANGUAGES[2:] if level == "hard" else LANGUAGES
    want = rng.choice(pool)
    other = rng.choice([lang for lang in LANGUAGES if lang != want])
    said = dict(zip(LANGUAGES, TRANSLATIONS[word]))
    if said[want] == said[other]:
        return None
    ask = rng.choice(("Translate '{}' into {}.", "How do you say '{}' in {}?"))
    return (ask.format(word, want), f"In {want}, '{word}' is '{said[want]}'.",
            f"In {other}, '{word}' is '{said[other]}'.")


def even_odd(rng, level):
    values = numbers(rng, level_pick(level, 5, 7, 9), 1, level_pick(level, 20, 99, 999))
    parts = {"even": [v for v in values if v % 2 == 0], "odd": [v for v in values if v % 2]}
    if not parts["even"] or not parts["odd"]:
        return None
    want, other = rng.sample(("even", "odd"), 2)
    return (f"List the {want} numbers in: {listed(values)}.", f"The {want} numbers are {listed(parts[want])}.",
            f"The {other} numbers are {listed(parts[other])}.")


def round_number(rng, level):
    places = level_pick(level, (0, 1), (1, 2), (2, 3))
    want, other = rng.sample(places, 2)
    x = Decimal(rng.randint(10000, 999999)) / 10000
    said = {d: x.quantize(Decimal(1).scaleb(-d), rounding=ROUND_HALF_UP) for d in places}
    name = {0: "the nearest whole number", 1: "one decimal place", 2: "two decimal places",
            3: "three decimal places"}
    return (f"Round {x} to {name[want]}.", f"{x} rounded to {name[want]} is {said[want]}.",
            f"{x} rounded to {name[other]} is {said[other]}.")


def calendar_offset(rng, level):
    names = rng.choice((DAYS, MONTHS))
    kind = "days" if names is DAYS else "months"
    n = level_pick(level, 1, rng.randint(2, 3), rng.randint(4, len(names) - 1))
    start = rng.randrange(len(names))
    want, other = rng.sample(("after", "before"), 2)
    step = {"after": n, "before": -n}
    unit = kind[:-1] if n == 1 else kind
    answer = {w: names[(start + step[w]) % len(names)] for w in step}
    if answer["after"] == answer["before"]:
        return None
    return (f"Which {kind[:-1]} is {NUMBER_WORDS[n]} {unit} {want} {names[start]}?",
            f"{NUMBER_WORDS[n].capitalize()} {unit} {want} {names[start]} is {answer[want]}.",
            f"{NUMBER_WORDS[n].capitalize()} {unit} {other} {names[start]} is {answer[other]}.")


def spell_word(rng, level):
    word = rng.choice([w for w in WORDS if len(w) in level_pick(level, (3, 4, 5), (6, 7, 8), (9, 10, 11))])
    forms = {"backwards": word[::-1], "in capital letters": word.upper(),
             "with its letters in alphabetical order": "".join(sorted(word))}
    want, other = rng.sample(sorted(forms), 2)
    return f"Write the word '{word}' {want}.", f"'{word}' {want} is '{forms[want]}'.", \
        f"'{word}' {other} is '{forms[other]}'."


def any_level(template):
    """A template of one random level whose responses are length-balanced; keeps the template's name (its id)."""
    def draw(rng):
        drawn = template(rng, rng.choice(LEVELS))
        return None if drawn is None else (drawn[0], *balance(rng, drawn[1], drawn[2]))
    draw.__name__, draw.__wrapped__ = template.__name__, template
    return draw


TEMPLATES = tuple(map(any_level, (capital, top_k, sort_order, convert_units, count_letters, synonym_antonym,
                                  arithmetic_operation, translate, even_odd, round_number, calendar_offset,
                                  spell_word)))
HELDOUT_TEMPLATES = ("convert_units", "calendar_offset", "spell_word")
