"""Writing an export: every file aside under a temporary name, renamed into place when whole.

A killed export leaves only temporaries (``.<name>.<random>.vlprep-tmp``), which the next
export into the same folder deletes first; a finished file is always complete. The trainers
read local files, so OUT is a local directory (the store may be a URI).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from vlprep.export import ExportError

TMP_SUFFIX = ".vlprep-tmp"
DONE_FILE = "vlprep-export.json"


class OutDir:
    """The export's output folder; hands out atomic writers and records what was written."""

    def __init__(self, path: str | Path):
        if "://" in str(path):
            raise ExportError(f"OUT {path}: exports write a local directory (trainers read "
                              "local files); copy it to object storage afterwards")
        self.root = Path(path).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():
            raise ExportError(f"OUT {self.root} exists and is not a directory")
        self.root.mkdir(parents=True, exist_ok=True)
        self.files_written = 0
        self.clean_temporaries()

    def clean_temporaries(self) -> int:
        """Delete what an interrupted export left (only our temporaries)."""
        removed = 0
        for tmp in self.root.rglob(f"*{TMP_SUFFIX}"):
            if tmp.is_file():
                tmp.unlink()
                removed += 1
        return removed

    def path(self, rel: str) -> Path:
        return self.root / rel

    def temporary(self, rel: str) -> Path:
        final = self.path(rel)
        final.parent.mkdir(parents=True, exist_ok=True)
        return final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}")

    def commit(self, tmp: Path, rel: str) -> None:
        os.replace(tmp, self.path(rel))
        self.files_written += 1

    @contextmanager
    def open(self, rel: str, mode: str = "wb") -> Iterator[IO[Any]]:
        """A file written aside and renamed to `rel` only if the block finishes."""
        tmp = self.temporary(rel)
        try:
            with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
                yield f
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.commit(tmp, rel)

    def write_bytes(self, rel: str, data: bytes) -> None:
        with self.open(rel) as f:
            f.write(data)

    def save_npy(self, rel: str, array: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        self.write_bytes(rel, buf.getvalue())

    def finish(self, report: dict[str, Any]) -> None:
        """A small record of the export, written last: its presence means the export ended."""
        self.write_bytes(DONE_FILE, (json.dumps(report, indent=1) + "\n").encode())


class NpyWriter:
    """A ``.npy`` file appended row block by row block: the shape is known only at the end,
    so the header is written with room to spare and rewritten in place (same length) on
    close. np.load and mmap_mode='r' read it like any np.save output."""

    HEADER_BYTES = 128  # magic + version + length + dict padded; plenty for 2-d shapes

    def __init__(self, out: OutDir, rel: str, dtype: np.dtype | type, row_shape: tuple[int, ...]):
        self.out, self.rel = out, rel
        self.dtype, self.row_shape = np.dtype(dtype), tuple(row_shape)
        self.rows = 0
        self.tmp = out.temporary(rel)
        self.f: IO[bytes] = open(self.tmp, "wb")  # noqa: SIM115 - closed in close()/abort()
        self.f.write(self._header(0))

    def _header(self, rows: int) -> bytes:
        descr = np.lib.format.dtype_to_descr(self.dtype)
        text = repr({"descr": descr, "fortran_order": False,
                     "shape": (rows, *self.row_shape)})
        prefix = b"\x93NUMPY\x01\x00"
        room = self.HEADER_BYTES - len(prefix) - 2
        body = text.encode("latin1").ljust(room - 1) + b"\n"
        if len(body) > room:
            raise ExportError(f"{self.rel}: array header too long")
        return prefix + len(body).to_bytes(2, "little") + body

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.row_shape:
            raise ExportError(f"{self.rel}: rows of shape {block.shape[1:]}, "
                              f"expected {self.row_shape}")
        self.f.write(block.tobytes())
        self.rows += len(block)

    def close(self) -> None:
        self.f.seek(0)
        self.f.write(self._header(self.rows))
        self.f.close()
        self.out.commit(self.tmp, self.rel)

    def abort(self) -> None:
        self.f.close()
        self.tmp.unlink(missing_ok=True)


def in_val_split(video_id: str, fraction: float) -> bool:
    """A stable, order-free split: the same video lands in the same split on every export."""
    if fraction <= 0:
        return False
    digest = hashlib.sha1(video_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def video_file(video_id: str, suffix: str) -> str:
    """The relative path `<video_id><suffix>` the trainers join onto their folder; ids that
    would escape the folder are refused."""
    parts = video_id.split("/")
    if not video_id or video_id.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ExportError(f"video_id {video_id!r} cannot be a file name")
    return video_id + suffix
