"""Built-in preference pairs written by j1's own code, so training runs without ../shared/data.

    python -m j1core.data.builtin            # counts per family and category, and a few samples
    python -m pytest tests/data/test_builtin.py -q

Two families mirror J1's synthetic data, with short texts that a 135M model can read:
- builtin-relevance: the rejected response correctly answers a nearby but different instruction
  (capital of another country, the k smallest instead of the k largest, descending instead of ascending, ...).
- builtin-math: the rejected response is a worked solution with one plausible slip (a dropped carry or
  borrow, an off-by-one, a sign error, a wrong operation in one step), carried through to a wrong answer.
Each template draws an easy, medium or hard instance (or None when a draw would not make a clean pair, e.g.
a sum without any carry to drop); Pair.category is "<template>/<level>".

The pool of a seed holds RELEVANCE_PAIRS + MATH_PAIRS pairs with distinct prompts. A prompt is held out when
a hash of its text alone falls in one of HELDOUT_BUCKETS buckets, so the held-out split is the same for every
seed and template: training on any seed never sees a held-out prompt. Ids are a hash of the prompt.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from j1core.data.pairs import Pair, stable_hash

RELEVANCE_PAIRS = 3000
MATH_PAIRS = 3000
HELDOUT_BUCKETS = 8  # 1 prompt in 8 is held out
GIVE_UP_AFTER = 300  # consecutive repeated prompts after which a template counts as exhausted
SPLITS = ("train", "heldout")

LEVELS = ("easy", "medium", "hard")


def builtin_pairs(split: str = "train", seed: int = 0) -> list[Pair]:
    """The train or held-out pairs of the pool drawn with this seed (same seed, same pairs)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    want_heldout = split == "heldout"
    return [p for p in all_builtin_pairs(seed) if is_heldout(p.prompt) == want_heldout]


def all_builtin_pairs(seed: int = 0) -> list[Pair]:
    """Both splits of the pool of one seed (fresh Pair objects on every call)."""
    return [replace(p) for p in _pool(seed)]


@lru_cache(maxsize=4)
def _pool(seed: int) -> tuple[Pair, ...]:
    return tuple(draw_family("builtin-relevance", RELEVANCE_TEMPLATES, RELEVANCE_PAIRS, seed)
                 + draw_family("builtin-math", MATH_TEMPLATES, MATH_PAIRS, seed))


def is_heldout(prompt: str) -> bool:
    return stable_hash("j1-builtin-heldout", prompt) % HELDOUT_BUCKETS == 0


def draw_family(source: str, templates, count: int, seed: int) -> list[Pair]:
    """Round-robin over the templates until `count` distinct prompts; small templates drop out when spent."""
    rng = random.Random(f"j1-builtin:{source}:{seed}")
    pairs, seen = [], set()
    misses = dict.fromkeys(templates, 0)
    while len(pairs) < count:
        live = [t for t in templates if misses[t] < GIVE_UP_AFTER]
        if not live:
            raise RuntimeError(f"{source}: templates exhausted after {len(pairs)} of {count} pairs")
        for template in live:
            level = rng.choice(LEVELS)
            drawn = template(rng, level)  # (prompt, chosen, rejected), or None when the draw has no valid pair
            if drawn is None or drawn[0] in seen:
                misses[template] += 1
                continue
            prompt, chosen, rejected = drawn
            misses[template] = 0
            seen.add(prompt)
            name = template.__name__
            pairs.append(Pair(f"{source}-{stable_hash('id', prompt):016x}", prompt, chosen, rejected, source,
                              f"{name}/{level}"))
            if len(pairs) == count:
                break
    return pairs


def fmt(x) -> str:
    """A number as people write it: 1,250 or 2.5, never 2.50 or 3.0."""
    value = Decimal(str(x))
    if value == value.to_integral_value():
        return f"{int(value):,}"
    return f"{value.normalize():f}"


# ---------------------------------------------------------------- relevance: answer a nearby instruction

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


def listed(values) -> str:
    return ", ".join(str(v) for v in values)


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


RELEVANCE_TEMPLATES = (capital, top_k, sort_order, convert_units, count_letters, synonym_antonym,
                       arithmetic_operation, translate, even_odd, round_number, calendar_offset, spell_word)


# ---------------------------------------------------------------- math: a worked solution with one slip

NAMES = ("Ana", "Ben", "Carla", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jon", "Kemi", "Leo", "Maya",
         "Noah", "Omar", "Priya", "Rosa", "Sam", "Tara", "Yuki")
ITEMS = ("apples", "stickers", "marbles", "books", "coins", "pencils", "cards", "shells", "stamps", "beads")


def sized(rng, level):
    """Operands by difficulty: easy two digits and one, medium two and two, hard three and two or three."""
    low, high = level_pick(level, ((12, 89), (3, 9)), ((12, 89), (12, 89)), ((105, 899), (15, 499)))
    return rng.randint(*low), rng.randint(*high)


