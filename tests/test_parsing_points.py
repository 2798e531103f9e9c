"""Point and box parsing: every syntax of DESIGN §4, the scale always from the declared space.

Expected pixels are worked out by hand from the space definitions: percent p -> p/100 * size,
normalized v -> v * size, thousand t -> t/1000 * size, bin k -> (k + 0.5)/100 * size.
"""

from __future__ import annotations

import pytest

from molmo_eval.core.types import CoordSpace, Generation
from molmo_eval.parsing.points import (
    format_point,
    generation_box,
    generation_points,
    parse_box,
    parse_points,
    read_points,
)

P, N, K, T, B = CoordSpace.PIXELS, CoordSpace.NORMALIZED, CoordSpace.PERCENT, CoordSpace.THOUSAND, CoordSpace.BINS

POINT_CASES = [
    # Molmo percent XML
    ('<point x="45.5" y="67.0" alt="dog">dog</point>', K, (200, 100), [(91.0, 67.0)]),
    ('<points x1="10" y1="20" x2="30.5" y2="40" alt="cats">cats</points>', K, (100, 200), [(10.0, 40.0), (30.5, 80.0)]),
    ('<points x2="50" y2="50" x1="10" y1="10">two</points>', K, (100, 100), [(10.0, 10.0), (50.0, 50.0)]),
    ("<point x='1' y='2'>a</point>", K, (100, 100), [(1.0, 2.0)]),
    ('<POINT X="25" Y="75">a</POINT>', K, (40, 40), [(10.0, 30.0)]),
    ('Here: <point x="10" y="20" alt="(1, 2)">a (3, 4)</point> and <point x="90" y="90">b</point>', K, (10, 10),
     [(1.0, 2.0), (9.0, 9.0)]),
    # reference model bins -> bin centres
    ("<point> <x_45> <y_67>", B, (200, 100), [(91.0, 67.5)]),
    ("<point><x_0><y_99>", B, (100, 100), [(0.5, 99.5)]),
    ("<point> <x_0> <y_99> <point> <x_99> <y_0>", B, (100, 100), [(0.5, 99.5), (99.5, 0.5)]),
    # (x, y) text and JSON lists
    ("The dog is at (12, 30.5) and (7, 8).", P, None, [(12.0, 30.5), (7.0, 8.0)]),
    ("[[0.1, 0.2], [0.5, 0.5]]", N, (640, 480), [(64.0, 96.0), (320.0, 240.0)]),
    ('{"point_2d": [500, 250], "label": "cup"}', T, (640, 480), [(320.0, 120.0)]),
    ("(-5, 1e1)", P, None, [(-5.0, 10.0)]),
    ("[3,4]", P, None, [(3.0, 4.0)]),
    # the same syntax means different pixels in different declared spaces: never guessed
    ("(0.5, 0.5)", P, (640, 480), [(0.5, 0.5)]),
    ("(0.5, 0.5)", N, (640, 480), [(320.0, 240.0)]),
    ("(50, 50)", K, (640, 480), [(320.0, 240.0)]),
    ("(50, 50)", T, (640, 480), [(32.0, 24.0)]),
    ('<point x="0.5" y="0.25">a</point>', N, (640, 480), [(320.0, 120.0)]),
    ("<point> <x_45> <y_67>", K, (200, 100), [(90.0, 67.0)]),  # bin syntax, percent scale as declared
    # nothing pointed at
    ("There are no dogs in this image.", K, (10, 10), []),
    ("", K, (10, 10), []),
    ("[1, 2, 3, 4]", P, None, []),  # four numbers are a box, not a point
    ("Options (A, B)", P, None, []),
]


@pytest.mark.parametrize("text,space,size,expected", POINT_CASES)
def test_parse_points(text, space, size, expected):
    got = parse_points(text, space, size)
    assert got is not None
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g == pytest.approx(e, abs=1e-9)


