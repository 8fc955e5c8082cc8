"""Names inside a store (``STORE`` is a local path or a URI that ``pyarrow.fs`` understands)::

    STORE/<table>/[ph<N>-]part-<pid>-<k>.parquet  the data of input partition pid (pass N)
    STORE/<table>/agg-<stage>-<k>.parquet         the output of an aggregate stage
    STORE/_inputs/part-<pid>.parquet              the normalised manifest, one file a partition
    STORE/_inputs/_index.json                     partitions, their sizes, the manifest's print
    STORE/_commits/<unit>.json                    commit record: the unit is done, its files
    STORE/_recipe.json                            the recipe the store was made with
    STORE/_runs/run-<time>.json                   one summary per run
    STORE/_tmp/                                   being written; never read as data

Workers write a batch's files under ``_tmp/w/<attempt>/`` (a fresh id per attempt, so a
retried batch never overwrites or reuses a dead attempt's files); the driver moves a complete
unit's files to their final names and then writes its commit record.
"""

from __future__ import annotations

import re

INPUTS, COMMITS, TMP, RUNS = "_inputs", "_commits", "_tmp", "_runs"
INDEX = "_index.json"
RECIPE_FILE = "_recipe.json"
WRITES = "w"  # under TMP: one folder per write attempt
CORPUS = "corpus"  # the partition key of corpus-wide (aggregate) units

# Our data file names: [ph<pass>-]part-<pid>-<k>.parquet and agg-<stage>-<k>.parquet
DATA_FILE = re.compile(r"^(?:ph\d+-)?part-\d{6}-\d{3}\.parquet$|^agg-[\w.-]+-\d{3}\.parquet$")
PARTITION_UNIT = re.compile(r"^(?:ph\d+-)?part-(\d{6})$")


def part_name(pid: int, k: int | None = None, ext: str = "parquet") -> str:
    return f"part-{pid:06d}.{ext}" if k is None else f"part-{pid:06d}-{k:03d}.{ext}"


def pass_prefix(pass_index: int) -> str:
    """File-name prefix of a pass over the videos: none for the first, `ph<N>-` after."""
    return "" if pass_index == 0 else f"ph{pass_index}-"


def partition_unit(pid: int, pass_index: int = 0) -> str:
    """The commit unit of one input partition in one pass."""
    return f"{pass_prefix(pass_index)}part-{pid:06d}"


def data_file(unit: str, k: int) -> str:
    return f"{unit}-{k:03d}.parquet"


def partition_key(unit: str) -> str:
    """The partition a unit's rows belong to ("000003"), or CORPUS for aggregate units: all
    of one video's rows, in every table and pass, share one key."""
    match = PARTITION_UNIT.match(unit)
    return match.group(1) if match else CORPUS
