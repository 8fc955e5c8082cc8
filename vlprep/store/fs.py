"""The one filesystem opener: stores, manifests and media all reach files through it."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.fs as pafs

from vlprep.errors import StoreError

__all__ = ["StoreError", "has_scheme", "open_filesystem"]


def has_scheme(uri: str) -> bool:
    return "://" in uri


def open_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a URI such as s3://bucket/prefix.

    pyarrow's own filesystems first (s3, gs, hdfs, abfs), fsspec's for other schemes. S3
    endpoint and credentials come from the URI query (``?endpoint_override=host:port&
    scheme=http``) or the standard variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``...).
    """
    if not has_scheme(uri):
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(uri))
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        import fsspec

        fsspec_fs, path = fsspec.core.url_to_fs(uri)
        return pafs.PyFileSystem(pafs.FSSpecHandler(fsspec_fs)), path
