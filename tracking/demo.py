"""A seeded generator of a realistic demo shop: catalogue, customers and Segment events.

The shop has planted structure a recommender must find: customers belong to taste clusters,
each cluster lives mostly in one or two catalogue categories, popularity inside a cluster follows
Zipf's law, spend across customers follows a Pareto curve, a share of customers buy again, and
groceries get re-bought. Part of the browsing is anonymous and is linked to the customer by a
sign-in (``identify``) later in the same session, so identity stitching has work to do.

Everything is derived from ``ShopSpec.seed``: the same spec gives the same shop, event for event,
including every ``messageId``. Only numpy and the standard library are used, so the benchmarks,
the run command and the tests can all call :func:`generate_shop` directly.
"""

from __future__ import annotations

import bisect
import gc
import math
import random
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np

ORIGIN = "https://demo.example.test"
CURRENCY = "EUR"
LIBRARY_NAME, LIBRARY_VERSION = "ecrm-demo", "1"
TAX_RATE = 0.19
SHIPPING_CENTS = 495
FREE_SHIPPING_FROM_CENTS = 5000
LIST_PAGE_SIZE = 12
DAY_MS = 86_400_000
# The collector cuts sessions after 30 minutes of silence: keep a customer's sessions further apart.
MIN_SESSION_GAP_MS = 31 * 60_000
# No session starts in the window's last half hour, and a session is squeezed to fit both this
# span and what is left of the window: every event stays inside [start, start + days].
END_MARGIN_MS = 30 * 60_000
MAX_SESSION_MS = 4 * 3_600_000
MAX_EVENT_GAP_MS = 240_000

# Relative traffic by hour of day (UTC) and by weekday (Monday first): evenings and weekends peak.
HOUR_WEIGHTS = (
    0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1.0, 1.4, 1.6, 1.6, 1.8,
    2.2, 2.0, 1.7, 1.6, 1.7, 2.0, 2.6, 3.2, 3.4, 3.0, 2.0, 0.9,
)  # fmt: skip
WEEKDAY_WEIGHTS = (1.0, 0.95, 0.95, 1.0, 1.1, 1.3, 1.4)

USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.0 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
)

FIRST_NAMES = (
    "Anna", "Ben", "Clara", "David", "Elif", "Finn", "Greta", "Hugo", "Ines", "Jonas",
    "Katarina", "Luca", "Mia", "Noah", "Olga", "Paul", "Rosa", "Sofia", "Tomasz", "Ulla",
    "Viktor", "Wiebke", "Yusuf", "Zoe", "Emma", "Lars", "Marta", "Nils", "Aylin", "Jan",
    "Lea", "Matteo", "Chloé", "Pieter", "Sanne", "Mateusz", "Ingrid", "Henrik", "Lucía", "Amir",
)  # fmt: skip
LAST_NAMES = (
    "Becker", "Novak", "Rossi", "Jansen", "Schmidt", "Kowalski", "Dubois", "García", "Larsen",
    "Müller", "Weber", "Moreau", "Fischer", "Bianchi", "Nielsen", "Horvat", "Yılmaz", "Svensson",
    "Costa", "Wagner", "de Vries", "Lindqvist", "Keller", "Marchetti", "Petrov", "O'Neill",
    "Fernández", "Hoffmann", "Berg", "Schulz",
)  # fmt: skip
CITIES = (
    "Berlin", "Hamburg", "Munich", "Vienna", "Amsterdam", "Paris", "Madrid", "Milan", "Cologne",
    "Barcelona", "Zurich", "Copenhagen", "Stockholm", "Prague", "Warsaw", "Brussels", "Lisbon",
    "Rotterdam", "Lyon", "Dublin", "Oslo", "Leipzig", "Frankfurt", "Graz",
)  # fmt: skip

_ADJ = (
    "Blue", "Midnight", "Velvet", "Silver", "Quiet", "Electric", "Golden", "Late", "Northern",
    "Autumn", "Hidden", "Broken", "Silent", "Crimson", "Distant", "Winter", "Burning", "Lost",
    "Wild", "Paper",
)  # fmt: skip
_NOUN = (
    "Nocturne", "Harbour", "Avenue", "Echoes", "Lights", "Rain", "Horizon", "Garden", "River",
    "Station", "Letters", "Tides", "Mirror", "Orchard", "Signal", "Island", "Bridge", "Shadows",
    "Summer", "Hours",
)  # fmt: skip
_PLACES = (
    "Lisbon", "Bergen", "Trieste", "Ghent", "Brighton", "Salzburg", "Marseille", "Bruges",
    "Porto", "Kraków", "Venice", "Tallinn",
)  # fmt: skip
_COLOURS = ("Slate", "Sage", "Cream", "Black", "Terracotta", "Ocean Blue", "Sand", "Charcoal")


def _person(rnd: random.Random) -> str:
    return f"{rnd.choice(FIRST_NAMES)} {rnd.choice(LAST_NAMES)}"


# Each maker returns (title, attributes, search term, price) for one item of its category. The
# price is a typical shelf price in EUR for that product and size; it varies by up to about 25%
# around that (_Category.spread) unless the product comes in sizes (weights, pack or pot sizes),
# whose prices are set per product line so a bigger size always costs more.
Made = tuple[str, dict[str, Any], str, float]
Maker = Callable[[random.Random], Made]


def _line_factor(line: str) -> float:
    """A product line's price level, 0.85-1.20, stable across runs (not drawn: sizes agree)."""
    return 0.85 + 0.35 * (zlib.crc32(line.encode()) % 1000) / 999


_RECORD_PRICES = {"CD": 13.0, "Vinyl": 25.0, "2LP": 36.0}


def _record(rnd: random.Random, artist: str, title: str) -> Made:
    fmt = rnd.choice(("Vinyl", "CD", "Vinyl", "2LP"))
    year = rnd.randint(1955, 2025)
    attributes = {"artist": artist, "year": year, "format": fmt}
    return f"{title} - {artist} ({fmt})", attributes, artist, _RECORD_PRICES[fmt]


def _jazz(rnd: random.Random) -> Made:
    artist = _person(rnd) + rnd.choice(("", " Trio", " Quartet", " Quintet"))
    title = rnd.choice((f"{rnd.choice(_ADJ)} {rnd.choice(_NOUN)}", f"{rnd.choice(_NOUN)} Sessions"))
    return _record(rnd, artist, title)


