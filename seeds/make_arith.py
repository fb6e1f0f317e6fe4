"""Generate the shipped arithmetic data: an unlabeled seed pool and a labeled held-out set.

What it makes
    * ``seeds/arith_pool.jsonl`` -- 2,400 multi-step arithmetic word problems as
      ``{"id", "prompt", "domain": "arith"}``. No answers: the service is label-free and must
      improve from prompts alone.
    * ``seeds/arith_audit.jsonl`` -- 60 labeled problems worded like the pool, as
      ``{"id", "prompt", "answer"}``: only for measuring the verifier's precision and recall
      (``autoimprove audit``), never for training.
    * ``autoimprove/tasks/arith_heldout/arith_heldout.jsonl`` -- 240 problems of the same kinds as
      ``{"id", "question", "answer"}``, read by the lm-eval task ``autoimprove_arith_heldout``.

Why it looks like this
    * 18 problem structures (shopping, sharing, rates, saving, inventory, ages, distances,
      recipes, ...), each 2-4 steps of +, -, x and exact integer division, with answers that are
      non-negative integers below 1000. The target is a 0.5B instruct model right roughly half
      the time (an aim, not yet measured): low enough to leave room to improve, high enough that
      its own majority answers are a usable signal.
    * Every structure has two *disjoint* wording families: one for the pool, one for the held-out
      set. Same arithmetic, different sentences, so the held-out score measures skill on the
      problem type rather than recall of training text. On top of that the pool is filtered:
      a row sharing any normalized 8-word n-gram with a held-out row is dropped, and pool rows are
      deduplicated by normalized text (``autoimprove.decontam``).
    * Deterministic: fixed seeds and ``random.Random`` instances only, so rerunning the script
      reproduces the shipped files byte for byte (the data tests check this).

Run from the repository root:  ``python seeds/make_arith.py``
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from autoimprove.decontam import ngram_index, normalize_text, word_ngrams

ROOT = Path(__file__).resolve().parent.parent
POOL_PATH = ROOT / "seeds" / "arith_pool.jsonl"
HELDOUT_PATH = ROOT / "autoimprove" / "tasks" / "arith_heldout" / "arith_heldout.jsonl"

POOL_SIZE = 2400
HELDOUT_SIZE = 240
# Separate streams: the held-out set must not change when the pool size or order changes.
POOL_SEED = 20_250_101
HELDOUT_SEED = 20_250_102
AUDIT_SEED = 20_250_103
AUDIT_SIZE = 60
AUDIT_PATH = ROOT / "seeds" / "arith_audit.jsonl"
NGRAM = 8
MAX_ANSWER = 999

# The instruction closing each prompt. Same meaning in both families ("reason, then state the
# result as 'The answer is N'", which ``autoimprove.answers.extract_answer`` reads first after
# \boxed), different wording so the two never share an 8-gram. Asking for the working matters:
# with only a format instruction the embedded 0.5B model replied "The answer is N." at once, with
# no reasoning, and got the first held-out items wrong; asked to show its working, it reasons.
POOL_INSTRUCTION = (
    'Think it through step by step, then finish with "The answer is X", where X is a whole number.'
)
HELDOUT_INSTRUCTION = (
    'Reason carefully and show your working; on the last line, write "The answer is" followed by'
    " the number."
)

Slots = dict[str, str | int]

NAMES = (
    "Ana", "Ben", "Carla", "Diego", "Emma", "Farid", "Grace", "Hiro", "Imani", "Jonas",
    "Keisha", "Liam", "Maya", "Nikhil", "Olivia", "Pablo", "Quinn", "Rosa", "Samir", "Tara",
    "Uma", "Victor", "Wendy", "Xavier", "Yara", "Zane", "Amara", "Bruno", "Chloe", "Dmitri",
    "Elena", "Felix", "Gita", "Hassan", "Ines", "Jamal", "Kira", "Leo", "Mei", "Noah",
    "Omar", "Priya", "Ravi", "Sofia", "Tomas", "Aiko", "Malik", "Nora", "Oscar", "Lucia",
)  # fmt: skip

SHOP_ITEMS = (
    "notebooks", "pencils", "apples", "candles", "mugs", "sandwiches", "muffins", "markers",
    "towels", "plates", "folders", "bagels", "cupcakes", "light bulbs", "magazines", "socks",
)  # fmt: skip
SHARE_ITEMS = (
    "crayons", "cookies", "marbles", "stickers", "strawberries", "trading cards", "beads",
    "seashells", "candies", "pretzels", "grapes", "buttons",
)  # fmt: skip
MACHINES = (
    ("bread oven", "loaves"), ("printer", "posters"), ("packing machine", "boxes"),
    ("bottling machine", "bottles"), ("candle machine", "candles"), ("loom", "scarves"),
    ("brick press", "bricks"), ("sewing machine", "shirts"), ("toy press", "toy cars"),
)  # fmt: skip
GOALS = (
    "bicycle", "video game", "pair of headphones", "skateboard", "guitar", "tennis racket",
    "backpack", "camera", "telescope", "scooter", "board game", "watch",
)  # fmt: skip
STORES = (
    ("bookstore", "books"), ("toy store", "puzzles"), ("hardware store", "hammers"),
    ("grocery store", "melons"), ("flower shop", "roses"), ("pet store", "fish bowls"),
    ("bakery", "pies"), ("music store", "guitar picks"), ("stationery shop", "notebooks"),
)  # fmt: skip
FOODS = ("cookies", "muffins", "pancakes", "biscuits", "cupcakes", "brownies", "waffles", "scones")
UNITS = (
    "cups of flour", "cups of sugar", "eggs", "tablespoons of butter", "cups of oats",
    "cups of milk", "spoons of honey", "cups of blueberries",
)  # fmt: skip
EVENTS = (
    "field trip", "science fair", "sports day", "museum visit", "school picnic",
    "spelling bee", "art workshop", "zoo visit",
)  # fmt: skip
PLANTS = (
    ("tomato plants", "tomatoes"), ("pepper plants", "peppers"),
    ("strawberry plants", "strawberries"), ("bean plants", "beans"),
    ("cucumber vines", "cucumbers"), ("squash plants", "squashes"), ("melon vines", "melons"),
)  # fmt: skip
BOOKS = (
    "novel", "mystery novel", "history book", "biography", "science textbook", "fantasy novel",
    "travel guide", "poetry collection",
)  # fmt: skip
JOBS = (
    "at a cafe", "at the library", "at a bookstore", "at a car wash", "at a bakery",
    "at the farmers market", "at a garden center",
)  # fmt: skip
VEHICLES = ("bus", "train", "tram", "ferry", "shuttle")
SHOWS = (
    "school play", "charity concert", "talent show", "magic show", "puppet show",
    "dance recital", "community fair",
)  # fmt: skip
FRUITS = ("apples", "cherries", "plums", "pears", "peaches", "apricots", "lemons", "figs")
CHORES = (  # (things, verb, verb in third person)
    ("fence panels", "paint", "paints"), ("floor tiles", "lay", "lays"),
    ("envelopes", "stuff", "stuffs"), ("tree saplings", "plant", "plants"),
    ("boxes", "pack", "packs"), ("chairs", "set up", "sets up"), ("cakes", "decorate", "decorates"),
)  # fmt: skip
VENUES = (
    "theater", "cinema", "concert hall", "lecture hall", "school auditorium", "playhouse",
    "community hall",
)  # fmt: skip
PACKS = (  # (container, its plural, contents)
    ("pack", "packs", "pencils"), ("box", "boxes", "crayons"), ("bag", "bags", "oranges"),
    ("carton", "cartons", "eggs"), ("bundle", "bundles", "pens"), ("box", "boxes", "markers"),
    ("pack", "packs", "batteries"), ("tube", "tubes", "tennis balls"),
    ("crate", "crates", "apples"),
)  # fmt: skip
TIMES = {2: "twice", 3: "three times", 4: "four times"}


# ---------------------------------------------------------------------------------------------
# Problem structures. Each `_make_*` draws numbers, checks they give a clean integer answer and
# returns the template slots (including "answer"), or None to ask for a redraw. Rejection keeps
# each generator short and obviously correct, at the cost of a few wasted draws.
# ---------------------------------------------------------------------------------------------


def _people(rng: random.Random, k: int = 1) -> Slots:
    picked = rng.sample(NAMES, k)
    keys = ("name", "name2", "name3")
    return dict(zip(keys, picked, strict=False))


def _make_shopping(rng: random.Random) -> Slots | None:
    item1, item2 = rng.sample(SHOP_ITEMS, 2)
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    p, q = rng.randint(2, 15), rng.randint(2, 15)
    total = a * p + b * q
    bill = next(x for x in (20, 50, 100, 200, 500) if x > total)
    s: Slots = dict(item1=item1, item2=item2, a=a, b=b, p=p, q=q, bill=bill)
    return {**_people(rng), **s, "answer": bill - total}


def _make_sharing(rng: random.Random) -> Slots | None:
    boxes, per, extra = rng.randint(2, 8), rng.randint(3, 20), rng.randint(2, 30)
    total = boxes * per + extra
    divisors = [k for k in range(2, 10) if total % k == 0]
    if not divisors:
        return None
    k = rng.choice(divisors)
    s: Slots = dict(item=rng.choice(SHARE_ITEMS), boxes=boxes, per=per, extra=extra, k=k)
    return {**_people(rng), **s, "answer": total // k}


def _make_production(rng: random.Random) -> Slots | None:
    machine, product = rng.choice(MACHINES)
    r, h1, h2 = rng.randint(5, 40), rng.randint(2, 6), rng.randint(2, 6)
    d = rng.randint(2, r)
    s: Slots = dict(machine=machine, product=product, r=r, h1=h1, h2=h2, d=d)
    return {**_people(rng), **s, "answer": r * (h1 + h2) - d}


def _make_saving(rng: random.Random) -> Slots | None:
    i, s_, w = rng.randint(5, 80), rng.randint(3, 25), rng.randint(3, 12)
    total = i + s_ * w
    c = rng.randint(total // 2, total - 1)
    s: Slots = dict(goal=rng.choice(GOALS), i=i, s=s_, w=w, c=c)
    return {**_people(rng), **s, "answer": total - c}


def _make_inventory(rng: random.Random) -> Slots | None:
    store, goods = rng.choice(STORES)
    stock = rng.randint(40, 300)
    a, b = rng.randint(5, stock // 3), rng.randint(5, stock // 3)
    n, c = rng.randint(2, 8), rng.randint(6, 24)
    s: Slots = dict(store=store, goods=goods, S=stock, a=a, b=b, n=n, c=c)
    return {**_people(rng), **s, "answer": stock - a - b + n * c}


def _make_ages(rng: random.Random) -> Slots | None:
    a, k = rng.randint(4, 14), rng.randint(2, 4)
    d = rng.randint(2, k * a - 3)
    s: Slots = dict(a=a, times=TIMES[k], d=d)
    return {**_people(rng, 3), **s, "answer": a + k * a + (k * a - d)}


def _make_travel(rng: random.Random) -> Slots | None:
    v, t = 5 * rng.randint(6, 14), rng.randint(2, 5)
    k, per_day = rng.randint(2, 6), rng.randint(20, 150)
    dist = v * t + k * per_day
    s: Slots = dict(D=dist, v=v, t=t, k=k)
    return {**_people(rng), **s, "answer": per_day} if dist <= 999 else None


def _make_recipe(rng: random.Random) -> Slots | None:
    b, f, m = rng.randint(6, 24), rng.randint(2, 5), rng.randint(2, 8)
    if m * f < 4:
        return None
    h = rng.randint(2, m * f - 2)
    s: Slots = dict(food=rng.choice(FOODS), unit=rng.choice(UNITS), b=b, f=f, n=m * b, h=h)
    return {**_people(rng), **s, "answer": m * f - h}


def _make_groups(rng: random.Random) -> Slots | None:
    c, st, g = rng.randint(2, 8), rng.randint(15, 32), rng.randint(2, 8)
    absent = [t for t in range(2, 14) if (c * st - t) % g == 0]
    t = rng.choice(absent)  # never empty: 12 consecutive values cover every residue mod g <= 8
    s: Slots = dict(event=rng.choice(EVENTS), c=c, s=st, t=t, g=g)
    return {**_people(rng), **s, "answer": (c * st - t) // g}


def _make_garden(rng: random.Random) -> Slots | None:
    plant, produce = rng.choice(PLANTS)
    r, p, k = rng.randint(2, 9), rng.randint(3, 12), rng.randint(2, 9)
    e = rng.randint(2, max(2, r * p // 3))
    answer = (r * p - e) * k
    s: Slots = dict(plant=plant, produce=produce, r=r, p=p, e=e, k=k)
    return {**_people(rng), **s, "answer": answer} if 0 < answer <= MAX_ANSWER else None


def _make_reading(rng: random.Random) -> Slots | None:
    a, d = rng.randint(10, 40), rng.randint(2, 7)
    b, days = rng.randint(10, 50), rng.randint(2, 9)
    pages = a * d + b * days
    s: Slots = dict(book=rng.choice(BOOKS), P=pages, a=a, d=d, b=b)
    return {**_people(rng), **s, "answer": days} if pages <= 999 else None


def _make_wages(rng: random.Random) -> Slots | None:
    w, h, d = rng.randint(8, 20), rng.randint(2, 6), rng.randint(2, 6)
    total = w * h * d
    x = rng.randint(total // 4, total - 1)
    s: Slots = dict(job=rng.choice(JOBS), goal=rng.choice(GOALS), w=w, h=h, d=d, x=x)
    return {**_people(rng), **s, "answer": total - x}


def _make_bus(rng: random.Random) -> Slots | None:
    a = rng.randint(10, 60)
    b, c = rng.randint(2, a - 2), rng.randint(2, 30)
    if (a - b + c) % 2:
        c += 1  # half must get off at the second stop, so the count there must be even
    s: Slots = dict(vehicle=rng.choice(VEHICLES), a=a, b=b, c=c)
    return {**_people(rng), **s, "answer": (a - b + c) // 2}


def _make_tickets(rng: random.Random) -> Slots | None:
    a, c = rng.randint(5, 50), rng.randint(5, 50)
    p = rng.randint(4, 12)
    q = rng.randint(2, p - 1)
    revenue = a * p + c * q
    e = rng.randint(20, max(20, revenue // 2))
    answer = revenue - e
    s: Slots = dict(event=rng.choice(SHOWS), a=a, c=c, p=p, q=q, e=e)
    return {**_people(rng), **s, "answer": answer} if 0 < answer <= MAX_ANSWER else None


def _make_fruit(rng: random.Random) -> Slots | None:
    x, y = rng.randint(10, 60), rng.randint(3, 30)
    if (x + y) % 2:
        y += 1  # the third picker gets half of the second's count, which must be whole
    s: Slots = dict(fruit=rng.choice(FRUITS), x=x, y=y)
    return {**_people(rng, 3), **s, "answer": x + (x + y) + (x + y) // 2}


def _make_teamwork(rng: random.Random) -> Slots | None:
    unit, verb, verbs = rng.choice(CHORES)
    p, q = rng.randint(2, 12), rng.randint(2, 12)
    hours, done = rng.randint(2, 12), rng.randint(5, 40)
    total = done + hours * (p + q)
    s: Slots = dict(unit=unit, verb=verb, verbs=verbs, L=total, f=done, p=p, q=q)
    return {**_people(rng, 2), **s, "answer": hours} if total <= 999 else None


def _make_theater(rng: random.Random) -> Slots | None:
    r, st, v = rng.randint(8, 25), rng.randint(10, 30), rng.randint(2, 15)
    seats = r * st
    t = rng.randint(seats // 3, seats - v - 1)
    s: Slots = dict(venue=rng.choice(VENUES), r=r, s=st, v=v, t=t)
    return {**_people(rng), **s, "answer": seats - v - t}


def _make_bulk(rng: random.Random) -> Slots | None:
    pack, packs, items = rng.choice(PACKS)
    n, c, k = rng.randint(3, 12), rng.randint(2, 15), rng.randint(2, 9)
    x = rng.randint(1, max(1, k * c // 3))
    s: Slots = dict(pack=pack, packs=packs, items=items, n=n, c=c, M=k * n, x=x)
    return {**_people(rng), **s, "answer": k * c - x}


class Structure(NamedTuple):
    """One problem type: a slot generator and two disjoint wording families.

    A NamedTuple rather than a dataclass so the script also loads through
    ``importlib.util.spec_from_file_location`` without being registered in ``sys.modules``.
    """

    name: str
    make: Callable[[random.Random], Slots | None]
    pool: tuple[str, ...]
    heldout: tuple[str, ...]


STRUCTURES: tuple[Structure, ...] = (
    Structure(
        "shopping",
        _make_shopping,
        pool=(
            "{name} buys {a} {item1} for ${p} each and {b} {item2} for ${q} each, paying with a"
            " ${bill} bill. How much change, in dollars, does {name} get back?",
            "At the market, {name} picks up {a} {item1} that cost ${p} apiece and {b} {item2}"
            " that cost ${q} apiece. {name} hands the cashier ${bill}. How many dollars should"
            " {name} receive in change?",
        ),
        heldout=(
            "A shop charges ${p} per piece for {item1} and ${q} per piece for {item2}. {name}"
            " purchases {a} of the first and {b} of the second, handing over ${bill}. What is"
            " {name}'s change in dollars?",
            "{name} spent money on {a} {item1} priced at ${p} each plus {b} {item2} priced at"
            " ${q} each. Paying with ${bill}, how many dollars came back to {name}?",
        ),
    ),
    Structure(
        "sharing",
        _make_sharing,
        pool=(
            "{name} has {boxes} boxes of {item} with {per} {item} in each box, plus {extra} loose"
            " {item}. {name} shares all of them equally among {k} friends. How many {item} does"
            " each friend get?",
            "There are {boxes} bags holding {per} {item} each on the table, and {extra} more"
            " {item} in a bowl. {name} splits every one of them evenly between {k} children. How"
            " many {item} does each child receive?",
        ),
        heldout=(
            "{name} owns {boxes} packs containing {per} {item} apiece and also finds {extra}"
            " extra {item}. If the whole lot is divided fairly among {k} people, what number of"
            " {item} ends up with each person?",
            "A teacher named {name} brings {boxes} tins, each filled with {per} {item}, along with"
            " {extra} spare {item}. Everything is handed out in equal shares to {k} students. How"
            " many {item} is each student given?",
        ),
    ),
    Structure(
        "production",
        _make_production,
        pool=(
            "A {machine} makes {r} {product} every hour. It runs for {h1} hours in the morning"
            " and {h2} hours in the afternoon. Afterward, {d} of the {product} are found to be"
            " faulty. How many good {product} were made?",
            "{name}'s {machine} produces {r} {product} per hour. On Monday it worked {h1} hours"
            " before lunch and {h2} hours after lunch, and {d} {product} had to be thrown away."
            " How many {product} were kept?",
        ),
        heldout=(
            "Each hour, a {machine} turns out {r} {product}. After operating {h1} hours, it stops"
            " for a break and then operates another {h2} hours. Inspectors reject {d} {product}."
            " How many {product} pass inspection?",
            "The {machine} at {name}'s workshop has an output of {r} {product} an hour. It was"
            " switched on for {h1} hours, then later for {h2} more hours. If {d} {product} turned"
            " out damaged, what is the count of undamaged {product}?",
        ),
    ),
    Structure(
        "saving",
        _make_saving,
        pool=(
            "{name} has ${i} saved and puts away ${s} every week for {w} weeks. Then {name} buys"
            " a {goal} for ${c}. How many dollars does {name} have left?",
            "{name} starts with ${i} in a piggy bank. Each week for {w} weeks, {name} adds ${s}."
            " After paying ${c} for a {goal}, how much money, in dollars, remains?",
        ),
        heldout=(
            "Over {w} weeks, {name} deposits ${s} weekly into an account that already held ${i}."
            " A {goal} costing ${c} is then bought with that money. What balance, in dollars, is"
            " left in the account?",
            "A {goal} costs ${c}. {name} had ${i} at first and then saved ${s} per week during"
            " the next {w} weeks before buying it. How many dollars are left over after the"
            " purchase?",
        ),
    ),
    Structure(
        "inventory",
        _make_inventory,
        pool=(
            "A {store} has {S} {goods} in stock. It sells {a} on Monday and {b} on Tuesday. On"
            " Wednesday, a delivery brings {n} boxes with {c} {goods} in each. How many {goods}"
            " does the {store} have now?",
            "{name} manages a {store} that starts the week with {S} {goods}. Customers buy {a}"
            " {goods} one day and {b} the next. Then {n} crates arrive, each holding {c} {goods}."
            " How many {goods} are in the {store} after that?",
        ),
        heldout=(
            "At the start of the week, the shelves of a {store} hold {S} {goods}. Shoppers take"
            " home {a} of them, and later another {b}. A supplier then drops off {n} cartons of"
            " {c} {goods} apiece. What is the new number of {goods} in stock?",
            "{name}'s {store} counted {S} {goods} on Saturday morning. By evening {a} were sold,"
            " and on Sunday {b} more were sold. Monday's shipment was {n} packages containing {c}"
            " {goods} each. How many {goods} does {name} have now?",
        ),
    ),
    Structure(
        "ages",
        _make_ages,
        pool=(
            "{name} is {a} years old. {name2} is {times} as old as {name}, and {name3} is {d}"
            " years younger than {name2}. What is the sum of their three ages?",
            "{name2} is {times} as old as {name}, who is {a}. {name3} is {d} years younger than"
            " {name2}. Add up the ages of {name}, {name2} and {name3}. What is the total?",
        ),
        heldout=(
            "The age of {name} is {a}. The age of {name2} is {times} that of {name}. {name3} was"
            " born {d} years after {name2}. If you add all three ages together, what do you get?",
            "{name} has had {a} birthdays. {name2}'s age is {times} {name}'s age, while {name3}"
            " is {d} years behind {name2}. Find the combined age of the three of them.",
        ),
    ),
    Structure(
        "travel",
        _make_travel,
        pool=(
            "{name} is driving {D} miles to visit family. On the first day, {name} drives at {v}"
            " miles per hour for {t} hours. The rest of the trip is split evenly over the next {k}"
            " days. How many miles does {name} drive on each of those days?",
            "A road trip covers {D} miles in total. The group travels {v} miles an hour for {t}"
            " hours on day one, then covers the remaining distance in equal parts over {k} more"
            " days. How many miles do they cover on each of the later days?",
        ),
        heldout=(
            "The route to {name}'s cousin is {D} miles long. {name} rides for {t} hours at a"
            " steady {v} mph on day one, and divides what is left equally among the following {k}"
            " days. What distance in miles is covered on each following day?",
            "A truck driver named {name} must haul a load {D} miles. The first leg lasts {t} hours"
            " at {v} miles per hour. The leftover miles are shared equally across {k} later days."
            " How far, in miles, does {name} go per later day?",
        ),
    ),
    Structure(
        "recipe",
        _make_recipe,
        pool=(
            "A recipe for {b} {food} uses {f} {unit}. {name} wants to bake {n} {food} and already"
            " has {h} {unit}. How many more {unit} does {name} need?",
            "{name} makes {food} in batches of {b}, and each batch takes {f} {unit}. To make {n}"
            " {food}, {name} checks the pantry and finds {h} {unit}. How many {unit} must {name}"
            " buy?",
        ),
        heldout=(
            "Every batch of {b} {food} calls for {f} {unit}. For a party, {name} plans to bake"
            " exactly {n} {food}, and {h} {unit} are already in the cupboard. How many additional"
            " {unit} are required?",
            "To bake {food}, {name} follows a recipe: {f} {unit} for every {b} {food}. {name}"
            " needs {n} {food} for a bake sale but only has {h} {unit} on hand. How many {unit}"
            " are missing?",
        ),
    ),
    Structure(
        "groups",
        _make_groups,
        pool=(
            "A school has {c} classes with {s} students in each class. On the day of the {event},"
            " {t} students are absent. The students who come are put into groups of {g}. How many"
            " groups are there?",
            "For the {event}, {c} classes of {s} students each sign up, but {t} students stay"
            " home sick. The rest are split into teams of {g}. How many teams are formed?",
        ),
        heldout=(
            "There are {s} pupils in each of {c} classrooms. When the {event} happens, {t} pupils"
            " do not show up. The pupils present are arranged in groups of exactly {g}. Find the"
            " number of groups.",
            "{c} homerooms, each with {s} kids, are invited to the {event}. {t} kids miss it. If"
            " everyone who attends is placed in a team of {g}, how many teams will there be?",
        ),
    ),
    Structure(
        "garden",
        _make_garden,
        pool=(
            "{name} plants {r} rows of {plant} with {p} plants in each row. {e} of the plants"
            " die. Each plant that survives produces {k} {produce}. How many {produce} does"
            " {name} harvest?",
            "In {name}'s garden there are {r} rows of {plant}, {p} to a row. Rabbits eat {e} of"
            " the plants. If every remaining plant gives {k} {produce}, how many {produce} are"
            " picked in total?",
        ),
        heldout=(
            "A farmer named {name} sets out {plant} in {r} rows, putting {p} in every row. A frost"
            " kills {e} of them. The surviving plants yield {k} {produce} apiece. What is the total"
            " harvest of {produce}?",
            "{name}'s allotment has {p} {plant} in each of its {r} rows. After {e} plants wilt"
            " and are pulled out, every plant left bears {k} {produce}. How many {produce} are"
            " gathered altogether?",
        ),
    ),
    Structure(
        "reading",
        _make_reading,
        pool=(
            "A {book} has {P} pages. {name} reads {a} pages a day for {d} days, then speeds up to"
            " {b} pages a day. How many more days does it take {name} to finish the {book}?",
            "{name} is reading a {P}-page {book}. For the first {d} days, {name} reads {a} pages"
            " per day. After that, {name} reads {b} pages per day. How many additional days until"
            " the {book} is finished?",
        ),
        heldout=(
            "There are {P} pages in the {book} that {name} borrowed. During the first {d} days,"
            " {name} got through {a} pages daily. From then on, {name} read {b} pages daily. How"
            " many days beyond the first {d} were needed to reach the end?",
            "{name} must finish a {book} of {P} pages. Having read {a} pages on each of {d} days,"
            " {name} plans to cover the rest at {b} pages per day. How many more days will that"
            " take?",
        ),
    ),
    Structure(
        "wages",
        _make_wages,
        pool=(
            "{name} earns ${w} an hour working {job}. {name} works {h} hours a day for {d} days,"
            " then spends ${x} on a {goal}. How many dollars does {name} have left from the pay?",
            "Working {job}, {name} is paid ${w} per hour. Over {d} days {name} works {h} hours"
            " each day. After buying a {goal} for ${x}, how much of the money, in dollars, is"
            " left?",
        ),
        heldout=(
            "{name} has a job {job} that pays ${w} hourly. In one stretch, {name} puts in {h}"
            " hours on each of {d} days. If ${x} of the earnings go toward a {goal}, how many"
            " dollars remain?",
            "For {d} days in a row, {name} spends {h} hours {job} at ${w} per hour. A {goal}"
            " priced at ${x} is bought out of that pay. What amount of money, in dollars, does"
            " {name} keep?",
        ),
    ),
    Structure(
        "passengers",
        _make_bus,
        pool=(
            "A {vehicle} leaves the station with {a} passengers. At the first stop, {b} people get"
            " off and {c} people get on. At the second stop, half of the passengers get off. How"
            " many passengers are still on the {vehicle}?",
            "There are {a} riders on a {vehicle}. At one stop {b} riders leave and {c} new riders"
            " board. At the next stop, half of everyone aboard gets off. How many riders remain"
            " on the {vehicle}?",
        ),
        heldout=(
            "When a {vehicle} departs, {a} people are aboard. {b} of them step off at stop one,"
            " while {c} others climb on. Then at stop two, exactly half of those on board leave."
            " What number of people are left on the {vehicle}?",
            "{a} commuters ride a {vehicle}. {b} exit and {c} enter at the next station. At the"
            " station after that, one half of the commuters exit. How many commuters are still"
            " riding?",
        ),
    ),
    Structure(
        "tickets",
        _make_tickets,
        pool=(
            "The {event} sold {a} adult tickets at ${p} each and {c} child tickets at ${q} each."
            " The organizers spent ${e} on costs. How much profit, in dollars, did they make?",
            "For the {event}, adults paid ${p} and children paid ${q}. {a} adults and {c} children"
            " came. If it cost ${e} to put on, how many dollars of profit were made?",
        ),
        heldout=(
            "Tickets to the {event} were ${p} for grown-ups and ${q} for kids. There were {a}"
            " grown-up tickets and {c} kid tickets sold, and expenses came to ${e}. What was the"
            " profit in dollars?",
            "A {event} brought in money from {a} adults paying ${p} apiece and {c} children paying"
            " ${q} apiece. After subtracting ${e} of expenses, how many dollars did the organizers"
            " keep?",
        ),
    ),
    Structure(
        "fruit",
        _make_fruit,
        pool=(
            "{name} picked {x} {fruit}. {name2} picked {y} more {fruit} than {name}, and {name3}"
            " picked half as many as {name2}. How many {fruit} did the three of them pick"
            " altogether?",
            "At the orchard, {name} gathers {x} {fruit}, {name2} gathers {y} more than {name}, and"
            " {name3} gathers half of what {name2} gathers. What is the total number of {fruit}"
            " gathered?",
        ),
        heldout=(
            "{name2} ended up with {y} {fruit} more than {name}, who had {x}. {name3} had only"
            " half of {name2}'s amount. Together, how many {fruit} did the three friends have?",
            "On a farm visit, {name} fills a basket with {x} {fruit}. {name2}'s basket has {y}"
            " more than that, and {name3}'s basket has half as many as {name2}'s. How many {fruit}"
            " are in all three baskets?",
        ),
    ),
    Structure(
        "teamwork",
        _make_teamwork,
        pool=(
            "{name} and {name2} need to {verb} {L} {unit}. They have already finished {f}. {name}"
            " {verbs} {p} per hour and {name2} {verbs} {q} per hour. Working together, how many"
            " hours will it take them to finish the rest?",
            "There are {L} {unit} to {verb}, and {f} of them are done. If {name} can {verb} {p} an"
            " hour and {name2} can {verb} {q} an hour, how many hours do they need together to"
            " complete the job?",
        ),
        heldout=(
            "A job requires {name} and {name2} to {verb} {L} {unit} in total, of which {f} are"
            " already complete. Per hour, {name} handles {p} and {name2} handles {q}. If both work"
            " at the same time, after how many hours is the job finished?",
            "{f} out of {L} {unit} have been taken care of so far. {name} manages {p} {unit}"
            " hourly and {name2} manages {q} {unit} hourly. Side by side, how many hours will the"
            " two of them take to {verb} the remaining {unit}?",
        ),
    ),
    Structure(
        "seats",
        _make_theater,
        pool=(
            "A {venue} has {r} rows with {s} seats in each row. {v} seats are broken and cannot be"
            " used. If {t} tickets are sold for tonight's show, how many working seats stay empty?",
            "The {venue} in {name}'s town holds {r} rows of {s} seats. {v} of the seats are roped"
            " off for repairs, and {t} people bought tickets. How many usable seats are left"
            " empty?",
        ),
        heldout=(
            "Seating in the {venue} is arranged as {r} rows, each containing {s} chairs. Because"
            " {v} chairs are damaged, nobody can sit in them. With {t} tickets sold, what number"
            " of undamaged chairs will be unoccupied?",
            "{name} counts {s} seats per row across {r} rows in a {venue}. {v} seats are out of"
            " order, and {t} guests fill other seats. How many seats that work are still free?",
        ),
    ),
    Structure(
        "bulk",
        _make_bulk,
        pool=(
            "A {pack} of {n} {items} costs ${c}. {name} needs {M} {items} and has a coupon for"
            " ${x} off the total. How many dollars does {name} pay?",
            "At the store, {items} are sold only in {packs} of {n}, at ${c} per {pack}. {name}"
            " buys exactly {M} {items} and uses a ${x} discount. What is the final cost in"
            " dollars?",
        ),
        heldout=(
            "At a shop, each {pack} holds {n} {items} and is priced at ${c}. {name} wants {M}"
            " {items} in all and gets ${x} taken off at checkout. How much, in dollars, does"
            " {name} spend?",
            "{name} needs {M} {items} for a project. They come {n} to a {pack}, at ${c} a {pack}."
            " With a ${x} voucher applied, what does {name} pay in dollars?",
        ),
    ),
)


def _draw(structure: Structure, rng: random.Random, family: str) -> tuple[str, int]:
    """One problem of `structure` in `family` ("pool" or "heldout"): (question text, answer)."""
    while True:
        slots = structure.make(rng)
        if slots is not None:
            break
    answer = int(slots["answer"])
    # Checked here rather than trusted per generator: the promise to callers is one place.
    assert 0 <= answer <= MAX_ANSWER, (structure.name, slots)
    templates = structure.pool if family == "pool" else structure.heldout
    instruction = POOL_INSTRUCTION if family == "pool" else HELDOUT_INSTRUCTION
    text = rng.choice(templates).format(**slots)
    assert "{" not in text and "}" not in text, text
    return f"{text} {instruction}", answer


def build_heldout(n: int = HELDOUT_SIZE, seed: int = HELDOUT_SEED) -> list[dict[str, str]]:
    """The labeled held-out rows: structures in rotation, unique normalized questions, shuffled."""
    rng = random.Random(seed)
    seen: set[str] = set()
    items: list[tuple[str, int]] = []
    while len(items) < n:
        question, answer = _draw(STRUCTURES[len(items) % len(STRUCTURES)], rng, "heldout")
        key = normalize_text(question)
        if key not in seen:
            seen.add(key)
            items.append((question, answer))
    rng.shuffle(items)
    return [
        {"id": f"arith-heldout-{i:04d}", "question": q, "answer": str(a)}
        for i, (q, a) in enumerate(items, start=1)
    ]


def build_pool(
    heldout_questions: list[str],
    n: int = POOL_SIZE,
    seed: int = POOL_SEED,
    answers_out: dict[str, str] | None = None,
) -> tuple[list[dict[str, str]], Counter[str]]:
    """The unlabeled pool rows and a count of drafts dropped, by reason.

    Structures are taken in rotation and a dropped draft is redrawn from the same structure, so
    the pool stays balanced even if one structure happens to collide with the held-out set more.
    """
    rng = random.Random(seed)
    heldout_grams = ngram_index(heldout_questions, NGRAM)
    heldout_texts = {normalize_text(q) for q in heldout_questions}
    seen: set[str] = set()
    dropped: Counter[str] = Counter()
    prompts: list[str] = []
    while len(prompts) < n:
        structure = STRUCTURES[len(prompts) % len(STRUCTURES)]
        for _attempt in range(1000):
            prompt, answer = _draw(structure, rng, "pool")  # not shipped: the pool is unlabeled
            key = normalize_text(prompt)
            if key in heldout_texts:
                dropped["identical to held-out"] += 1
            elif any(gram in heldout_grams for gram in word_ngrams(prompt, NGRAM)):
                dropped[f"8-gram overlap ({structure.name})"] += 1
            elif key in seen:
                dropped["duplicate in pool"] += 1
            else:
                break
        else:
            raise RuntimeError(f"structure {structure.name!r} cannot produce clean pool rows")
        seen.add(key)
        prompts.append(prompt)
        if answers_out is not None:
            answers_out[prompt] = str(answer)
    rng.shuffle(prompts)
    rows = [
        {"id": f"arith-pool-{i:05d}", "prompt": p, "domain": "arith"}
        for i, p in enumerate(prompts, start=1)
    ]
    return rows, dropped


def pool_answers() -> dict[str, str]:
    """{pool prompt: its answer}, recomputed from the generator. Only for *measuring* what a
    round accepted (bench/learning.py); the service never sees it, the pool file has no answers."""
    answers: dict[str, str] = {}
    build_pool([row["question"] for row in build_heldout()], answers_out=answers)
    return answers


def build_all() -> tuple[list[dict[str, str]], list[dict[str, str]], Counter[str]]:
    """(pool rows, held-out rows, pool drop counts) exactly as the shipped files hold them."""
    heldout = build_heldout()
    pool, dropped = build_pool([row["question"] for row in heldout])
    return pool, heldout, dropped


def build_audit(
    pool_prompts: list[str],
    heldout_questions: list[str],
    n: int = AUDIT_SIZE,
    seed: int = AUDIT_SEED,
) -> list[dict[str, str]]:
    """Labeled rows worded like the pool, for measuring the verifier (`autoimprove audit`).

    The answers only ever score the cascade's verdicts; nothing trains on them. Rows are
    disjoint from the pool (no identical prompt) and share no 8-gram with the held-out set.
    """
    rng = random.Random(seed)
    pool_texts = {normalize_text(p) for p in pool_prompts}
    heldout_grams = ngram_index(heldout_questions, NGRAM)
    seen: set[str] = set()
    rows: list[dict[str, str]] = []
    while len(rows) < n:
        prompt, answer = _draw(STRUCTURES[len(rows) % len(STRUCTURES)], rng, "pool")
        key = normalize_text(prompt)
        if key in pool_texts or key in seen:
            continue
        if any(gram in heldout_grams for gram in word_ngrams(prompt, NGRAM)):
            continue
        seen.add(key)
        rows.append(
            {"id": f"arith-audit-{len(rows) + 1:03d}", "prompt": prompt, "answer": str(answer)}
        )
    return rows


def _write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    pool, heldout, dropped = build_all()
    _write_jsonl(POOL_PATH, pool)
    _write_jsonl(HELDOUT_PATH, heldout)
    audit = build_audit([r["prompt"] for r in pool], [r["question"] for r in heldout])
    _write_jsonl(AUDIT_PATH, audit)
    print(f"wrote {len(audit)} labeled audit rows to {AUDIT_PATH.relative_to(ROOT)}")
    print(f"wrote {len(pool)} pool rows to {POOL_PATH.relative_to(ROOT)}")
    print(f"wrote {len(heldout)} held-out rows to {HELDOUT_PATH.relative_to(ROOT)}")
    for reason, count in sorted(dropped.items()):
        print(f"  dropped pool drafts: {count:5d}  {reason}")


if __name__ == "__main__":
    main()
