"""`molmo-eval data show`: the contact sheet keeps what it shows readable.

Checked on the rendered pixels and the laid-out text of real sheets of the embedded world: inside a
ground-truth mask the object keeps its own colour (the mask is outlined, not tinted), and no caption
overlaps any image (MMBench's long captions were drawn over the image of the row above).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_erosion

from molmo_eval.commands.data import _decode_mask, sheet_figure
from molmo_eval.core import registry
from molmo_eval.data.embedded import default_data_root
from molmo_eval.data.images import load_image


def _samples(task: str, n: int) -> list:
    t = registry.get_task(task)
    return t.load(default_data_root() / t.data_dir, t.default_splits[0])[:n]


def test_a_mask_is_outlined_and_the_object_keeps_its_colour():
    sample = next(s for s in _samples("refcoco", 40) if s.target.get("mask") is not None)
    fig = sheet_figure([sample], "t")
    fig.canvas.draw()
    shown = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)
    (ax,) = [a for a in fig.axes if a.get_label() == sample.uid]
    img = load_image(sample.image, decode=True).pixels.astype(int)
    h, w = img.shape[:2]
    inside = binary_erosion(_decode_mask(sample.target["mask"], h, w).astype(bool), iterations=3)
    ys, xs = np.nonzero(inside)
    assert len(ys) > 20
    pick = np.linspace(0, len(ys) - 1, 40).astype(int)
    disp = ax.transData.transform(np.c_[xs[pick] + 0.5, ys[pick] + 0.5])  # pixel centres, display coords
    rows = (shown.shape[0] - disp[:, 1]).astype(int)
    got = shown[rows, disp[:, 0].astype(int)]
    want = img[ys[pick], xs[pick]]
    assert np.abs(got - want).max() <= 3, (got[:5], want[:5])  # the image's own colour, not a tint
    # and the outline is there: along the mask's border the sheet differs from the image
    border = _decode_mask(sample.target["mask"], h, w).astype(bool) & ~binary_erosion(
        _decode_mask(sample.target["mask"], h, w).astype(bool))
    by, bx = np.nonzero(border)
    disp = ax.transData.transform(np.c_[bx + 0.5, by + 0.5])
    edge = shown[(shown.shape[0] - disp[:, 1]).astype(int), disp[:, 0].astype(int)]
    assert np.mean(np.abs(edge - img[by, bx]).sum(axis=1) > 60) > 0.5


@pytest.mark.parametrize("task", ["mmbench", "textvqa", "refcoco", "pointqa"])
def test_no_caption_overlaps_an_image(task):
    samples = _samples(task, 8)
    fig = sheet_figure(samples, f"{task} sheet")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    images = [a for a in fig.axes if not a.get_label().startswith("caption:")]
    captions = [a for a in fig.axes if a.get_label().startswith("caption:")]
    assert len(images) == len(captions) == len(samples)
    texts = [t for a in captions for t in a.texts] + [fig._suptitle]
    assert all(t.get_text() for t in texts)
    for t in texts:
        box = t.get_window_extent(renderer)
        for a in images:
            drawn = a.get_window_extent(renderer)  # the image as drawn (aspect applied)
            assert not box.overlaps(drawn), (task, t.get_text()[:40], a.get_label())
        assert 0 <= box.y0 and box.y1 <= fig.bbox.height  # inside the sheet
