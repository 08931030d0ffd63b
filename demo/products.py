"""The demo's categories and their product makers: title, attributes, search term, shelf price.

Each category (``CATEGORIES``) names a maker that invents one product of its kind from word lists
(records, books, kitchen and bath goods, coffee, cheese, tea, wine, sports gear, skincare, board
games, audio, plants) and the price range its shelf prices stay in.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from demo.words import ADJECTIVES, COLOURS, FIRST_NAMES, LAST_NAMES, NOUNS, PLACES


def _person(rnd: random.Random) -> str:
    return f"{rnd.choice(FIRST_NAMES)} {rnd.choice(LAST_NAMES)}"


# Each maker returns (title, attributes, search term, price) for one item of its category. The
# price is a typical shelf price in EUR for that product and size; it varies by up to about 25%
# around that (Category.spread) unless the product comes in sizes (weights, pack or pot sizes),
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
    title = rnd.choice(
        (f"{rnd.choice(ADJECTIVES)} {rnd.choice(NOUNS)}", f"{rnd.choice(NOUNS)} Sessions")
    )
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
    band = f"The {rnd.choice(ADJECTIVES)} {rnd.choice(_BANDS)}"
    return _record(rnd, band, f"{rnd.choice(ADJECTIVES)} {rnd.choice(NOUNS)}")


def _book(rnd: random.Random, patterns: tuple[str, ...]) -> Made:
    author = _person(rnd)
    title = rnd.choice(patterns).format(
        adj=rnd.choice(ADJECTIVES),
        noun=rnd.choice(NOUNS),
        place=rnd.choice(PLACES),
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
        attributes["colour"] = rnd.choice(COLOURS)
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
    name = f"{rnd.choice(ADJECTIVES)} " + rnd.choice(
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
class Category:
    """A catalogue category: its path, shelf-price range and product maker."""

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
    Category("Music/Jazz", (8.0, 50.0), _jazz),
    Category("Music/Classical", (8.0, 50.0), _classical),
    Category("Books/Crime", (8.0, 35.0), _crime),
    Category("Books/Thriller", (8.0, 35.0), _thriller),
    Category("Grocery/Coffee", (5.0, 40.0), _coffee, consumable=True, spread=0.0),
    Category("Home/Kitchen", (10.0, 160.0), _kitchen),
    Category("Wine/Red", (8.0, 30.0), _wine),
    Category("Grocery/Cheese", (2.0, 15.0), _cheese, consumable=True, spread=0.0),
    Category("Sports/Running", (10.0, 330.0), _running),
    Category("Sports/Outdoor", (12.0, 330.0), _outdoor),
    Category("Beauty/Skincare", (3.0, 40.0), _skincare),
    Category("Home/Bath", (6.0, 75.0), _bath),
    Category("Toys/Board Games", (10.0, 60.0), _board_game),
    Category("Books/Children", (5.0, 22.0), _children),
    Category("Music/Rock", (8.0, 50.0), _rock),
    Category("Electronics/Audio", (60.0, 400.0), _audio),
    Category("Garden/Plants", (4.0, 70.0), _plants, spread=0.0),
    Category("Grocery/Tea", (3.0, 25.0), _tea, consumable=True, spread=0.0),
    Category("Books/Biography", (8.0, 35.0), _biography),
)