MALFORMED = [
    '<point x="abc" y="3">a</point>',
    '<point y="3">a</point>',
    '<point alt="dog">dog</point>',
    '<points x1="1" y1="2" x2="3">a</points>',
    '<points alt="nothing">a</points>',
    "<point> <x_4> <x_5>",
    "<point> <x_4>",
    "<point> <y_4> <x_5>",
    "<point>",
    '<point x="45.5%" y="3">a</point>',
]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_point_markup_is_unparseable(text):
    assert read_points(text) is None
    assert parse_points(text, K, (10, 10)) is None


def test_scaled_space_needs_the_image_size():
    with pytest.raises(ValueError):
        parse_points("(50, 50)", K, None)


BOX_CASES = [
    ("[10, 20, 30, 40]", P, None, (10.0, 20.0, 30.0, 40.0)),
    ('{"bbox_2d": [100, 200, 300, 400], "label": "cat"}', T, (500, 1000), (50.0, 200.0, 150.0, 400.0)),
    ("(100,200),(300,400)", T, (500, 1000), (50.0, 200.0, 150.0, 400.0)),
    ('<box x1="10" y1="20" x2="30" y2="40">cat</box>', K, (200, 100), (20.0, 20.0, 60.0, 40.0)),
    ("<x_10> <y_20> <x_30> <y_40>", B, (100, 200), (10.5, 41.0, 30.5, 81.0)),
    ("[0.1, 0.2, 0.3, 0.4]", N, (10, 100), (1.0, 20.0, 3.0, 40.0)),
    ("[30, 40, 10, 20]", P, None, (30.0, 40.0, 10.0, 20.0)),  # reversed corners are kept (IoU 0 later)
    ("first [1,2,3,4] then [5,6,7,8]", P, None, (1.0, 2.0, 3.0, 4.0)),
    ("(1, 2), (3, 4) and later [5, 6, 7, 8]", P, None, (1.0, 2.0, 3.0, 4.0)),
]


@pytest.mark.parametrize("text,space,size,expected", BOX_CASES)
def test_parse_box(text, space, size, expected):
    assert parse_box(text, space, size) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("text", ["no box here", "[1, 2, 3]", '<box x1="1" y1="2">a</box>', "<x_1> <y_2>",
                                  "<y_1> <x_2> <y_3> <x_4>"])
def test_no_box(text):
    assert parse_box(text, P, (10, 10)) is None


def test_native_structured_points_and_boxes_take_precedence():
    gen = Generation(text="(1, 2) [1, 2, 3, 4]", points=((50.0, 50.0),), box=(0.0, 0.0, 50.0, 100.0))
    assert generation_points(gen, K, (10, 20))[0] == pytest.approx((5.0, 10.0))
    assert generation_box(gen, K, (10, 20)) == pytest.approx((0.0, 0.0, 5.0, 20.0))
    plain = Generation(text="(1, 2) [1, 2, 3, 4]")
    assert generation_points(plain, P, None) == ((1.0, 2.0),)
    assert generation_box(plain, P, None) == (1.0, 2.0, 3.0, 4.0)


@pytest.mark.parametrize("space,expected", [
    (K, (64.0, 48.0)), (P, (64.0, 48.0)), (N, (64.0, 48.0)), (T, (64.0, 48.0)),
    (B, (67.2, 50.4)),  # bin 10 of 100 -> its centre 10.5% of 640 x 480
])
def test_format_point_round_trips_through_the_parser(space, expected):
    size = (640, 480)
    text = format_point((64.0, 48.0), space, size)
    got = parse_points(text, space, size)
    assert got is not None and len(got) == 1
    assert got[0] == pytest.approx(expected, abs=1e-9)


def test_format_point_writes_each_family_in_its_own_syntax():
    size = (200, 100)
    assert format_point((91.0, 67.0), K, size).startswith('<point x="45.5" y="67.0"')
    assert format_point((91.0, 67.0), B, size) == "<point> <x_45> <y_67>"
    assert format_point((91.0, 67.0), P, size) == "(91, 67)"
