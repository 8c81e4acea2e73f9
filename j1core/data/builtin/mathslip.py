"""Family "math" (kept from the first built-in set): a worked solution with one plausible slip (a dropped
carry or borrow, an off-by-one, a sign error, a wrong operation in one step), carried through to a wrong
answer. Each template draws an easy, medium or hard instance (or None when a draw has no clean slip).

    python -m j1core.data.builtin
"""
from __future__ import annotations

from decimal import Decimal

from j1core.data.builtin.common import fmt, listed
from j1core.data.builtin.relevance import any_level, level_pick, numbers

FAMILY = "math"

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


TEMPLATES = tuple(map(any_level, (add_items, take_away, equal_groups, shopping_change, temperature_change,
                                  count_inclusive, fence_posts, discount_price, average, linear_equation,
                                  rectangle, elapsed_time)))
HELDOUT_TEMPLATES = ("fence_posts", "average", "elapsed_time")
