"""Pictures of the report: matplotlib plots and frames with boxes drawn on them (PIL), PNGs.

Every function writes one PNG into the report's ``assets/`` folder and returns its name
relative to ``index.html``, so the report opens offline with no server. Drawing functions
return how much they drew (boxes per frame), which the HTML records next to the image: the
browser test compares those counts with the store's rows.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ASSETS = "assets"


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


class Assets:
    """The `assets/` folder: unique names, PNG files, paths relative to index.html."""

    def __init__(self, out: Path):
        self.dir = out / ASSETS
        self.dir.mkdir(parents=True, exist_ok=True)
        self._count = 0

    def clear(self) -> None:
        """Delete the images an earlier report wrote here (names `NNNN-*.png`)."""
        for path in self.dir.glob("[0-9][0-9][0-9][0-9]-*.png"):
            path.unlink()

    def name(self, stem: str) -> tuple[Path, str]:
        self._count += 1
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:60]
        file = f"{self._count:04d}-{safe}.png"
        return self.dir / file, f"{ASSETS}/{file}"

    def save_image(self, image: Image.Image, stem: str) -> str:
        path, rel = self.name(stem)
        image.save(path, compress_level=6)
        return rel

    def save_figure(self, fig, stem: str) -> str:
        path, rel = self.name(stem)
        fig.savefig(path, dpi=80, bbox_inches="tight")
        _plt().close(fig)
        return rel


# plots ---------------------------------------------------------------------------------------
def histogram(assets: Assets, stem: str, title: str, counts: np.ndarray, edges: np.ndarray,
              xlabel: str, log_x: bool = False) -> str:
    """A histogram from precomputed bin counts (streamed statistics, not raw values)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 2.4))
    widths = np.diff(edges)
    ax.bar(edges[:-1], counts, width=widths, align="edge", color="#4477aa", edgecolor="#224466")
    if log_x:
        ax.set_xscale("log")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel("count", fontsize=8)
    ax.tick_params(labelsize=7)
    return assets.save_figure(fig, stem)


def values_histogram(assets: Assets, stem: str, title: str, values: np.ndarray,
                     xlabel: str, bins: int = 30) -> str:
    finite = values[np.isfinite(values)] if len(values) else values
    if len(finite) == 0:
        finite = np.zeros(1)
    counts, edges = np.histogram(finite, bins=bins)
    return histogram(assets, stem, title, counts, edges, xlabel)


def bar_chart(assets: Assets, stem: str, title: str, labels: Sequence[str],
              values: Sequence[float]) -> str:
    """Horizontal bars, first label on top (e.g. the 50 most frequent entities)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, max(1.6, 0.16 * len(labels) + 0.6)))
    y = np.arange(len(labels))
    ax.barh(y, values, color="#66aa55")
    ax.set_yticks(y, labels=list(labels), fontsize=6)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    return assets.save_figure(fig, stem)


def similarity_strip(assets: Assets, stem: str, features: np.ndarray) -> str:
    """S3D per second: cosine of each second to the previous one and to the video's mean
    (two rows of cells, one column a second), and the seconds' self-similarity below."""
    plt = _plt()
    x = features.astype(np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    mean = x.mean(axis=0)
    mean = mean / max(float(np.linalg.norm(mean)), 1e-12)
    prev = np.r_[np.nan, np.sum(x[1:] * x[:-1], axis=1)] if len(x) else np.zeros(0)
    strip = np.vstack([prev, x @ mean])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 4.6),
                                      gridspec_kw={"height_ratios": [1, 3]})
    top.imshow(strip, aspect="auto", cmap="viridis", vmin=-1, vmax=1, interpolation="nearest")
    top.set_yticks([0, 1], labels=["prev s", "mean"], fontsize=7)
    top.set_xlabel("second", fontsize=7)
    top.tick_params(labelsize=6)
    image = bottom.imshow(x @ x.T, cmap="viridis", vmin=-1, vmax=1, interpolation="nearest")
    bottom.set_title("cosine between seconds", fontsize=8)
    bottom.tick_params(labelsize=6)
    fig.colorbar(image, ax=[top, bottom], shrink=0.8)
    return assets.save_figure(fig, stem)


# frames --------------------------------------------------------------------------------------
def colour(i: int) -> tuple[int, int, int]:
    """A distinct colour per object (golden-ratio hues, saturated)."""
    r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def _label(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str,
           fill: tuple[int, int, int]) -> None:
    x, y = xy
    left, top, right, bottom = draw.textbbox((x, y), text, font=_font())
    y = max(0.0, y - (bottom - top) - 2)
    draw.rectangle((x, y, x + right - left + 2, y + bottom - top + 2), fill=fill)
    draw.text((x + 1, y), text, fill=(0, 0, 0), font=_font())


def frame_image(frame: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).convert("RGB")


def draw_boxes(frame: np.ndarray, boxes: np.ndarray, labels: Sequence[str],
               colours: Sequence[tuple[int, int, int]] | None = None,
               width: int = 2) -> tuple[Image.Image, int]:
    """x1 y1 x2 y2 boxes (pixels of `frame`) with a label each; returns (image, boxes drawn)."""
    image = frame_image(frame)
    draw = ImageDraw.Draw(image)
    drawn = 0
    for i, box in enumerate(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)):
        c = colours[i] if colours is not None else colour(i)
        draw.rectangle(tuple(float(v) for v in box), outline=c, width=width)
        if labels and labels[i]:
            _label(draw, (float(box[0]), float(box[1])), labels[i], c)
        drawn += 1
    return image, drawn


def draw_tracks(frames: Sequence[np.ndarray], boxes: np.ndarray, mask: np.ndarray,
                names: Sequence[str], scale: float = 1.0) -> tuple[list[Image.Image], list[int]]:
    """Trajectories: T objects x F frames of boxes; object t has one colour on every frame,
    with the path of its box centres up to that frame. Returns images and boxes per frame."""
    images, counts = [], []
    centres = (boxes[..., :2] + boxes[..., 2:]) / 2 * scale if len(boxes) else boxes
    for f, frame in enumerate(frames):
        image = frame_image(frame)
        draw = ImageDraw.Draw(image)
        n = 0
        for t in range(len(boxes)):
            c = colour(t)
            seen = [tuple(centres[t, k]) for k in range(f + 1) if mask[t, k]]
            if len(seen) > 1:
                draw.line(seen, fill=c, width=2)
            if mask[t, f]:
                draw.rectangle(tuple(float(v) * scale for v in boxes[t, f]), outline=c, width=2)
                _label(draw, (float(boxes[t, f, 0]) * scale, float(boxes[t, f, 1]) * scale),
                       f"{t}:{names[t]}", c)
                n += 1
        images.append(image)
        counts.append(n)
    return images, counts