def dropped_carry(a: int, b: int) -> int:
    """a + b added column by column with every carry forgotten."""
    total, place = 0, 1
    while a or b:
        total += ((a % 10 + b % 10) % 10) * place
        a, b, place = a // 10, b // 10, place * 10
    return total


def smaller_from_larger(a: int, b: int) -> int:
    """a - b where each column subtracts the smaller digit from the larger (the classic borrow slip)."""
    total, place = 0, 1
    while a or b:
        total += abs(a % 10 - b % 10) * place
        a, b, place = a // 10, b // 10, place * 10
    return total


def add_items(rng, level):
    a, b = sized(rng, level)
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    wrong = dropped_carry(a, b)
    if wrong == a + b:
        return None

    def solve(total):
        return f"{a} + {b} = {total}. {name} has {total} {item}."
    return f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?", solve(a + b), \
        solve(wrong)


def take_away(rng, level):
    a, b = sorted(sized(rng, level), reverse=True)
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    wrong = smaller_from_larger(a, b)
    if wrong == a - b:
        return None

    def solve(left):
        return f"{a} - {b} = {left}. {name} has {left} {item} left."
    return f"{name} had {a} {item} and gave away {b}. How many are left?", solve(a - b), solve(wrong)


def equal_groups(rng, level):
    per, groups = level_pick(level, (rng.randint(3, 9), rng.randint(3, 9)), (rng.randint(11, 25),
                             rng.randint(4, 9)), (rng.randint(12, 48), rng.randint(11, 19)))
    item = rng.choice(ITEMS)
    slip = rng.choice(("one group short", "one digit off"))
    wrong = per * (groups - 1) if slip == "one group short" else per * groups + 10

    def solve(total):
        return f"{groups} x {per} = {total}, so there are {total} {item}."
    return f"Each box holds {per} {item}. How many {item} are in {groups} boxes?", solve(per * groups), solve(wrong)


def shopping_change(rng, level):
    count, price = rng.randint(2, 6), level_pick(level, rng.randint(2, 5), rng.randint(3, 9), rng.randint(6, 15))
    extra = rng.randint(1, 9)
    paid = next(p for p in (10, 20, 50, 100, 200) if p > count * price + extra)
    name = rng.choice(NAMES)

    def solve(first, op):  # op: the operation used in the first step
        cost = first + extra
        return f"{count} {op} {price} = {first}; {first} + {extra} = {cost}; {paid} - {cost} = {paid - cost}. " \
            f"The change is ${paid - cost}."
    if count + price == count * price:
        return None
    prompt = (f"{name} buys {count} notebooks at ${price} each and a pen for ${extra}, paying with ${paid}. "
              f"How much change does {name} get?")
    return prompt, solve(count * price, "x"), solve(count + price, "+")


def temperature_change(rng, level):
    start = -rng.randint(*level_pick(level, (2, 9), (5, 20), (11, 40)))
    rise = rng.randint(*level_pick(level, (3, 15), (6, 30), (12, 60)))
    if start + rise == 0:
        return None
    slip = -(start + rise)  # the sign of the result flipped

    def solve(end):
        return f"{start} + {rise} = {end}. The temperature is {end} degrees."
    return f"It is {start} degrees and the temperature rises by {rise} degrees. What is the new temperature?", \
        solve(start + rise), solve(slip)


def count_inclusive(rng, level):
    low = rng.randint(*level_pick(level, (1, 20), (10, 90), (100, 500)))
    high = low + rng.randint(*level_pick(level, (5, 20), (20, 80), (50, 400)))

    def solve(n, plus_one):
        steps = f"{high} - {low} + 1 = {n}" if plus_one else f"{high} - {low} = {n}"
        return f"{steps}. There are {n} whole numbers."
    return f"How many whole numbers are there from {low} to {high}, inclusive?", solve(high - low + 1, True), \
        solve(high - low, False)


def fence_posts(rng, level):
    gap = rng.choice(level_pick(level, (2, 5, 10), (3, 4, 6, 8), (7, 9, 12, 15)))
    spans = rng.randint(*level_pick(level, (3, 10), (8, 25), (20, 60)))
    length = gap * spans

    def solve(posts, plus_one):
        first = f"{length} / {gap} = {spans} gaps"
        return f"{first}, so {spans} + 1 = {posts} posts." if plus_one else f"{first}, so {posts} posts."
    return f"A straight fence is {length} m long with a post every {gap} m, including both ends. How many posts?", \
        solve(spans + 1, True), solve(spans, False)


