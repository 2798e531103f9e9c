"""What the synthetic world contains: colours, object categories, scene themes and sign words.

The scene sampler (`scene.py`) draws from these tables; the language generators (`language.py`)
name them; the benchmark writers map categories to COCO-style ids. Themes give categories
different frequencies and co-occurrences (cars with houses on streets, cups with clocks in
kitchens), which is what POPE's "popular" and "adversarial" negatives exploit.
"""

from __future__ import annotations

from dataclasses import dataclass

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (214, 40, 40),
    "green": (46, 160, 60),
    "blue": (40, 84, 214),
    "yellow": (242, 208, 36),
    "orange": (245, 136, 30),
    "purple": (136, 60, 176),
    "pink": (244, 128, 188),
    "brown": (128, 78, 38),
    "black": (28, 28, 28),
    "white": (246, 246, 246),
    "gray": (128, 128, 128),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)


@dataclass(frozen=True)
class Category:
    id: int  # COCO-style category id in instances.json
    name: str
    plural: str
    supercategory: str
    kind: str  # "person" | "thing" | "shape" | "sign"; RefCOCO testA = person, testB = the rest
    aspect: float  # width / height of the drawn object
    use: str = ""  # what it is used for (MMBench function_reasoning), "" when nothing sensible


CATEGORIES: tuple[Category, ...] = (
    Category(1, "person", "people", "person", "person", 0.5),
    Category(2, "car", "cars", "vehicle", "thing", 2.0, "driving"),
    Category(3, "tree", "trees", "plant", "thing", 0.75, "giving shade"),
    Category(4, "house", "houses", "building", "thing", 1.0, "living in"),
    Category(5, "flower", "flowers", "plant", "thing", 0.6, "decorating a room"),
    Category(6, "ball", "balls", "sports", "thing", 1.0, "playing games"),
    Category(7, "cup", "cups", "kitchen", "thing", 1.0, "drinking"),
    Category(8, "clock", "clocks", "indoor", "thing", 1.0, "telling the time"),
    Category(9, "kite", "kites", "sports", "thing", 0.8, "flying in the wind"),
    Category(10, "sign", "signs", "outdoor", "sign", 1.0, "showing information"),
    Category(11, "circle", "circles", "shape", "shape", 1.0),
    Category(12, "square", "squares", "shape", "shape", 1.0),
    Category(13, "triangle", "triangles", "shape", "shape", 1.1),
    Category(14, "star", "stars", "shape", "shape", 1.0),
    Category(15, "heart", "hearts", "shape", "shape", 1.1),
    Category(16, "diamond", "diamonds", "shape", "shape", 0.75),
    Category(17, "hexagon", "hexagons", "shape", "shape", 1.15),
)
BY_NAME: dict[str, Category] = {c.name: c for c in CATEGORIES}
CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)
SHAPES: tuple[str, ...] = tuple(c.name for c in CATEGORIES if c.kind == "shape")

_BASE = 0.15  # every category can appear in every theme, rarely
_THEME_WEIGHTS: dict[str, dict[str, float]] = {
    "street": {"person": 3.0, "car": 3.0, "house": 2.0, "tree": 1.5, "sign": 2.0, "clock": 0.5},
    "park": {"person": 2.5, "tree": 3.0, "flower": 2.5, "ball": 1.5, "kite": 1.8, "sign": 1.0},
    "kitchen": {"cup": 3.0, "clock": 2.0, "flower": 1.5, "ball": 0.8, "sign": 1.2, "person": 1.0},
    "gallery": {"circle": 2.0, "square": 2.0, "triangle": 2.0, "star": 2.0, "heart": 2.0, "diamond": 2.0,
                "hexagon": 2.0, "sign": 1.0},
}
THEMES: tuple[str, ...] = tuple(_THEME_WEIGHTS)


def theme_weights(theme: str) -> dict[str, float]:
    """Sampling weight of each category in a theme (a base weight for the theme's strangers)."""
    w = _THEME_WEIGHTS[theme]
    return {name: w.get(name, _BASE) for name in CATEGORY_NAMES}


# Words on signs: no category, colour or location words, so that reading never answers another
# question and RefCOCO+ expressions that quote a sign stay free of location words.
SIGN_WORDS: tuple[str, ...] = (
    "STOP", "OPEN", "CLOSED", "EXIT", "SALE", "CAFE", "BANK", "HOTEL", "TAXI", "BUS", "SHOP",
    "BOOKS", "PIZZA", "BAKERY", "MARKET", "SCHOOL", "GARDEN", "TEA", "MILK", "FRUIT", "FISH", "BREAD",
    "CANDY", "TOYS", "SHOES", "MUSIC", "DANCE", "ZOO", "GOLF", "POOL", "GYM", "SPA", "POST", "CITY",
    "MAIN", "NORTH", "SOUTH", "EAST", "WEST", "SLOW", "YIELD", "WAIT", "WALK", "HELLO", "WELCOME", "FOOD",
    "GAS", "ICE", "SNOW", "RAIN", "SUN", "MOON", "BEACH", "FARM", "HOME", "LAKE", "RIVER", "HILL",
    "ROAD", "LANE", "MAPLE", "OAK", "PINE", "ROSE", "LILY", "JAZZ", "ROCK", "PLAY", "GAME", "FUN",
    "JOY", "LUCKY", "HAPPY", "SMILE", "MAGIC", "ZEBRA", "TIGER", "LION", "BEAR", "WOLF", "FOX", "DUCK",
    "FROG", "CAT", "DOG", "HORSE", "APPLE", "LEMON", "MANGO", "PEACH", "PLUM", "SALT", "SOUP", "RICE",
    "TACO", "SUSHI", "JUICE", "WATER", "KING", "QUEEN", "RADIO", "PHOTO", "VIDEO", "MOVIE", "ART",
    "CLUB", "TOWN", "VILLA", "INN", "FERRY", "TRAIN", "METRO", "PIER", "DOCK", "GATE", "ZONE", "KIDS",
)
SIGN_NUMBERS: tuple[str, ...] = tuple(str(n) for n in range(1, 100))

# Words that locate (RefCOCO+ bans them in its expressions, as the real dataset's game did).
LOCATION_WORDS: frozenset[str] = frozenset({
    "left", "right", "top", "bottom", "middle", "center", "centre", "front", "behind", "back", "above",
    "below", "under", "over", "upper", "lower", "leftmost", "rightmost", "topmost", "bottommost",
    "closest", "nearest", "farthest", "near", "far", "next", "beside", "between", "corner", "side",
    "first", "second", "third", "last",
})

SKIN_TONES: tuple[tuple[int, int, int], ...] = ((238, 196, 158), (196, 146, 104), (140, 94, 60))
PANTS: tuple[tuple[int, int, int], ...] = ((44, 48, 92), (70, 70, 74), (96, 72, 48))
