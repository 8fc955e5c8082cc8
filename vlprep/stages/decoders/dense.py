"""Dense decoding for the videoclip sampler: the whole stream front to back, each shown frame
converted once by a libavfilter graph, written straight into its output slots.

The slots (which source frame each 1/30 s output frame shows) come from
:func:`vlprep.stages.resample.fps_slots`, i.e. exactly the frames ffmpeg's ``fps=30`` filter
emits; selection happens here rather than in an ``fps`` filter so that each source frame is
scaled once however often it repeats, and frames the filter drops are never scaled at all.

Per shown frame the work runs in C: one filter graph does what
:class:`vlprep.stages.decoders.geometry.FrameWriter` does for sparse samples, with the same
swscale calls in the same order (RGB first below a 2x downscale, bilinear scale to planar
RGB, rotation by transposes, centre crop), so the pixels are bit-identical to the sparse
path's (tested). The graph's frames come from FFmpeg's buffer pools (no allocation per frame);
Python only matches a frame to its slots by pts and copies the crop into place (the one
planar-to-packed interleave). :class:`DenseReader` fills any run of consecutive slots, so a
long video can be decoded chunk by chunk (see :mod:`vlprep.stages.decoders.stream`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction

import av
import numpy as np

from vlprep.stages.base import VideoError
from vlprep.stages.decoders.geometry import INTERPOLATION, Geometry
from vlprep.stages.decoders.media import FrameIndex, av_reason, rotation_of

_TURNS = {1: ("transpose=cclock",), 2: ("hflip", "vflip"), 3: ("transpose=clock",)}


class FrameFilter:
    """Resize, rotate, crop and convert decoded frames in one libavfilter graph, rebuilt
    only when the input's size or pixel format changes."""

    def __init__(self, geometry: Geometry):
        self.geometry = geometry
        self._key: tuple | None = None
        self._graph: av.filter.Graph | None = None

    def chain(self, width: int, height: int) -> list[str]:
        """The filters after the buffer source, as FrameWriter's steps."""
        g = self.geometry
        w, h = g.stored_dims(width, height)
        flags = f"flags={INTERPOLATION.lower()}:in_chroma_loc=left"  # swscale's default
        if min(width / w, height / h) < 2:  # as scale_planar: convert first, then scale
            steps = [f"scale={flags}", "format=rgb24", f"scale={w}:{h}:{flags}"]
        else:
            steps = [f"scale={w}:{h}:{flags}"]
        steps.append("format=gbrp")
        steps += _TURNS.get((g.rotation or 0) // 90 % 4, ())
        dw, dh = g.display_dims(width, height)
        steps.append(f"crop={g.crop}:{g.crop}:{(dw - g.crop) // 2}:{(dh - g.crop) // 2}")
        return steps

    def _build(self, frame: av.VideoFrame) -> av.filter.Graph:
        if self.geometry.rotation is None:
            self.geometry = replace(self.geometry, rotation=rotation_of(frame))
        graph = av.filter.Graph()
        graph.threads = 1  # slice threads cost CPU time for 224-pixel outputs
        nodes = [graph.add("buffer", video_size=f"{frame.width}x{frame.height}",
                           pix_fmt=str(frame.format.name), time_base=str(Fraction(1, 30)),
                           pixel_aspect="1/1", colorspace=str(int(frame.colorspace)),
                           range=str(int(frame.color_range)))]
        for step in self.chain(frame.width, frame.height):
            name, _, args = step.partition("=")
            nodes.append(graph.add(name, args or None))
        nodes.append(graph.add("buffersink"))
        for a, b in zip(nodes, nodes[1:], strict=False):
            a.link_to(b)
        graph.configure()
        return graph

    def write(self, frame: av.VideoFrame, dest: np.ndarray) -> None:
        """Convert `frame` into `dest` (crop x crop x 3 uint8, e.g. a slot of the output)."""
        key = (frame.width, frame.height, frame.format.name, frame.colorspace,
               frame.color_range)
        if key != self._key:
            self._graph, self._key = self._build(frame), key
        assert self._graph is not None
        frame.pts = None  # the graph only converts; timestamps stay ours
        self._graph.push(frame)
        out = self._graph.pull()
        side = self.geometry.crop
        for channel, plane in zip((1, 2, 0), out.planes, strict=True):  # gbrp: G, B, R planes
            rows = np.frombuffer(plane, np.uint8).reshape(out.height, plane.line_size)
            dest[:, :, channel] = rows[:side, :side]


class DenseReader:
    """Fills output slots in order from one front-to-back decode.

    ``source[k]`` is the presentation index of the frame slot ``k`` shows (non-decreasing,
    from :func:`fps_slots`); ``fill(start, out)`` writes slots ``start ..`` into ``out``,
    continuing the decode where the previous call stopped (a call that does not continue the
    previous one seeks to the keyframe before its first frame).
    """

    def __init__(self, container: av.container.InputContainer, stream: av.VideoStream,
                 index: FrameIndex, source: np.ndarray, geometry: Geometry):
        self.container, self.stream, self.index = container, stream, index
        self.source = np.asarray(source, np.int64)
        self.filter = FrameFilter(geometry)
        self._frames: Iterator[tuple[int, av.VideoFrame]] | None = None
        self._next = 0  # the slot the decode position belongs to
        self._held: tuple[int, np.ndarray] | None = None  # last written frame and its image
        self.decoded = 0
        self.seeks = 0

    @property
    def geometry(self) -> Geometry:
        return self.filter.geometry

    def fill(self, start: int, out: np.ndarray) -> None:
        """Slots ``[start, start + len(out))``; slots past the last source slot are zeros."""
        end = min(start + len(out), len(self.source))
        out[max(0, end - start):] = 0
        if end <= start:
            return
        if self._frames is None or start != self._next:
            self._restart(int(self.source[start]))
        src = self.source[start:end]
        pos = 0
        if self._held is not None and self._held[0] == src[0]:
            pos = int(np.searchsorted(src, src[0], side="right"))
            out[:pos] = self._held[1]
        assert self._frames is not None
        while pos < len(src):
            want = int(src[pos])
            i, frame = next(self._frames, (-1, None))
            while 0 <= i < want:  # frames the fps filter drops: never converted
                i, frame = next(self._frames, (-1, None))
            if frame is None:
                raise VideoError(f"decode failed: the video ended before frame {want}")
            if i != want:
                raise VideoError(f"decode failed: frame {want} could not be decoded")
            stop = int(np.searchsorted(src, want, side="right"))
            self.filter.write(frame, out[pos])
            out[pos + 1:stop] = out[pos]
            pos = stop
        self._held = (int(src[-1]), out[len(src) - 1].copy())
        self._next = end

    def _restart(self, first: int) -> None:
        """Position the decode at the keyframe before presentation index `first`."""
        index, stream = self.index, self.stream
        self._held = None
        self.seeks += 1
        if index.exact:
            pos = int(np.searchsorted(index.keyframes, first, side="right")) - 1
            key = int(index.keyframes[pos]) if pos >= 0 else 0
            ts = int(index.pts[key])
        else:
            ts = int(index.pts[0])
        try:
            self.container.seek(ts, stream=stream, backward=True, any_frame=False)
        except av.FFmpegError as e:
            if first > 0 or not index.exact:
                raise VideoError(f"seek failed: {av_reason(e)}") from None
        stream.codec_context.flush_buffers()
        self._frames = self._decode()

    def _decode(self) -> Iterator[tuple[int, av.VideoFrame]]:
        """(presentation index, frame) in output order; frames are matched by pts (counted
        when the stream has no usable timestamps)."""
        exact, pts = self.index.exact, self.index.pts
        n = 0
        try:
            for frame in self.container.decode(self.stream):
                self.decoded += 1
                if exact:
                    i = int(np.searchsorted(pts, frame.pts)) if frame.pts is not None else -1
                    if not (0 <= i < len(pts) and pts[i] == frame.pts):
                        continue  # a frame the index does not know (never a slot's)
                else:
                    i, n = n, n + 1
                yield i, frame
        except av.FFmpegError as e:
            raise VideoError(f"decode failed: {av_reason(e)}") from None