def discount_price(rng, level):
    percent = rng.choice(level_pick(level, (10, 50), (20, 25, 30, 40), (15, 35, 45, 60)))
    price = rng.randint(*level_pick(level, (2, 20), (4, 40), (10, 99))) * 20
    off = price * percent // 100
    # at 50% off, stopping at the discount would give the right price, so that slip needs another percent
    slip = "added the discount" if percent == 50 else rng.choice(("stopped at the discount", "added the discount"))

    def solve(final, op):
        return f"{percent}% of ${price} is ${off}. ${price} {op} ${off} = ${final}. The sale price is ${final}."
    wrong = solve(price + off, "+") if slip == "added the discount" else \
        f"{percent}% of ${price} is ${off}. The sale price is ${off}."
    return f"A jacket costs ${price} and is {percent}% off. What is the sale price?", solve(price - off, "-"), wrong


def average(rng, level):
    n = level_pick(level, 3, 4, 5)
    mean = rng.randint(*level_pick(level, (4, 20), (10, 60), (30, 150)))
    values = [mean + d for d in rng.sample(range(-9, 10), n - 1)]
    values.append(mean * n - sum(values))
    total = sum(values)

    def solve(count):
        return f"The sum is {total}, and {total} / {count} = {fmt(round(Decimal(total) / count, 2))}."
    if values[-1] <= 0:
        return None
    return f"What is the average of {listed(values)}?", solve(n), solve(n - 1)


def linear_equation(rng, level):
    a, x = rng.randint(2, level_pick(level, 5, 9, 12)), rng.randint(*level_pick(level, (1, 9), (2, 15), (5, 30)))
    b = rng.randint(*level_pick(level, (1, 9), (5, 40), (20, 150)))
    c = a * x + b
    # subtracting a instead of dividing by it is only a slip when the result changes
    slip = rng.choice(("sign", "operation")) if c - b - a != x else "sign"

    def solve(rhs, value, op):
        return f"{a}x = {c} {op} {b} = {rhs}, so x = {rhs} / {a} = {fmt(value)}."
    if slip == "sign":
        wrong = solve(c + b, round(Decimal(c + b) / a, 2), "+")
    else:
        wrong = f"{a}x = {c} - {b} = {c - b}, so x = {c - b} - {a} = {c - b - a}."
    return f"Solve for x: {a}x + {b} = {c}.", solve(c - b, x, "-"), wrong


def rectangle(rng, level):
    w, h = sorted(numbers(rng, 2, *level_pick(level, (2, 12), (8, 40), (25, 120))))
    ask = rng.choice(("perimeter", "area"))
    right = 2 * (w + h) if ask == "perimeter" else w * h
    if w * h == 2 * (w + h):
        return None  # a 4 x 4 or 3 x 6 rectangle: area and perimeter agree, so the slip would not show
    if ask == "perimeter":
        chosen = f"Perimeter = 2 x ({w} + {h}) = 2 x {w + h} = {right} cm."
        rejected = f"Perimeter = {w} + {h} = {w + h} cm."
    else:
        chosen = f"Area = {w} x {h} = {right} square cm."
        rejected = f"Area = 2 x ({w} + {h}) = {2 * (w + h)} square cm."
    return f"A rectangle is {w} cm wide and {h} cm long. What is its {ask}?", chosen, rejected


def elapsed_time(rng, level):
    start = rng.randint(6 * 60, 12 * 60 - 1)
    start -= start % level_pick(level, 15, 5, 1)
    length = rng.randint(*level_pick(level, (70, 170), (65, 230), (61, 400)))
    end = start + length
    if (end % 60) >= (start % 60):
        return None  # only trips where the minutes must borrow an hour

    def clock(minutes):
        return f"{minutes // 60}:{minutes % 60:02d}"
    hours, minutes = divmod(length, 60)
    right = f"{clock(end)} - {clock(start)} = {hours} h {minutes} min. The trip takes {hours} h {minutes} min."
    wrong = f"{clock(end)} - {clock(start)} = {hours + 1} h {minutes} min. The trip takes {hours + 1} h " \
        f"{minutes} min."
    return f"A train leaves at {clock(start)} and arrives at {clock(end)} the same day. How long is the trip?", \
        right, wrong


MATH_TEMPLATES = (add_items, take_away, equal_groups, shopping_change, temperature_change, count_inclusive,
                  fence_posts, discount_price, average, linear_equation, rectangle, elapsed_time)

if __name__ == "__main__":
    for split in SPLITS:
        pairs = builtin_pairs(split)
        print(split, len(pairs), dict(Counter(p.source for p in pairs)))
    every = all_builtin_pairs()
    for category, n in sorted(Counter(p.category for p in every).items()):
        print(f"  {category:28s} {n}")
    for p in random.Random(0).sample(every, 6):
        print(f"\n[{p.category}] {p.prompt}\n  chosen:   {p.chosen}\n  rejected: {p.rejected}")