def _classical(rnd: random.Random) -> Made:
    composer = rnd.choice(
        ("Bach", "Mozart", "Beethoven", "Schubert", "Brahms", "Chopin", "Debussy", "Dvořák",
         "Haydn", "Mendelssohn", "Ravel", "Sibelius")
    )  # fmt: skip
    work = rnd.choice(
        ("Piano Sonatas", "String Quartets", f"Symphony No. {rnd.randint(1, 9)}", "Nocturnes",
         "Violin Concerto", "Preludes", "Piano Trios", f"Piano Concerto No. {rnd.randint(1, 5)}")
    )  # fmt: skip
    performer = rnd.choice(
        (_person(rnd), "Berlin Chamber Orchestra", "Vienna Academy", "Nordic Symphony",
         "Leipzig Baroque Ensemble")
    )  # fmt: skip
    title, attributes, _, price = _record(rnd, performer, f"{composer}: {work}")
    attributes["composer"] = composer
    return title, attributes, composer, price


_BANDS = ("Wolves", "Satellites", "Strangers", "Foxes", "Machines", "Pilots", "Ravens", "Giants")


def _rock(rnd: random.Random) -> Made:
    band = f"The {rnd.choice(_ADJ)} {rnd.choice(_BANDS)}"
    return _record(rnd, band, f"{rnd.choice(_ADJ)} {rnd.choice(_NOUN)}")


def _book(rnd: random.Random, patterns: tuple[str, ...]) -> Made:
    author = _person(rnd)
    title = rnd.choice(patterns).format(
        adj=rnd.choice(_ADJ),
        noun=rnd.choice(_NOUN),
        place=rnd.choice(_PLACES),
        person=author,
        animal=rnd.choice(("Fox", "Bear", "Owl", "Hedgehog", "Otter", "Badger", "Whale", "Dragon")),
    )
    attributes = {
        "author": author,
        "year": rnd.randint(1990, 2026),
        "pages": rnd.randint(90, 640),
        "format": rnd.choice(("Hardcover", "Paperback", "Paperback")),
    }
    return title, attributes, author, 24.0 if attributes["format"] == "Hardcover" else 12.0


def _crime(rnd: random.Random) -> Made:
    return _book(rnd, ("Death in {place}", "The {place} Murders", "The {noun} Affair",
                       "{adj} {noun}", "A Grave in {place}"))  # fmt: skip


def _thriller(rnd: random.Random) -> Made:
    return _book(rnd, ("The {noun} Protocol", "The Last {noun}", "Zero {noun}",
                       "{adj} Signal", "Night Train to {place}"))  # fmt: skip


def _children(rnd: random.Random) -> Made:
    title, attributes, author, price = _book(
        rnd, ("The {adj} {animal}", "{animal} and the {noun}", "The {animal} Who Loved {place}")
    )
    return title, attributes, author, price * 0.65  # picture books: 8 to 16 EUR


def _biography(rnd: random.Random) -> Made:
    title, attributes, author, price = _book(rnd, ("The {adj} Years", "Letters from {place}",
                                                   "A Life in {noun}"))  # fmt: skip
    subject = _person(rnd)
    return f"{subject}: {title}", {**attributes, "subject": subject}, subject, price


def _goods(
    rnd: random.Random, brands: tuple[str, ...], things: dict[str, float], colour: bool
) -> Made:
    """A branded thing; ``things`` maps each kind of thing to its typical price in EUR."""
    brand, thing = rnd.choice(brands), rnd.choice(tuple(things))
    attributes: dict[str, Any] = {"brand": brand}
    title = f"{brand} {thing}"
    if colour:
        attributes["colour"] = rnd.choice(_COLOURS)
        title += f", {attributes['colour']}"
    return title, attributes, brand, things[thing]


def _kitchen(rnd: random.Random) -> Made:
    return _goods(
        rnd,
        ("Nordkraft", "Casa Verde", "Maison Clair", "Hearth & Co.", "Kobalt"),
        {"Dutch Oven 24 cm": 89.0, "Chef's Knife 20 cm": 59.0, "Cutting Board": 25.0,
         "Frying Pan 28 cm": 45.0, "Saucepan Set": 119.0, "Salad Bowl": 24.0,
         "Espresso Cups, set of 2": 16.0, "Teapot 1 l": 32.0, "Mixing Bowls": 29.0,
         "Pepper Mill": 27.0, "French Press 1 l": 35.0, "Coffee Grinder": 49.0},
        colour=True,
    )  # fmt: skip


def _bath(rnd: random.Random) -> Made:
    return _goods(
        rnd,
        ("Lin & Lavande", "Nordkraft", "Badehaus", "Casa Verde"),
        {"Bath Towel": 25.0, "Hand Towel Set": 22.0, "Bath Mat": 20.0, "Soap Dish": 9.0,
         "Shower Curtain": 19.0, "Bathrobe": 55.0, "Toothbrush Holder": 10.0,
         "Laundry Basket": 30.0},
        colour=True,
    )  # fmt: skip


def _coffee(rnd: random.Random) -> Made:
    roaster = rnd.choice(("Hafen Roasters", "Bergkaffee", "Café Lumière", "Torrefazione Sole"))
    origin = rnd.choice(
        ("Ethiopia Yirgacheffe", "Colombia Huila", "Brazil Santos", "Guatemala Antigua",
         "Kenya AA", "Sumatra Mandheling", "Costa Rica Tarrazú", "Espresso Blend", "Decaf Blend")
    )  # fmt: skip
    form, grams = rnd.choice(("Whole Beans", "Ground")), rnd.choice((250, 500, 1000))
    attributes = {"brand": roaster, "origin": origin, "form": form, "weight_g": grams}
    # Bigger bags cost less per gram, never less per bag: 250 g 7.65-10.80 EUR, 1 kg 24-34 EUR.
    price = {250: 9.0, 500: 16.5, 1000: 28.5}[grams] * _line_factor(f"{roaster} {origin}")
    return f"{roaster} {origin}, {form}, {grams} g", attributes, "coffee", price


def _cheese(rnd: random.Random) -> Made:
    maker = rnd.choice(("Alpenhof", "Fromagerie Martin", "Caseificio Valle", "Hoeve Kaas"))
    cheese = rnd.choice(
        ("Aged Gouda", "Comté 18 months", "Manchego", "Parmigiano Reggiano", "Brie de Meaux",
         "Gruyère", "Pecorino Romano", "Blue Stilton")
    )  # fmt: skip
    grams = rnd.choice((150, 200, 250, 400))
    per_100g = 2.6 * _line_factor(f"{maker} {cheese}")  # 2.20-3.10 EUR per 100 g
    title = f"{maker} {cheese}, {grams} g"
    return title, {"brand": maker, "weight_g": grams}, cheese.lower(), per_100g * grams / 100


