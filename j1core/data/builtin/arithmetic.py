"""Family "arithmetic": multi-step word problems; the rejected solution slips in one step and carries the
wrong value to the end. Each template is one kind of problem in its own wording, answered in its own style
(numbered steps, prose, GSM8K's "#### N", LaTeX \\boxed{}, bullets, one terse line, a teacher's walk-through,
arrows). Final answers are checked with j1core/data/answer_check.py: the chosen one equals the right
answer, the rejected one does not.

    python -m j1core.data.builtin
"""
from __future__ import annotations

from j1core.data.answer_check import is_correct
from j1core.data.builtin.common import NAMES, balance, pick
from j1core.data.builtin.worked import (
    Ref,
    Step,
    solve,
    style_arrows,
    style_boxed,
    style_bullets,
    style_gsm,
    style_prose,
    style_steps,
    style_teacher,
    style_terse,
)

FAMILY = "arithmetic"


def finish(rng, prompt, steps, say, style):
    solved = solve(rng, steps, say, style, is_correct)
    return None if solved is None else (prompt, *balance(rng, *solved, sep="\n"))


def shop_change(rng):
    name, a, b = rng.choice(NAMES), rng.randint(2, 9), rng.randint(2, 6)
    p, q = rng.randint(2, 15), rng.randint(3, 24)
    paid = next(v for v in (20, 50, 100, 200, 500) if v > a * p + b * q)
    steps = [Step("the pens", a, "x", p), Step("the notepads", b, "x", q), Step("the total", Ref(0), "+", Ref(1)),
             Step("the change", paid, "-", Ref(2))]
    prompt = (f"{name} buys {a} pens at ${p} each and {b} notepads at ${q} each, and pays with a ${paid} bill. "
              "How much change should come back?")
    return finish(rng, prompt, steps, lambda v: f"the change is ${v}", style_steps)


def trip_distance(rng):
    v, h1, w, h2 = rng.randint(40, 95), rng.randint(2, 6), rng.randint(30, 90), rng.randint(2, 5)
    steps = [Step("the first part", v, "x", h1), Step("the second part", w, "x", h2),
             Step("the whole trip", Ref(0), "+", Ref(1))]
    prompt = (f"A bus drives at {v} km per hour for {h1} hours, then at {w} km per hour for another {h2} hours. "
              "What distance does it cover in total?")
    return finish(rng, prompt, steps, lambda d: f"the bus covers {d} km", style_prose)


def weekly_savings(rng):
    name, s, weeks = rng.choice(NAMES), rng.randint(5, 45), rng.randint(4, 20)
    spend = rng.randint(10, s * weeks - 5)
    steps = [Step("saved", s, "x", weeks), Step("left", Ref(0), "-", spend)]
    prompt = f"Every week {name} puts ${s} into a jar. After {weeks} weeks {name} spends ${spend} on a game. " \
        "How many dollars are still in the jar?\nShow your work and end with '#### <number>'."
    return finish(rng, prompt, steps, str, style_gsm)


def recipe_scale(rng):
    n, per, m = rng.randint(2, 6), rng.choice((25, 30, 40, 45, 50, 60, 75)), rng.randint(3, 15)
    flour = n * per
    steps = [Step("flour per person", flour, "/", n), Step("flour needed", Ref(0), "x", m)]
    prompt = (f"A pancake recipe for {n} people uses {flour} grams of flour. How many grams of flour are needed "
              f"for {m} people? Put the final number in \\boxed{{}}.")
    return finish(rng, prompt, steps, str, style_boxed)


def sports_teams(rng):
    classes, size, team = rng.randint(3, 8), rng.randint(18, 32), rng.choice((3, 4, 5, 6))
    total = classes * size - (classes * size) % team
    size_note = "" if total == classes * size else f" ({classes * size - total} students help as referees)"
    steps = [Step("players", total, "/", team), Step("pairs of teams for matches", Ref(0), "/", 2)]
    if (total // team) % 2:
        return None
    prompt = (f"For sports day, {total} students{size_note} are split into teams of {team}, and the teams play "
              "in pairs. How many matches can run at the same time?")
    return finish(rng, prompt, steps, lambda v: f"{v} matches", style_bullets)


def pages_left(rng):
    pages, per, days = rng.randint(180, 650), rng.randint(12, 40), rng.randint(3, 9)
    if per * days >= pages:
        return None
    steps = [Step("read", per, "x", days), Step("left", pages, "-", Ref(0))]
    item = rng.choice(("novel", "history book", "comic collection", "cookbook"))
    prompt = f"my {item} has {pages} pages. i read {per} pages a day for {days} days. pages left?"
    return finish(rng, prompt, steps, lambda v: f"{v} pages left", style_terse)


def ages(rng):
    a, b = rng.sample(NAMES, 2)
    x, gap, later = rng.randint(6, 40), rng.randint(2, 30), rng.randint(3, 15)
    steps = [Step(f"{b}'s age now", x, "+", gap), Step(f"{a}'s age in {later} years", x, "+", later),
             Step(f"{b}'s age in {later} years", Ref(0), "+", later), Step("the sum", Ref(1), "+", Ref(2))]
    prompt = (f"{a} is {x} years old, and {b} is {gap} years older than {a}. What will the sum of their ages be "
              f"in {later} years? Please explain it like a teacher would.")
    return finish(rng, prompt, steps, lambda v: f"{v} years", style_teacher)


def garden_area(rng):
    w, h, side = rng.randint(6, 30), rng.randint(6, 30), rng.randint(2, 5)
    item = pick(rng, ("pond", "shed", "patio", "sandpit"))
    steps = [Step("garden", w, "x", h), Step(item, side, "x", side), Step("grass", Ref(0), "-", Ref(1))]
    prompt = (f"Q: A garden is {w} m by {h} m. A square {item} of side {side} m sits in it and the rest is grass. "
              "How many square metres of grass are there?\nA:")
    return finish(rng, prompt, steps, lambda v: f"{v} square metres of grass", style_arrows)


def bake_sale(rng):
    item = rng.choice(("muffins", "brownies", "cookies", "scones", "cupcakes", "flapjacks"))
    trays, per, sold, price = rng.randint(3, 9), rng.randint(8, 24), rng.randint(5, 40), rng.randint(2, 5)
    if sold >= trays * per:
        return None
    steps = [Step("baked", trays, "x", per), Step("unsold", Ref(0), "-", sold), Step("value of the rest", Ref(1),
                                                                                    "x", price)]
    prompt = (f"The school baked {trays} trays of {per} {item} for a fair and sold {sold} of them. The leftover "
              f"{item} are sold the next day for ${price} each. How much money does the next day bring in?")
    return finish(rng, prompt, steps, lambda v: f"the next day brings in ${v}", style_steps)


TEMPLATES = (shop_change, trip_distance, weekly_savings, recipe_scale, sports_teams, pages_left, ages, garden_area,
             bake_sale)
HELDOUT_TEMPLATES = ("recipe_scale", "garden_area")
