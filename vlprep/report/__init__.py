"""`vlprep report`: an offline HTML report of a store, drawn on the frames the features came
from, with feature-health rules for pipelines (`--check`).

Modules: :mod:`.source` (reading committed data), :mod:`.summary` (tables, stages, errors,
runs, recipe), :mod:`.health` (streamed feature statistics, duplicates), :mod:`.checks` (the
rules), :mod:`.frames` (re-decoding with the store's recipe), :mod:`.cards` (per-video cards),
:mod:`.texts` (nouns and verbs marked), :mod:`.drawing` (PNGs), :mod:`.html` (the page),
:mod:`.build` (all of it in order).
"""

from typing import Any

__all__ = ["Report", "build_report"]


def __getattr__(name: str) -> Any:
    """Imported on first use, so that `vlprep --help` does not load numpy and matplotlib."""
    if name in __all__:
        from vlprep.report import build

        return getattr(build, name)
    raise AttributeError(name)
