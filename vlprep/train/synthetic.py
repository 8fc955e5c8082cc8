"""A learnable synthetic corpus: coloured shapes moving in named directions, and their texts.

Random-weight backbones (``init: random``) give features with no semantics, so real clips
cannot show that training learns anything. These videos carry their signal in the pixels
(colour, shape, size, direction of motion), which even random frozen features keep, and
each video has a caption and a timed transcript that name exactly those attributes: a
trained head can then retrieve held-out videos from their captions well above chance.

Every video gets a distinct attribute combination (while there are combinations left), so
two held-out videos never share a caption and retrieval has one right answer per text.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 200, 70), "blue": (50, 90, 235),
    "yellow": (235, 220, 40), "purple": (160, 60, 210), "white": (240, 240, 240),
}
SHAPES = ("circle", "square", "triangle", "cross")
SIZES = {"small": 0.14, "big": 0.26}  # radius as a fraction of the frame side
DIRECTIONS: dict[str, tuple[float, float]] = {  # unit motion in (x, y), y pointing down
    "left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0),
}
CAPTIONS = ("a {size} {colour} {shape} moves {direction}",
            "the {size} {colour} {shape} is moving {direction}",
            "a {size} {colour} {shape} going {direction}")


@dataclass(frozen=True)
class Item:
    """One synthetic video's attributes."""

    colour: str
    shape: str
    size: str
    direction: str

    @property
    def words(self) -> dict[str, str]:
        return {"colour": self.colour, "shape": self.shape, "size": self.size,
                "direction": self.direction}


def items(count: int, seed: int) -> list[Item]:
    """`count` attribute combinations: all distinct while combinations last, in random order."""
    grid = [Item(c, s, z, d) for c, s, z, d in
            itertools.product(COLOURS, SHAPES, SIZES, DIRECTIONS)]
    rng = random.Random(seed)
    out: list[Item] = []
    while len(out) < count:
        rng.shuffle(grid)
        out.extend(grid[: count - len(out)])
    return out


def _mask(shape: str, xx: np.ndarray, yy: np.ndarray, cx: float, cy: float,
          r: float) -> np.ndarray:
    dx, dy = xx - cx, yy - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return (np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85)
    if shape == "triangle":  # pointing up: wider towards the bottom
        return (dy >= -r) & (dy <= r) & (np.abs(dx) <= (dy + r) / 2)
    if shape == "cross":
        arm = r / 3
        return ((np.abs(dx) <= arm) & (np.abs(dy) <= r)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= r))
    raise ValueError(f"unknown shape {shape!r}")


def render(item: Item, frames: int, side: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 frames x side x side x 3: the shape crosses the frame in its direction on a
    dark, slightly noisy background (the noise keeps the encoder honest)."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    r = SIZES[item.size] * side
    ux, uy = DIRECTIONS[item.direction]
    travel = side / 2 - r * 0.6  # from -travel/2 .. +travel/2 around the centre, plus jitter
    jitter = rng.uniform(-0.08, 0.08, size=2) * side
    colour = np.array(COLOURS[item.colour], dtype=np.float32)
    background = rng.integers(10, 40, size=3).astype(np.float32)
    out = np.empty((frames, side, side, 3), dtype=np.uint8)
    for t in range(frames):
        progress = t / max(1, frames - 1) - 0.5
        cx = side / 2 + jitter[0] * (ux == 0) + ux * travel * progress
        cy = side / 2 + jitter[1] * (uy == 0) + uy * travel * progress
        image = np.broadcast_to(background, (side, side, 3)).copy()
        image += rng.normal(0, 6, size=(side, side, 1)).astype(np.float32)
        image[_mask(item.shape, xx, yy, cx, cy, r)] = colour
        out[t] = np.clip(image, 0, 255).astype(np.uint8)
    return out


OPENINGS = ("here is a {size} {colour} {shape}", "a {size} {colour} {shape}",
            "look at the {size} {colour} {shape}")
MOTIONS = ("it moves {direction}", "the {shape} is moving {direction}", "now it goes {direction}")


def texts(item: Item, duration: float, rng: random.Random) -> tuple[str, list[dict]]:
    """A caption, and a timed transcript of two lines (what it is, then where it goes) in
    words close to the captions', as ASR of a narrator would be."""
    caption = rng.choice(CAPTIONS).format(**item.words)
    half = round(duration / 2, 3)
    segments = [
        {"start": 0.0, "end": half, "text": rng.choice(OPENINGS).format(**item.words)},
        {"start": half, "end": round(duration, 3),
         "text": rng.choice(MOTIONS).format(**item.words)},
    ]
    return caption, segments


def encode(path: Path, frames: np.ndarray, fps: int) -> None:
    """H.264 (MPEG-4 part 2 where libx264 is missing), yuv420p, written aside then renamed."""
    import av

    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    tmp.replace(path)


def write_corpus(out_dir: str | Path, count: int = 160, seed: int = 0, side: int = 96,
                 duration: float = 4.0, fps: int = 15) -> Path:
    """Write `count` videos and ``manifest.jsonl`` (caption + timed segments) into `out_dir`;
    returns the manifest path. Deterministic in its arguments; existing videos are kept."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text_rng = random.Random(seed + 1)
    lines = []
    for i, item in enumerate(items(count, seed)):
        video_id = f"syn{i:05d}"
        path = out / f"{video_id}.mp4"
        if not path.exists():
            pixels = np.random.default_rng([seed, i])
            encode(path, render(item, int(round(duration * fps)), side, pixels), fps)
        caption, segments = texts(item, duration, text_rng)
        lines.append(json.dumps({"video_id": video_id, "path": path.name, "caption": caption,
                                 "segments": segments, **item.words}))
    manifest = out / "manifest.jsonl"
    text = "\n".join(lines) + "\n"
    if not manifest.exists() or manifest.read_text() != text:
        tmp = manifest.with_name(f".manifest.{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(manifest)
    return manifest


def parse_spec(name: str) -> dict[str, float | int]:
    """Options of ``builtin:synthetic[?count=N&seed=S&side=P&duration=D&fps=F]``."""
    base, _, query = name.partition("?")
    if base != "synthetic":
        raise ValueError(f"not a synthetic manifest: {name!r}")
    kinds = {"count": int, "seed": int, "side": int, "duration": float, "fps": int}
    options: dict[str, float | int] = {}
    for part in filter(None, query.split("&")):
        key, sep, value = part.partition("=")
        if key not in kinds or not sep:
            raise ValueError(f"builtin:{name}: unknown option {key!r} (known: {', '.join(kinds)})")
        try:
            options[key] = kinds[key](value)
        except ValueError:
            raise ValueError(f"builtin:{name}: {key}={value!r} is not a number") from None
        if options[key] <= 0 and key != "seed":
            raise ValueError(f"builtin:{name}: {key} must be positive")
    return options


def corpus_for_spec(name: str, cache: Path) -> Path:
    """The manifest of a built-in synthetic corpus, generated once into `cache`."""
    options = parse_spec(name)
    tag = "-".join(f"{k}{v}" for k, v in sorted(options.items())) or "default"
    return write_corpus(cache / f"synthetic-{tag}", **options)  # type: ignore[arg-type]