def _tea(rnd: random.Random) -> Made:
    brand = rnd.choice(("Teahouse No. 7", "Leaf & Kettle", "Hill Garden Tea Co."))
    tea = rnd.choice(
        ("Darjeeling First Flush", "Earl Grey", "Sencha", "Assam Breakfast", "Rooibos Vanilla",
         "Jasmine Pearls", "Chamomile", "Gunpowder Green")
    )  # fmt: skip
    form = rnd.choice(("Loose Leaf 100 g", "20 Tea Bags", "Loose Leaf 250 g"))
    # 20 bags (about 40 g) < 100 g < 250 g of the same tea.
    size = {"20 Tea Bags": 4.5, "Loose Leaf 100 g": 8.5, "Loose Leaf 250 g": 17.0}[form]
    price = size * _line_factor(f"{brand} {tea}")
    return f"{brand} {tea}, {form}", {"brand": brand, "form": form}, "tea", price


def _wine(rnd: random.Random) -> Made:
    producer, region = rnd.choice(
        (("Château Lamarque", "Bordeaux"), ("Domaine des Trois Vallées", "Rhône"),
         ("Bodega Cerro Alto", "Rioja"), ("Tenuta San Vito", "Tuscany"),
         ("Weingut Kessler", "Pfalz"), ("Quinta do Vale", "Douro"),
         ("Bodega Los Andes", "Mendoza"), ("Domaine Roche", "Burgundy"))
    )  # fmt: skip
    grape = rnd.choice(
        ("Merlot", "Cabernet Sauvignon", "Pinot Noir", "Tempranillo", "Sangiovese", "Syrah",
         "Grenache", "Malbec", "Blaufränkisch", "Touriga Nacional")
    )  # fmt: skip
    vintage = rnd.randint(2012, 2023)
    attributes = {
        "age_restricted": True,
        "grape": grape,
        "vintage": vintage,
        "region": region,
        "volume_ml": 750,
    }
    price = 12.0 * (1 + 0.05 * (2023 - vintage))  # older vintages cost more: 12-19 EUR
    return f"{producer} {grape} {vintage}", attributes, grape.lower(), price


_SPORT_BRANDS = ("Stridewell", "Peakline", "Trailhound", "Nordvik", "Aerolite")


def _running(rnd: random.Random) -> Made:
    return _goods(
        rnd,
        tuple(f"{b} {m}" for b in _SPORT_BRANDS for m in ("Pro", "Air", "Flow", "Tempo")),
        {"Running Shoes": 130.0, "Trail Shoes": 140.0, "Running Jacket": 90.0,
         "Running Socks, 3 pack": 15.0, "Hydration Vest": 75.0, "Running Tights": 50.0,
         "Headlamp": 40.0, "Sports Watch": 249.0},
        colour=True,
    )  # fmt: skip


def _outdoor(rnd: random.Random) -> Made:
    return _goods(
        rnd,
        tuple(f"{b} {m}" for b in _SPORT_BRANDS for m in ("Summit", "Storm", "Ridge")),
        {"Hiking Backpack 30 l": 110.0, "Tent for 2": 249.0, "Sleeping Bag": 140.0,
         "Trekking Poles": 70.0, "Rain Shell": 160.0, "Camping Stove": 60.0,
         "Water Bottle 1 l": 20.0, "Hiking Boots": 160.0},
        colour=True,
    )  # fmt: skip


def _skincare(rnd: random.Random) -> Made:
    brand = rnd.choice(("Lumea", "Verdant", "Aurelle", "Nordic Dew", "Botanika"))
    ingredient = rnd.choice(
        ("Hyaluronic", "Vitamin C", "Niacinamide", "Aloe", "Rosehip", "Ceramide", "Green Tea")
    )
    prices = {"Serum 30 ml": 28.0, "Day Cream 50 ml": 25.0, "Night Cream 50 ml": 28.0,
              "Cleansing Gel 150 ml": 14.0, "Sheet Mask": 5.0, "Eye Cream 15 ml": 24.0,
              "Toner 200 ml": 16.0}  # fmt: skip
    product = rnd.choice(tuple(prices))
    attributes = {"brand": brand, "ingredient": ingredient}
    return f"{brand} {ingredient} {product}", attributes, ingredient.lower(), prices[product]


def _board_game(rnd: random.Random) -> Made:
    name = f"{rnd.choice(_ADJ)} " + rnd.choice(
        ("Kingdoms", "Harbours", "Islands", "Railways", "Dragons", "Gardens", "Empires", "Lanterns")
    )
    prices = {"Strategy Game": 45.0, "Family Game": 30.0, "Card Game": 15.0,
              "Cooperative Game": 40.0}  # fmt: skip
    kind = rnd.choice(tuple(prices))
    low = rnd.choice((1, 2, 2, 3))
    attributes = {
        "players": f"{low}-{low + rnd.choice((2, 3, 4))}",
        "min_age": rnd.choice((6, 8, 10, 12, 14)),
        "playing_time_min": rnd.choice((20, 30, 45, 60, 90)),
    }
    return f"{name}: {kind}", attributes, name.split()[-1].lower(), prices[kind]


def _audio(rnd: random.Random) -> Made:
    brand = rnd.choice(("Sonora", "Audiolux", "Klangwerk", "Tempo"))
    prices = {"Wireless Headphones": 179.0, "Bluetooth Speaker": 89.0, "Turntable": 299.0,
              "In-Ear Earbuds": 119.0, "Soundbar": 279.0, "Phono Preamp": 109.0,
              "Desktop Speakers": 199.0}  # fmt: skip
    product = rnd.choice(tuple(prices))
    model = rnd.choice(("X2", "S300", "Studio", "One", "Mini", "Pro 4"))
    title = f"{brand} {model} {product}"
    return title, {"brand": brand, "model": model}, product.lower(), prices[product]


def _plants(rnd: random.Random) -> Made:
    plant = rnd.choice(
        ("Monstera Deliciosa", "Olive Tree", "Lavender", "Fiddle Leaf Fig", "Snake Plant",
         "Rosemary", "Japanese Maple", "Hydrangea", "Calathea", "Bird of Paradise")
    )  # fmt: skip
    pot = rnd.choice((12, 17, 21, 27))
    attributes = {"pot_cm": pot, "light": rnd.choice(("shade", "half shade", "sun"))}
    # A bigger pot holds a bigger (older) plant: 12 cm 5-10 EUR, 27 cm 30-61 EUR.
    price = {12: 7.0, 17: 14.0, 21: 24.0, 27: 42.0}[pot] * _line_factor(plant) ** 2
    return f"{plant} in a {pot} cm pot", attributes, plant.lower(), price


