"""The word lists names and titles are drawn from: people, cities, title words, colours."""

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

ADJECTIVES = (
    "Blue", "Midnight", "Velvet", "Silver", "Quiet", "Electric", "Golden", "Late", "Northern",
    "Autumn", "Hidden", "Broken", "Silent", "Crimson", "Distant", "Winter", "Burning", "Lost",
    "Wild", "Paper",
)  # fmt: skip
NOUNS = (
    "Nocturne", "Harbour", "Avenue", "Echoes", "Lights", "Rain", "Horizon", "Garden", "River",
    "Station", "Letters", "Tides", "Mirror", "Orchard", "Signal", "Island", "Bridge", "Shadows",
    "Summer", "Hours",
)  # fmt: skip
PLACES = (
    "Lisbon", "Bergen", "Trieste", "Ghent", "Brighton", "Salzburg", "Marseille", "Bruges",
    "Porto", "Kraków", "Venice", "Tallinn",
)  # fmt: skip
COLOURS = ("Slate", "Sage", "Cream", "Black", "Terracotta", "Ocean Blue", "Sand", "Charcoal")
