"""Export a store to the on-disk layouts the original trainers read (`vlprep export ...`).

Researchers who keep a paper's own training code only need its input files. Each module here
writes one such layout from a store's tables, so the original repository runs unchanged:

- :mod:`.mmpt`: fairseq examples/MMPT (VideoCLIP): per-video ``.npy`` S3D features, the
  ``ShardedTensor`` shards with their ``*_meta.pkl``, ``raw_caption.json`` and the
  pre-tokenised ``.caps_ids`` / ``.startends`` shards.
- :mod:`.alpro`: salesforce/ALPRO: the WebVid caption table (a pandas pickle) and
  ``unigrams.txt``.
- :mod:`.stoa`: whongzhong/STOA-VLP: the per-video object cache ``object_attr_*.pth``, the
  per-video detection lists ``tsv_files/<video_id>.json`` and the label map.
- :mod:`.vinvl`: the VinVL / scene_graph_benchmark ``predictions.tsv`` with its ``.lineidx``.

Exports stream: at most one input partition of a table is in memory (a size the pipeline
itself held when it wrote the partition), and every file is written aside and renamed into
place, so an interrupted export leaves no partial file and a re-run starts cleanly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vlprep.errors import ExportError  # noqa: F401 - re-exported


@dataclass
class ExportReport:
    """What an export wrote: counts for the summary line and notes worth a warning."""

    format: str
    out: str
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)  # what to pass the method's own code

    def summary(self) -> str:
        counts = ", ".join(f"{v} {k}" for k, v in self.counts.items())
        return f"{self.format}: {counts} -> {self.out}"