@dataclass(frozen=True)
class _Category:
    path: str
    prices: tuple[float, float]  # EUR: every shelf price of the category lies in this range
    make: Maker
    consumable: bool = False
    spread: float = 0.15  # log-normal spread around the maker's price; 0: sized product lines

    def price(self, typical: float, z: float) -> float:
        """A price around the maker's ``typical`` one (``z``: a standard normal draw)."""
        euros = typical * math.exp(max(-0.25, min(0.25, self.spread * z)))
        return max(self.prices[0], min(self.prices[1], euros))


CATEGORIES = (
    _Category("Music/Jazz", (8.0, 50.0), _jazz),
    _Category("Music/Classical", (8.0, 50.0), _classical),
    _Category("Books/Crime", (8.0, 35.0), _crime),
    _Category("Books/Thriller", (8.0, 35.0), _thriller),
    _Category("Grocery/Coffee", (5.0, 40.0), _coffee, consumable=True, spread=0.0),
    _Category("Home/Kitchen", (10.0, 160.0), _kitchen),
    _Category("Wine/Red", (8.0, 30.0), _wine),
    _Category("Grocery/Cheese", (2.0, 15.0), _cheese, consumable=True, spread=0.0),
    _Category("Sports/Running", (10.0, 330.0), _running),
    _Category("Sports/Outdoor", (12.0, 330.0), _outdoor),
    _Category("Beauty/Skincare", (3.0, 40.0), _skincare),
    _Category("Home/Bath", (6.0, 75.0), _bath),
    _Category("Toys/Board Games", (10.0, 60.0), _board_game),
    _Category("Books/Children", (5.0, 22.0), _children),
    _Category("Music/Rock", (8.0, 50.0), _rock),
    _Category("Electronics/Audio", (60.0, 400.0), _audio),
    _Category("Garden/Plants", (4.0, 70.0), _plants, spread=0.0),
    _Category("Grocery/Tea", (3.0, 25.0), _tea, consumable=True, spread=0.0),
    _Category("Books/Biography", (8.0, 35.0), _biography),
)
# Taste cluster k draws its items mostly from theme k (two categories, the first more often);
# with more clusters than themes the themes repeat, told apart by their items.
THEMES = (
    ("Music/Jazz", "Music/Classical"),
    ("Books/Crime", "Books/Thriller"),
    ("Grocery/Coffee", "Home/Kitchen"),
    ("Wine/Red", "Grocery/Cheese"),
    ("Sports/Running", "Sports/Outdoor"),
    ("Beauty/Skincare", "Home/Bath"),
    ("Toys/Board Games", "Books/Children"),
    ("Music/Rock", "Electronics/Audio"),
    ("Garden/Plants", "Grocery/Tea"),
    ("Books/Biography", "Books/Biography"),
)
IN_THEME_SHARE = 0.9
ALWAYS_PRESENT = ("Wine/Red", "Grocery/Coffee")  # rules and re-buy tests rely on these


@dataclass(frozen=True)
class ShopSpec:
    """What demo shop to generate; every number of it follows from these and the seed."""

    seed: int = 42
    n_customers: int = 500
    n_items: int = 300
    n_clusters: int = 6  # taste clusters
    days: int = 28
    start: datetime = datetime(2026, 10, 1, tzinfo=UTC)  # first day
    sessions_per_customer: float = 6.0  # mean, over the whole period
    zipf_a: float = 1.1  # item popularity within a cluster
    in_cluster_share: float = 0.85  # share of a customer's item choices from their own cluster
    repeat_buyer_share: float = 0.3
    anonymous_share: float = 0.3  # share of sessions browsed anonymously before any sign-in

    def check(self) -> None:
        """Raise ValueError naming the first parameter that cannot make a shop."""
        if self.n_customers < 1 or self.n_items < 1 or self.n_clusters < 1 or self.days < 1:
            raise ValueError("n_customers, n_items, n_clusters and days must all be at least 1")
        if self.n_items < self.n_clusters:
            raise ValueError(
                f"n_items ({self.n_items}) must be at least n_clusters ({self.n_clusters}) "
                "so every taste cluster has an item"
            )
        if self.sessions_per_customer <= 0 or self.zipf_a < 0:
            raise ValueError("sessions_per_customer must be > 0 and zipf_a >= 0")
        for name in ("in_cluster_share", "repeat_buyer_share", "anonymous_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {getattr(self, name)}")


@dataclass
class Shop:
    """A generated shop: catalogue rows, customers and their events sorted by time."""

    spec: ShopSpec
    items: list[dict]  # catalogue rows, ready for the catalogue import
    customers: list[dict]  # {"user_id", "traits": {...}, "cluster": int}
    events: list[dict]  # Segment HTTP Tracking API events, sorted by timestamp
    # Kept out of the catalogue rows so the planted answer never reaches a model.
    item_clusters: dict[str, int] = field(default_factory=dict, repr=False)

    def cluster_of_item(self) -> dict[str, int]:
        """The planted taste cluster of each item_id."""
        return dict(self.item_clusters)

    def cluster_of_customer(self) -> dict[str, int]:
        """The planted taste cluster of each customer's user_id."""
        return {customer["user_id"]: customer["cluster"] for customer in self.customers}


def generate_shop(spec: ShopSpec | None = None) -> Shop:
    """Generate the demo shop described by ``spec`` (the default spec when None)."""
    spec = spec or ShopSpec()
    spec.check()
    start = spec.start if spec.start.tzinfo else spec.start.replace(tzinfo=UTC)
    start_ms = int(start.timestamp() * 1000)
    # Independent streams, so a change in how events are drawn never reshuffles the catalogue.
    streams = np.random.SeedSequence(spec.seed).spawn(4)
    with _gc_paused():
        catalogue = _Catalogue(spec, streams[0])
        customers, people = _make_customers(spec, start_ms, streams[1])
        simulator = _Simulator(spec, catalogue, people, start_ms, streams[2])
        simulator.run()
        events = simulator.finish(streams[3])
    return Shop(
        spec=spec,
        items=catalogue.rows,
        customers=customers,
        events=events,
        item_clusters=dict(zip(catalogue.item_ids, catalogue.cluster.tolist(), strict=True)),
    )


