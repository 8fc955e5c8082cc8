"""`vlprep export alpro`: a store as salesforce/ALPRO's pre-training reads WebVid.

Layout under OUT (the paths of ``config_release/pretrain_alpro.json``, relative to OUT)::

    txt/train.pkl, txt/val.pkl   the caption table its WebVid loader reads with
                                 ``pd.read_pickle``: one row per caption, columns
                                 ``video_id``, ``text``, ``txt_len`` (the loader keeps rows
                                 with ``txt_len < 80``; ALPRO does not document it, we write
                                 the caption's word count)
    unigrams.txt                 the entity vocabulary for the prompter: one ``lemma count``
                                 line per entity in `entities` rank order; ALPRO takes the
                                 first ``num_entities`` lines and the first word of each;
                                 its prompter's classifier has ``num_entities`` outputs
                                 (default 1,000), so the export prints the
                                 ``--num_entities N`` to pass with fewer entities
    videos/<video_id>.mp4        with --link-videos: links to the source videos (ALPRO
                                 decodes raw video from the ``img`` folder)

Captions are the `texts` rows with source ``caption`` (``--all-texts``: transcript lines too),
in store order; the split is a stable hash of the video id (``--val-fraction``).
"""

from __future__ import annotations

from dataclasses import dataclass

from vlprep.export import ExportError, ExportReport
from vlprep.export.pickle_stream import DataFramePickleWriter
from vlprep.export.sink import OutDir, in_val_split
from vlprep.export.source import StoreSource
from vlprep.export.videos import link_videos

COLUMNS = ["video_id", "text", "txt_len"]


@dataclass
class AlproOptions:
    val_fraction: float = 0.0
    all_texts: bool = False
    link_videos: bool = False


def export_alpro(store: str, out_dir: str, opts: AlproOptions | None = None) -> ExportReport:
    opts = opts or AlproOptions()
    if not 0 <= opts.val_fraction < 1:
        raise ExportError("need 0 <= val_fraction < 1")
    source = StoreSource(store)
    source.require("texts", "texts")
    out = OutDir(out_dir)
    report = ExportReport("alpro", str(out.root))
    counts = {"train": 0, "val": 0}
    writers = {split: DataFramePickleWriter(out, f"txt/{split}.pkl", COLUMNS)
               for split in ("train", "val")}
    try:
        for batch in source.batches("texts", ["video_id", "source", "text"]):
            for video_id, kind, text in zip(*(batch.column(c).to_pylist()
                                              for c in ("video_id", "source", "text")),
                                            strict=True):
                if kind != "caption" and not opts.all_texts:
                    continue
                split = "val" if in_val_split(video_id, opts.val_fraction) else "train"
                writers[split].append(video_id, text, len(text.split()))
                counts[split] += 1
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    for writer in writers.values():
        writer.close()
    if not counts["train"] + counts["val"]:
        report.notes.append("no captions in `texts` (use --all-texts for transcript lines)")
    if "entities" in source.tables():
        counts["entities"] = write_unigrams(source, out)
        report.hints.append(num_entities_hint(counts["entities"]))
    else:
        report.notes.append("no `entities` table (run the entities stage): unigrams.txt "
                            "not written")
    if opts.link_videos:
        counts["video_links"], skipped = link_videos(source, out)
        if skipped:
            report.notes.append(f"{skipped} videos are not local files: not linked")
    report.counts = counts
    out.finish({"format": "alpro", "store": store, "counts": counts, "notes": report.notes,
                "options": vars(opts)})
    return report


def num_entities_hint(n: int) -> str:
    """The flag ALPRO's run_pretrain_sparse.py / prompter pre-training needs for this
    unigrams.txt (src/configs/config.py: ``--num_entities``, default 1000)."""
    if n == 1000:
        return "ALPRO: unigrams.txt has 1000 entities (ALPRO's default --num_entities 1000)"
    return (f"ALPRO: unigrams.txt has {n} entities: pass --num_entities {n} to ALPRO's "
            "run_pretrain_sparse.py and the prompter pre-training")


def write_unigrams(source: StoreSource, out: OutDir) -> int:
    """unigrams.txt in rank order. The vocabulary is the entities stage's top_n rows, so
    sorting it in memory is cheap (it is corpus-wide, not per video)."""
    entries: list[tuple[int, str, int]] = []
    for batch in source.batches("entities", ["rank", "lemma", "count"]):
        entries.extend(zip(*(batch.column(c).to_pylist() for c in ("rank", "lemma", "count")),
                           strict=True))
    entries.sort()
    # no trailing newline: ALPRO splits the file on "\n", an empty last line would be an entity
    text = "\n".join(f"{' '.join(lemma.split()) or '_'} {count}" for _, lemma, count in entries)
    out.write_bytes("unigrams.txt", text.encode())
    return len(entries)
