"""Family "units" (held out whole: training never sees it): problems that convert units on the way; the
rejected solution uses a wrong conversion factor (100 for 1,000, 10 for 100, 100 for 60, a side for an
area) or slips in another step, and carries it to the end. Each template is its own kind of problem, wording
and response style; final answers are checked with j1core/data/answer_check.py.

    python -m j1core.data.builtin
"""
from __future__ import annotations

from j1core.data.answer_check import is_correct
from j1core.data.builtin.common import NAMES, balance
from j1core.data.builtin.worked import (
    Ref,
    Step,
    pick_slip,
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

FAMILY = "units"


def finish(rng, prompt, steps, say, style):
    """Mostly the wrong-factor slip, sometimes another one."""
    factor = [i for i, s in enumerate(steps) if s.wrong_b is not None]
    slip = (factor[0], "factor") if factor and rng.random() < 0.7 else pick_slip(rng, steps)
    solved = solve(rng, steps, say, style, is_correct, slip)
    return None if solved is None else (prompt, *balance(rng, *solved, sep="\n"))


def rope_pieces(rng):
    piece = rng.choice((10, 20, 25, 40, 50))
    metres = rng.choice([x / 2 for x in range(2, 40) if (x * 50) % piece == 0])
    steps = [Step("the rope in centimetres", metres, "x", 100, wrong_b=10), Step("pieces", Ref(0), "/", piece)]
    prompt = f"A rope {metres:g} metres long is cut into pieces of {piece} cm. How many pieces are there?"
    return finish(rng, prompt, steps, lambda v: f"there are {v} pieces", style_steps)


def glasses(rng):
    litres, glass = rng.randint(1, 24), rng.choice((100, 125, 200, 250, 400, 500))
    steps = [Step("millilitres", litres, "x", 1000, wrong_b=100), Step("glasses", Ref(0), "/", glass)]
    drink = rng.choice(("juice", "water", "lemonade", "milk", "iced tea"))
    prompt = f"How many {glass} ml glasses can be filled from {litres} litres of {drink}? End with #### and the number."
    return finish(rng, prompt, steps, str, style_gsm)


def lap_minutes(rng):
    name, laps, secs = rng.choice(NAMES), rng.randint(3, 16), rng.choice((45, 48, 50, 54, 72, 75, 90, 96))
    steps = [Step("all the laps in seconds", laps, "x", secs), Step("minutes", Ref(0), "/", 60, wrong_b=100)]
    prompt = f"{name} swims {laps} laps and each lap takes {secs} seconds. How many minutes is that altogether?"
    return finish(rng, prompt, steps, lambda v: f"{name} swims for {v} minutes", style_prose)


def metres_per_minute(rng):
    speed = rng.choice((6, 9, 12, 15, 18, 21, 24, 27, 30, 36, 42, 48, 54, 60, 66, 72, 84, 90, 96, 120))
    steps = [Step("metres per hour", speed, "x", 1000, wrong_b=100), Step("metres per minute", Ref(0), "/", 60)]
    who = rng.choice(("a cyclist", "a runner", "a horse", "a boat", "a tram", "a skater", "a drone", "a bus"))
    prompt = f"If {who} moves at {speed} km/h, how many metres does it cover per minute? Answer in \\boxed{{}}."
    return finish(rng, prompt, steps, str, style_boxed)


def parcel_weight(rng):
    bags, grams = rng.randint(3, 24), rng.choice((150, 200, 250, 400, 500, 750, 800))
    steps = [Step("total grams", bags, "x", grams), Step("kilograms", Ref(0), "/", 1000, wrong_b=100)]
    what = rng.choice(("rice", "coffee", "sugar", "flour", "lentils"))
    prompt = f"A parcel holds {bags} bags of {what}, {grams} g each. What does the {what} weigh in kilograms?"
    return finish(rng, prompt, steps, lambda v: f"the {what} weighs {v} kg", style_bullets)


def fuel_cost(rng):
    per100, km, price = rng.choice((4, 5, 6, 7, 8, 9)), rng.choice(range(50, 901, 50)), rng.choice((1.5, 2, 2.5))
    steps = [Step("hundreds of kilometres", km, "/", 100, wrong_b=1000), Step("litres", Ref(0), "x", per100),
             Step("cost", Ref(1), "x", price)]
    prompt = (f"My car uses {per100} litres of fuel per 100 km and fuel costs ${price:g} a litre. What does a "
              f"{km} km drive cost me? Walk me through it.")
    return finish(rng, prompt, steps, lambda v: f"the drive costs ${v}", style_teacher)


def floor_tiles(rng):
    w, h = rng.randint(2, 9), rng.randint(2, 9)
    steps = [Step("floor area in square metres", w, "x", h),
             Step("tiles, 0.5 x 0.5 = 0.25 square metres each", Ref(0), "/", 0.25,
                                                                                 wrong_b=0.5)]
    prompt = f"floor is {w} m x {h} m, tiles are 50 cm x 50 cm. how many tiles do i need (no gaps, no waste)?"
    return finish(rng, prompt, steps, lambda v: f"{v} tiles", style_arrows)


def download_time(rng):
    gigabytes, speed = rng.randint(2, 12), rng.choice((20, 25, 40, 50, 80, 100, 125))
    steps = [Step("megabytes", gigabytes, "x", 1000, wrong_b=100), Step("seconds", Ref(0), "/", speed)]
    prompt = f"File: {gigabytes} GB. Speed: {speed} MB per second (1 GB = 1,000 MB). Seconds to download?"
    return finish(rng, prompt, steps, lambda v: f"it takes {v} seconds", style_terse)


TEMPLATES = (rope_pieces, glasses, lap_minutes, metres_per_minute, parcel_weight, fuel_cost, floor_tiles,
             download_time)
HELDOUT_TEMPLATES = ()  # the whole family is held out (HELDOUT_FAMILIES in __init__.py)
