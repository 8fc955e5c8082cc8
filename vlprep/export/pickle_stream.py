"""A pandas DataFrame pickle written row by row, without pandas and without holding the rows.

ALPRO reads its caption table with ``pd.read_pickle``. A pickle that pandas itself writes
holds numpy arrays, which an older numpy (ALPRO's environment) cannot unpickle once written
by numpy 2, and it needs the whole table in memory. This writes instead the pickle of the call
``pandas.DataFrame({column: [values...]})``: plain str/int/float lists under a reference to
``pandas.core.frame.DataFrame``, which every pandas version reads. Each column's opcodes are
streamed to a temporary file as rows arrive; ``close`` joins them into the final file.

Opcodes (pickle protocol 4, see ``pickletools``): PROTO 4, STACK_GLOBAL of the class, then
EMPTY_DICT, per column ``key EMPTY_LIST (MARK items APPENDS)* SETITEM``, TUPLE1, REDUCE, STOP.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path
from typing import IO

from vlprep.export.sink import OutDir

_BATCH = 1000  # items per APPENDS, as the pickle module batches lists


def _str(value: str) -> bytes:
    data = value.encode("utf-8", "surrogatepass")
    if len(data) < 256:
        return b"\x8c" + bytes([len(data)]) + data  # SHORT_BINUNICODE
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def _int(value: int) -> bytes:
    if -(2**31) <= value < 2**31:
        return b"J" + struct.pack("<i", value)  # BININT
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw  # LONG1


def _float(value: float) -> bytes:
    return b"G" + struct.pack(">d", value)  # BINFLOAT


def encode(value: str | int | float | None) -> bytes:
    if value is None:
        return b"N"
    if isinstance(value, bool):
        return b"\x88" if value else b"\x89"
    if isinstance(value, int):
        return _int(value)
    if isinstance(value, float):
        return _float(value)
    return _str(str(value))


class DataFramePickleWriter:
    """`pd.read_pickle(path)` returns a DataFrame with these columns, rows in append order."""

    def __init__(self, out: OutDir, rel: str, columns: list[str]):
        self.out, self.rel, self.columns = out, rel, list(columns)
        self.tmps: list[Path] = [out.temporary(f"{rel}.{i}") for i in range(len(columns))]
        self.files: list[IO[bytes]] = [open(p, "wb") for p in self.tmps]  # noqa: SIM115
        self.pending = 0
        self.rows = 0
        self._mark()

    def _mark(self) -> None:
        for f in self.files:
            f.write(b"(")  # MARK

    def _appends(self) -> None:
        for f in self.files:
            f.write(b"e")  # APPENDS

    def append(self, *values: str | int | float | None) -> None:
        if len(values) != len(self.columns):
            raise ValueError(f"{len(values)} values for {len(self.columns)} columns")
        for f, value in zip(self.files, values, strict=True):
            f.write(encode(value))
        self.pending += 1
        self.rows += 1
        if self.pending == _BATCH:
            self._appends()
            self._mark()
            self.pending = 0

    def close(self) -> None:
        self._appends()  # an empty MARK ... APPENDS is valid
        for f in self.files:
            f.close()
        with self.out.open(self.rel) as dst:
            dst.write(b"\x80\x04")  # PROTO 4
            dst.write(_str("pandas.core.frame") + _str("DataFrame") + b"\x93")  # STACK_GLOBAL
            dst.write(b"}")  # EMPTY_DICT
            for name, tmp in zip(self.columns, self.tmps, strict=True):
                dst.write(_str(name) + b"]")  # key, EMPTY_LIST
                with open(tmp, "rb") as src:
                    shutil.copyfileobj(src, dst, 1 << 20)
                dst.write(b"s")  # SETITEM
            dst.write(b"\x85R.")  # TUPLE1, REDUCE, STOP
        self._remove()

    def abort(self) -> None:
        for f in self.files:
            f.close()
        self._remove()

    def _remove(self) -> None:
        for tmp in self.tmps:
            tmp.unlink(missing_ok=True)
