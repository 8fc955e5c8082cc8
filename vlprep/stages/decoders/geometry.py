"""Resize (shorter side to ``size``, or ``squash``: both sides to ``size``, as ALPRO's decord
reads with a fixed width and height), display rotation, centre crop: one code path for all
decoders, so a job's frames do not depend on which library decoded them.

Both scalers are bilinear with antialiasing (the kernel widens when downscaling, like PIL's
and torchvision's, so nothing aliases): frames PyAV decodes are scaled by FFmpeg's swscale
(for large downscales straight from YUV, about 1 ms for a 720p frame, see
:func:`scale_to_rgb`); frames that arrive as RGB arrays (decord, the ffmpeg CLI) go through
PIL's bilinear filter. The two agree to 44-60 dB PSNR. The longer side is rounded down
(``long * size // short``), the crop offsets too, as torchvision's Resize + CenterCrop do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from vlprep.stages.decoders.media import rotation_of

INTERPOLATION = "BILINEAR"


@dataclass(frozen=True)
class Geometry:
    size: int  # shorter display side after resizing
    crop: int  # side of the square centre crop (<= size)
    rotation: int | None = 0  # degrees counter-clockwise; None: read it from the first frame
    squash: bool = False  # both sides to `size` (aspect not kept), not the shorter one

    def display_dims(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the resized frame as displayed (after rotation)."""
        if self.squash:
            return self.size, self.size
        if (self.rotation or 0) % 180:
            width, height = height, width
        short = min(width, height)
        if width <= height:
            return self.size, max(self.size, height * self.size // short)
        return max(self.size, width * self.size // short), self.size

    def stored_dims(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) to scale the stored (unrotated) frame to."""
        w, h = self.display_dims(width, height)
        return (h, w) if (self.rotation or 0) % 180 else (w, h)


def rotate(image: np.ndarray, rotation: int) -> np.ndarray:
    """Turn a stored H x W x C image to how it is displayed (counter-clockwise degrees)."""
    k = (rotation // 90) % 4
    return np.rot90(image, k) if k else image


class FrameWriter:
    """Converts decoded frames (PyAV frames or RGB arrays) and stores them at output slots.

    ``out`` is the N x crop x crop x 3 uint8 destination (an array or a view of shared
    memory); ``put(slots, frame)`` fills every slot that shows this frame.
    """

    def __init__(self, geometry: Geometry, out: np.ndarray):
        self.geometry = geometry
        self.out = out
        self._scaler = VideoReformatter()
        self._converter = VideoReformatter()
        self.written = 0

    def convert(self, frame: av.VideoFrame | np.ndarray) -> np.ndarray:
        """The frame as it is stored: resized, rotated, centre-cropped, RGB (a view)."""
        g = self._geometry_for(frame)
        if isinstance(frame, np.ndarray):
            height, width = frame.shape[:2]
            rgb = resize_rgb(frame, *g.stored_dims(width, height))
        else:
            rgb = np.dstack(rgb_planes(self._scale(frame)))
        image = rotate(rgb, g.rotation or 0)
        h, w = image.shape[:2]
        top, left = (h - g.crop) // 2, (w - g.crop) // 2
        return image[top:top + g.crop, left:left + g.crop]

    def put(self, slots: Sequence[int] | np.ndarray, frame: av.VideoFrame | np.ndarray) -> None:
        if len(slots) == 0:
            return
        g = self._geometry_for(frame)
        first = self.out[slots[0]]
        if isinstance(frame, np.ndarray) or g.rotation:
            first[...] = self.convert(frame)
        else:  # the common case, copied plane by plane straight into place: no temporaries
            planes = rgb_planes(self._scale(frame))
            h, w = planes[0].shape
            top, left = (h - g.crop) // 2, (w - g.crop) // 2
            for c, plane in enumerate(planes):
                first[:, :, c] = plane[top:top + g.crop, left:left + g.crop]
        for slot in slots[1:]:
            self.out[slot] = first
        self.written += len(slots)

    def _geometry_for(self, frame: av.VideoFrame | np.ndarray) -> Geometry:
        if self.geometry.rotation is None:
            rotation = 0 if isinstance(frame, np.ndarray) else rotation_of(frame)
            self.geometry = replace(self.geometry, rotation=rotation)
        return self.geometry

    def _scale(self, frame: av.VideoFrame) -> av.VideoFrame:
        width, height = self.geometry.stored_dims(frame.width, frame.height)
        return scale_planar(frame, width, height, self._scaler, self._converter)


def rgb_planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """Views of a planar RGB (gbrp) frame's planes, in R, G, B order."""
    views = []
    for plane in frame.planes:
        rows = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)
        views.append(rows[:, :frame.width])
    g, b, r = views
    return [r, g, b]


def scale_planar(frame: av.VideoFrame, width: int, height: int,
                 scaler: VideoReformatter | None = None,
                 converter: VideoReformatter | None = None) -> av.VideoFrame:
    """A decoded frame scaled to width x height as planar RGB (bilinear; planar output is
    faster than packed RGB).

    Downscaling by 2 or more goes straight from YUV in one pass: the subsampled chroma still
    has at least the output's resolution, so nothing is lost, and it costs about a quarter
    of converting the full frame first. Smaller factors and upscaling first convert the
    whole frame to RGB as the ffmpeg CLI does, then scale, so chroma edges come out the same.
    """
    scaler = scaler or VideoReformatter()
    source = frame
    if min(frame.width / width, frame.height / height) < 2:
        converter = converter or VideoReformatter()
        source = converter.reformat(frame, format="rgb24", src_color_range=frame.color_range,
                                    threads=1)
    return scaler.reformat(source, width, height, "gbrp", interpolation=INTERPOLATION,
                           src_color_range=source.color_range, threads=1)


def scale_to_rgb(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    """:func:`scale_planar` as an H x W x 3 RGB array."""
    return np.dstack(rgb_planes(scale_planar(frame, width, height)))


def resize_rgb(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """An RGB uint8 array resized to width x height with PIL's bilinear filter (antialiased;
    within a grey level of torchvision's Resize, and light enough for the decode worker)."""
    from PIL import Image

    if image.shape[:2] == (height, width):
        return image
    resized = Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized)