def iter_batches(events: list[dict], size: int = 100) -> Iterator[list[dict]]:
    """Yield consecutive chunks of ``size`` events (the last one may be shorter)."""
    if size < 1:
        raise ValueError(f"size must be at least 1, not {size}")
    for offset in range(0, len(events), size):
        yield events[offset : offset + size]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while generating."""
    # Millions of new dicts (none in a cycle) would make it rescan the growing heap over and
    # over: about a fifth of the run time at a million events.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _iso_ms(epoch_ms: list[int] | np.ndarray) -> list[str]:
    # One vectorised conversion instead of a datetime per event.
    stamps = np.asarray(epoch_ms, dtype=np.int64).astype("datetime64[ms]")
    return [text + "Z" for text in np.datetime_as_string(stamps, unit="ms").tolist()]


def _uuid4(rnd: random.Random) -> str:
    return str(uuid.UUID(int=rnd.getrandbits(128), version=4))


def _slug(text: str) -> str:
    return text.lower().replace(" & ", "-").replace("/", "-").replace(" ", "-")


def _poisson(rnd: random.Random, lam: float) -> int:
    # Knuth's method: the rates here are small, and it keeps every draw on one seeded stream.
    limit, count, product = math.exp(-lam), 0, rnd.random()
    while product > limit:
        count += 1
        product *= rnd.random()
    return count


class _Sampler:
    """Weighted draws by inverse CDF: one bisect per draw, no numpy call per event."""

    def __init__(self, items: np.ndarray, weights: np.ndarray):
        keep = weights > 0
        self.items = items[keep].tolist()
        self.cum = np.cumsum(weights[keep]).tolist()
        self.total = self.cum[-1] if self.cum else 0.0

    def draw(self, u: float) -> int:
        return self.items[min(bisect.bisect_right(self.cum, u * self.total), len(self.items) - 1)]


class _Catalogue:
    """Items with their planted cluster, popularity and the samplers sessions draw from."""

    def __init__(self, spec: ShopSpec, seed: np.random.SeedSequence):
        rng = np.random.default_rng(seed)
        rnd = random.Random(int(seed.generate_state(1, np.uint64)[0]))
        n, k = spec.n_items, spec.n_clusters
        self.cluster = rng.permutation(np.arange(n) % k)
        themes = [THEMES[c % len(THEMES)] for c in range(k)]
        noise = sorted({path for theme in themes for path in theme} | set(ALWAYS_PRESENT))
        by_path = {category.path: i for i, category in enumerate(CATEGORIES)}
        noise_idx = np.array([by_path[path] for path in noise])
        theme_idx = np.array([[by_path[a], by_path[b]] for a, b in themes])
        in_theme = rng.random(n) < IN_THEME_SHARE
        first = rng.random(n) < 0.6
        category = np.where(
            in_theme,
            np.where(first, theme_idx[self.cluster, 0], theme_idx[self.cluster, 1]),
            noise_idx[rng.integers(0, len(noise_idx), n)],
        )
        for j, path in enumerate(ALWAYS_PRESENT):
            if n > 2 * k and by_path[path] not in category:
                category[j] = by_path[path]  # a tiny catalogue still gets one of each
        self.category = category
        # Zipf popularity by rank inside each cluster; every cluster carries the same total.
        popularity = np.empty(n)
        for c in range(k):
            members = np.flatnonzero(self.cluster == c)
            ranks = rng.permutation(len(members)) + 1
            weights = ranks ** -float(spec.zipf_a)
            popularity[members] = weights / weights.sum()
        self.popularity = popularity
        in_stock = rng.random(n) >= 0.03
        active = rng.random(n) >= 0.01
        self.available = in_stock & active
        # One normal draw per item, as before: the generator's later draws stay the same.
        price_draws = rng.standard_normal(n)
        self.consumable = np.array([CATEGORIES[c].consumable for c in category])
        self._make_rows(rnd, price_draws, in_stock, active)
        slugs = {c: _slug(CATEGORIES[c].path) for c in np.unique(category).tolist()}
        self.list_paths = {c: f"/demo/category/{slug}" for c, slug in slugs.items()}
        self.list_ids = {c: f"category-{slug}" for c, slug in slugs.items()}
        self.category_list = category.tolist()
        self.available_list = self.available.tolist()
        self.consumable_list = self.consumable.tolist()
        self._build_lists(active)
        self._build_samplers(k)

    def _make_rows(
        self, rnd: random.Random, price_draws: np.ndarray, in_stock: np.ndarray, active: np.ndarray
    ) -> None:
        """Catalogue rows, and the product fields events repeat, with titles from word lists."""
        self.rows: list[dict] = []
        self.products: list[dict] = []  # the Ecommerce Spec product fields, per item
        self.price_cents: list[int] = []
        self.search_terms: list[tuple[str, str]] = []
        seen: set[str] = set()
        for i in range(len(self.category)):
            cat = CATEGORIES[int(self.category[i])]
            for _attempt in range(8):  # retry for distinct titles; big catalogues may repeat
                title, attributes, term, typical = cat.make(rnd)
                if title not in seen:
                    break
            if title in seen:
                title = f"{title} (No. {i + 1})"
            seen.add(title)
            cents = _shelf_price(cat.price(typical, float(price_draws[i])))
            item_id = f"sku-{i + 1:04d}"
            row = {
                "item_id": item_id,
                "title": title,
                "category": cat.path,
                "price": cents / 100,
                "currency": CURRENCY,
                "url": f"/demo/products/{item_id}",
                "image_url": f"/demo/img/{item_id}.svg",
                "in_stock": bool(in_stock[i]),
                "active": bool(active[i]),
                "attributes": attributes,
            }
            self.rows.append(row)
            self.products.append(
                {
                    "product_id": item_id,
                    "sku": item_id,
                    "category": cat.path,
                    "name": title,
                    "price": cents / 100,
                    "currency": CURRENCY,
                    "url": ORIGIN + row["url"],
                    "image_url": ORIGIN + row["image_url"],
                }
            )
            self.price_cents.append(cents)
            self.search_terms.append((cat.path.split("/")[1].lower(), term))
        self.item_ids = [row["item_id"] for row in self.rows]
        self.product_paths = [row["url"] for row in self.rows]

    def _build_lists(self, active: np.ndarray) -> None:
        # Category pages list active items, most popular first; out-of-stock ones still show.
        self.list_rank = [-1] * len(self.rows)
        self.category_items: dict[int, list[int]] = {}
        for c in np.unique(self.category).tolist():
            members = np.flatnonzero((self.category == c) & active)
            ordered = members[np.lexsort((members, -self.popularity[members]))].tolist()
            self.category_items[c] = ordered
            for rank, item in enumerate(ordered):
                self.list_rank[item] = rank

    def _build_samplers(self, k: int) -> None:
        # Unavailable items are seen rarely (old links) and never bought.
        everything = np.arange(len(self.rows))
        seen_weight = self.popularity * np.where(self.available, 1.0, 0.1)
        buy_weight = self.popularity * self.available
        self.view_global = _Sampler(everything, seen_weight)
        self.buy_global = _Sampler(everything, buy_weight)
        self.view_by_cluster = [
            _Sampler(everything[self.cluster == c], seen_weight[self.cluster == c])
            for c in range(k)
        ]
        self.buy_by_cluster = [
            _Sampler(everything[self.cluster == c], buy_weight[self.cluster == c]) for c in range(k)
        ]


def _shelf_price(euros: float) -> int:
    """A price in cents as a shop would print it: 12.99, 34.99, 119.00."""
    if euros >= 100:
        return int(round(euros / 5.0)) * 500
    return max(1, int(round(euros))) * 100 - 1


@dataclass
class _Person:
    """A customer as the simulation sees them (the public row is in Shop.customers)."""

    user_id: str
    traits: dict
    cluster: int
    value: float  # Pareto-distributed spend propensity
    repeat_buyer: bool
    devices: list[tuple[str, str]]  # (anonymousId, userAgent)
    session_starts: list[int]
    orders: int = 0
    bought: set[int] = field(default_factory=set)  # durable goods are not bought twice
    staples: list[int] = field(default_factory=list)  # consumables bought, to re-buy


def _make_customers(
    spec: ShopSpec, start_ms: int, seed: np.random.SeedSequence
) -> tuple[list[dict], list[_Person]]:
    rng = np.random.default_rng(seed)
    rnd = random.Random(int(seed.generate_state(1, np.uint64)[0]))
    n = spec.n_customers
    cluster = rng.integers(0, spec.n_clusters, n)
    # alpha 1.3: the heavy tail that gives the familiar "few customers, most revenue" shape.
    value = np.minimum(1.0 + rng.pareto(1.3, n), 40.0)
    repeat = rng.random(n) < spec.repeat_buyer_share
    age = np.clip(np.round(rng.normal(41, 13, n)), 18, 85).astype(int)
    city_weights = 1.0 / np.arange(1, len(CITIES) + 1) ** 0.6
    city = rng.choice(len(CITIES), n, p=city_weights / city_weights.sum())
    created = start_ms - rng.integers(DAY_MS, 900 * DAY_MS, n)
    created_iso = _iso_ms(created)
    # Engaged customers visit more and spend more; the gamma term keeps visits varied.
    activity = value**0.3 * rng.gamma(2.0, 0.5, n)
    activity *= spec.sessions_per_customer / activity.mean()
    sessions = np.maximum(rng.poisson(activity), 1)
    starts = _session_starts(spec, start_ms, int(sessions.sum()), rng)
    owner = np.repeat(np.arange(n), sessions)
    order = np.lexsort((starts, owner))
    starts = starts[order].tolist()
    bounds = np.concatenate(([0], np.cumsum(sessions))).tolist()

    rows: list[dict] = []
    people: list[_Person] = []
    for i in range(n):
        user_id = f"cust-{i + 1:05d}"
        first, last = rnd.choice(FIRST_NAMES), rnd.choice(LAST_NAMES)
        traits = {
            "email": f"{user_id}@example.test",
            "name": f"{first} {last}",
            "first_name": first,
            "last_name": last,
            "age": int(age[i]),
            "city": CITIES[int(city[i])],
            "created_at": created_iso[i],
        }
        n_devices = 1 + (rnd.random() < 0.4) + (rnd.random() < 0.15)
        devices = [(_uuid4(rnd), rnd.choice(USER_AGENTS)) for _ in range(n_devices)]
        rows.append({"user_id": user_id, "traits": traits, "cluster": int(cluster[i])})
        people.append(
            _Person(
                user_id=user_id,
                traits=traits,
                cluster=int(cluster[i]),
                value=float(value[i]),
                repeat_buyer=bool(repeat[i]),
                devices=devices,
                session_starts=starts[bounds[i] : bounds[i + 1]],
            )
        )
    return rows, people


def _session_starts(spec: ShopSpec, start_ms: int, count: int, rng: np.random.Generator):
    """Session start times (epoch ms) following the weekly and daily rhythm."""
    first_weekday = datetime.fromtimestamp(start_ms / 1000, tz=UTC).weekday()
    day_weights = np.array([WEEKDAY_WEIGHTS[(first_weekday + d) % 7] for d in range(spec.days)])
    hour_weights = np.array(HOUR_WEIGHTS)
    day = rng.choice(spec.days, count, p=day_weights / day_weights.sum())
    hour = rng.choice(24, count, p=hour_weights / hour_weights.sum())
    starts = start_ms + day * DAY_MS + hour * 3_600_000 + rng.integers(0, 3_600_000, count)
    last_start = start_ms + spec.days * DAY_MS - END_MARGIN_MS
    # Sessions drawn into the last half hour move back by half an hour.
    return np.where(starts > last_start, starts - END_MARGIN_MS, starts)


class Step(NamedTuple):
    """One planned event of a session, before it gets its time and ids."""

    kind: str  # page, track or identify
    name: str  # the track event or the page name
    payload: dict  # properties, or traits for identify
    path: str  # the page the browser is on
    title: str
    quick: bool = False  # follows the previous step within the same page load


SIGN_IN_PATH, SIGN_IN_TITLE = "/demo/signin", "Sign in"


class _Simulator:
    """Plays every customer's sessions and collects their events."""

    def __init__(
        self,
        spec: ShopSpec,
        catalogue: _Catalogue,
        people: list[_Person],
        start_ms: int,
        seed: np.random.SeedSequence,
    ):
        self.spec, self.catalogue, self.people = spec, catalogue, people
        self.rnd = random.Random(int(seed.generate_state(1, np.uint64)[0]))
        self.end = start_ms + spec.days * DAY_MS
        self.last_start = self.end - END_MARGIN_MS
        self.can_buy = catalogue.buy_global.total > 0
        self.events: list[dict] = []
        self.times: list[int] = []
        self.order_events: list[int] = []  # positions in self.events, numbered once sorted

    def run(self) -> None:
        """Simulate all sessions of all customers."""
        rnd = self.rnd
        for person in self.people:
            # Per-session conversion grows with the customer's value: the Pareto spend curve.
            # Repeat buyers who have bought once come back to buy far more often than before.
            first_order = min(0.6, 0.07 * person.value**0.8)
            next_order = min(0.75, first_order + 0.25) if person.repeat_buyer else 0.0
            previous_end = None
            for begin in person.session_starts:
                if previous_end is not None and begin < previous_end + MIN_SESSION_GAP_MS:
                    begin = previous_end + MIN_SESSION_GAP_MS + rnd.randrange(3_600_000)
                if begin > self.last_start:
                    continue
                chance = first_order if person.orders == 0 else next_order
                converting = self.can_buy and rnd.random() < chance
                previous_end = self._session(person, begin, converting)

    def _pick(self, cluster: int, buying: bool) -> int:
        """An item the customer looks at (or buys): own cluster by Zipf, else anything."""
        catalogue, rnd = self.catalogue, self.rnd
        own = rnd.random() < self.spec.in_cluster_share
        if buying:
            sampler = catalogue.buy_by_cluster[cluster] if own else catalogue.buy_global
            if sampler.total <= 0:
                sampler = catalogue.buy_global
        else:
            sampler = catalogue.view_by_cluster[cluster] if own else catalogue.view_global
        return sampler.draw(rnd.random())

    def _quantity(self, item: int) -> int:
        u = self.rnd.random()
        if self.catalogue.consumable_list[item]:
            return 1 + int(u * 3)
        return 1 if u < 0.85 else (2 if u < 0.97 else 3)

    def _cart_products(self, cart: dict[int, int]) -> list[dict]:
        products = self.catalogue.products
        return [
            {
                "product_id": products[item]["product_id"],
                "sku": products[item]["sku"],
                "name": products[item]["name"],
                "category": products[item]["category"],
                "price": products[item]["price"],
                "quantity": quantity,
            }
            for item, quantity in cart.items()
        ]

    def _cart_value(self, cart: dict[int, int]) -> int:
        return sum(self.catalogue.price_cents[item] * quantity for item, quantity in cart.items())

    def _intent(self, person: _Person, converting: bool) -> tuple[list[int], set[int]]:
        """The items a session will look at, and those among them it will buy."""
        rnd = self.rnd
        basket: set[int] = set()
        if not converting:
            count = min(9, 1 + _poisson(rnd, 2.5))
            return [self._pick(person.cluster, buying=False) for _ in range(count)], basket
        lines = min(6, 1 + _poisson(rnd, 0.35 * math.sqrt(person.value)))
        for _ in range(lines * 3):
            if len(basket) >= lines:
                break
            item = self._pick(person.cluster, buying=True)
            if item not in person.bought:
                basket.add(item)
        if not basket:  # owns everything drawn: buy anything available
            basket.add(self._pick(person.cluster, buying=True))
        browsing = min(5, _poisson(rnd, 1.5))
        views = sorted(basket) + [self._pick(person.cluster, buying=False) for _ in range(browsing)]
        rnd.shuffle(views)
        return views, basket

    def _session(self, person: _Person, begin: int, converting: bool) -> int:
        """Plan and write one session; return the time of its last event."""
        rnd, catalogue = self.rnd, self.catalogue
        steps: list[Step] = [Step("page", "Home", _page_props("/demo/", "Demo Shop"), "/demo/",
                                  "Demo Shop")]  # fmt: skip
        add = steps.append
        views, basket = self._intent(person, converting)
        cart: dict[int, int] = {}
        cart_id = f"cart-{rnd.getrandbits(64):016x}"
        casual = 0.06 if converting else 0.12  # adds later removed again, or abandoned
        via_search = rnd.random() < 0.3
        shown: tuple[int, int] | None = None  # (category, page) of the list on screen
        for position, item in enumerate(views):
            product = catalogue.products[item]
            clicked = False
            if position == 0 and via_search:
                query = rnd.choice(catalogue.search_terms[item])
                add(Step("track", "Products Searched", {"query": query}, "/demo/search",
                         f"Search: {query}"))  # fmt: skip
            elif catalogue.list_rank[item] >= 0:
                category, rank = catalogue.category_list[item], catalogue.list_rank[item]
                here = (category, rank // LIST_PAGE_SIZE)
                # Often the next product is reached from the list; otherwise by a link.
                if here != shown and (shown is None or rnd.random() < 0.6):
                    self._list_steps(add, category, here[1])
                    shown = here
                if here == shown:
                    props = {**product, "position": rank + 1}
                    add(Step("track", "Product Clicked", props, catalogue.list_paths[category],
                             product["category"]))  # fmt: skip
                    clicked = True
            product_path = catalogue.product_paths[item]
            add(Step("track", "Product Viewed", dict(product), product_path, product["name"],
                     clicked))  # fmt: skip
            if item in cart or not catalogue.available_list[item]:
                continue
            if item in basket or rnd.random() < casual:
                cart[item] = self._quantity(item)
                props = {**product, "quantity": cart[item], "cart_id": cart_id}
                add(Step("track", "Product Added", props, product_path, product["name"]))

        if converting and person.repeat_buyer:
            # Replenishment: staples bought before go into the cart again from order history.
            history = "/demo/account/orders"
            for item in person.staples[-3:]:
                if item not in cart and catalogue.available_list[item] and rnd.random() < 0.6:
                    basket.add(item)
                    cart[item] = self._quantity(item)
                    props = {**catalogue.products[item], "quantity": cart[item], "cart_id": cart_id}
                    add(Step("track", "Product Added", props, history, "Your orders"))

        if converting:
            removed = [item for item in cart if item not in basket]
        elif cart and rnd.random() < 0.15:
            removed = [rnd.choice(list(cart))]
        else:
            removed = []
        for item in removed:
            props = {**catalogue.products[item], "quantity": cart.pop(item), "cart_id": cart_id}
            add(Step("track", "Product Removed", props, "/demo/cart", "Your cart"))

        checkout_at = None
        if cart and (converting or rnd.random() < 0.5):
            value = self._cart_value(cart) / 100
            props = {"cart_id": cart_id, "products": self._cart_products(cart), "value": value,
                     "currency": CURRENCY}  # fmt: skip
            add(Step("track", "Cart Viewed", props, "/demo/cart", "Your cart"))
            if converting or rnd.random() < 0.35:
                checkout_id = f"chk-{rnd.getrandbits(64):016x}"
                checkout_at = len(steps)
                props = {"checkout_id": checkout_id, "cart_id": cart_id, "value": value,
                         "revenue": value, "currency": CURRENCY,
                         "products": self._cart_products(cart)}  # fmt: skip
                add(Step("track", "Checkout Started", props, "/demo/checkout", "Checkout"))
                if converting:
                    add(self._order_step(person, cart, checkout_id, cart_id))

        signed_in = rnd.random() >= self.spec.anonymous_share
        if not signed_in and (converting or rnd.random() < 0.5):
            if checkout_at is not None and (converting or rnd.random() < 0.6):
                # Most sign-ins happen at checkout (orders need one); some earlier, browsing.
                at = checkout_at if rnd.random() < 0.6 else rnd.randint(1, checkout_at)
            else:
                at = rnd.randint(1, len(steps))
            steps.insert(at, Step("identify", "", person.traits, SIGN_IN_PATH, SIGN_IN_TITLE))
        return self._write(person, steps, begin, signed_in)

    def _list_steps(self, add: Callable[[Step], None], category: int, page: int) -> None:
        """A category page and its Product List Viewed, showing one page of the list."""
        catalogue = self.catalogue
        name, path = CATEGORIES[category].path, catalogue.list_paths[category]
        first = page * LIST_PAGE_SIZE
        listed = catalogue.category_items[category][first : first + LIST_PAGE_SIZE]
        products = [
            {"product_id": catalogue.item_ids[item], "price": catalogue.price_cents[item] / 100,
             "position": first + j + 1}
            for j, item in enumerate(listed)
        ]  # fmt: skip
        add(Step("page", "Category", {**_page_props(path, name), "category": name}, path, name))
        props = {"list_id": catalogue.list_ids[category], "category": name, "products": products}
        add(Step("track", "Product List Viewed", props, path, name, quick=True))

    def _order_step(self, person: _Person, cart: dict[int, int], checkout_id: str, cart_id: str):
        """The Order Completed step; amounts are summed in cents so they add up exactly."""
        rnd, catalogue = self.rnd, self.catalogue
        subtotal = self._cart_value(cart)
        discount, coupon = 0, None
        # One draw whatever the prices: repricing the catalogue must not reshuffle the shop.
        u = rnd.random()
        if person.orders == 0 and u < 0.15:
            discount, coupon = int(round(subtotal * 0.10)), "WELCOME10"
        elif person.orders > 0 and subtotal >= 3000 and u < 0.2:
            discount, coupon = 500, "THANKYOU5"
        net = subtotal - discount
        tax = int(round(net * TAX_RATE))
        shipping = 0 if net >= FREE_SHIPPING_FROM_CENTS else SHIPPING_CENTS
        props: dict[str, Any] = {
            "order_id": None,  # numbered in time order once every session is played
            "checkout_id": checkout_id,
            "cart_id": cart_id,
            "total": (net + tax + shipping) / 100,
            "revenue": net / 100,  # as Segment defines it: without tax and shipping
            "subtotal": subtotal / 100,
            "tax": tax / 100,
            "shipping": shipping / 100,
            "discount": discount / 100,
            "currency": CURRENCY,
            "products": self._cart_products(cart),
        }
        if coupon:
            props["coupon"] = coupon
        person.orders += 1
        for item in cart:
            if not catalogue.consumable_list[item]:
                person.bought.add(item)
            elif item not in person.staples:
                person.staples.append(item)
        return Step("track", "Order Completed", props, "/demo/checkout/complete",
                    "Thank you for your order")  # fmt: skip

    def _write(self, person: _Person, steps: list[Step], begin: int, signed_in: bool) -> int:
        """Turn planned steps into events; return the time of the last one."""
        rnd = self.rnd
        gaps = [0]
        for step in steps[1:]:
            if step.quick:
                gaps.append(rnd.randint(300, 2500))
            else:
                gap = math.exp(rnd.gauss(10.1, 0.8))  # log-normal, median about 24 s
                gaps.append(int(min(MAX_EVENT_GAP_MS, max(1500.0, gap))))
        span, limit = sum(gaps), min(MAX_SESSION_MS, self.end - begin - 1000)
        if span > limit:
            gaps = [max(1, gap * limit // span) for gap in gaps]

        anonymous_id, user_agent = (
            person.devices[0] if rnd.random() < 0.65 else rnd.choice(person.devices)
        )
        user_id = person.user_id if signed_in else None
        moment = begin
        events, times = self.events, self.times
        for step, gap in zip(steps, gaps, strict=True):
            moment += gap
            kind = step.kind
            event: dict[str, Any] = {"type": kind, "messageId": None, "anonymousId": anonymous_id}
            if kind == "identify":
                user_id = person.user_id
            if user_id is not None:
                event["userId"] = user_id
            event["timestamp"] = None
            if kind == "track":
                event["event"] = step.name
                if step.name == "Order Completed":
                    self.order_events.append(len(events))
                event["properties"] = step.payload
            elif kind == "page":
                event["name"] = step.name
                event["properties"] = step.payload
            else:
                event["traits"] = dict(step.payload)
            event["context"] = {
                "library": {"name": LIBRARY_NAME, "version": LIBRARY_VERSION},
                "page": {"path": step.path, "url": ORIGIN + step.path, "title": step.title},
                "userAgent": user_agent,
            }
            events.append(event)
            times.append(moment)
        return moment

    def finish(self, seed: np.random.SeedSequence) -> list[dict]:
        """Sort the events by time and give them timestamps, messageIds and order ids."""
        times = np.asarray(self.times, dtype=np.int64)
        order = np.argsort(times, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        for number, position in enumerate(sorted(self.order_events, key=rank.__getitem__), 1):
            self.events[position]["properties"]["order_id"] = f"ord-{number:06d}"
        stamps = _iso_ms(times[order])
        message_ids = _uuid4_strings(np.random.default_rng(seed), len(order))
        events = [self.events[i] for i in order.tolist()]
        for event, message_id, stamp in zip(events, message_ids, stamps, strict=True):
            event["messageId"] = message_id
            event["timestamp"] = stamp
        return events


def _page_props(path: str, title: str) -> dict[str, str]:
    return {"path": path, "url": ORIGIN + path, "title": title}


def _uuid4_strings(rng: np.random.Generator, count: int) -> list[str]:
    """``count`` random UUID strings, each equal to str(uuid.UUID(int=..., version=4))."""
    # Setting the version and variant bits of all rows at once is several times faster than a
    # uuid.UUID per event, which matters at a million events.
    raw = np.frombuffer(rng.bytes(16 * count), dtype=np.uint8).reshape(count, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.tobytes().hex()
    return [
        f"{h[i:i + 8]}-{h[i + 8:i + 12]}-{h[i + 12:i + 16]}-{h[i + 16:i + 20]}-{h[i + 20:i + 32]}"
        for i in range(0, 32 * count, 32)
    ]  # fmt: skip
