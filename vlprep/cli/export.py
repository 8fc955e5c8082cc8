"""`vlprep export FORMAT STORE OUT`: write a store in the layout an original trainer reads.

Each command prints one summary line (and a warning line per note); a store that cannot be
exported as asked exits 2 with one line (vlprep.cli.errors). The format modules are
imported inside the commands, so `vlprep --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from vlprep.cli.errors import die, reported
from vlprep.export import ExportReport

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Write a store in the on-disk layout of MMPT, ALPRO, STOA-VLP or VinVL.")

Store = Annotated[str, typer.Argument(help="store path or URI")]
Out = Annotated[str, typer.Argument(help="output folder (local); files are replaced")]
ValFraction = Annotated[float, typer.Option(
    min=0.0, max=0.99, help="share of videos (stable hash of the id) in the val split")]
LinkVideos = Annotated[bool, typer.Option(
    "--link-videos", help="also link videos/<video_id>.mp4 to the source videos")]


def _run(job: Callable[[], ExportReport]) -> None:
    with reported(prefix="export: ", usage=(OSError, ValueError)):  # ValueError: bad Parquet
        report = job()
    typer.echo(report.summary())
    for hint in report.hints:
        typer.echo(hint)
    for note in report.notes:
        typer.echo(f"warning: {note}", err=True)


@app.command()
def mmpt(
    store: Store,
    out: Out,
    shard_size: Annotated[int, typer.Option(min=1, help="videos per shard")] = 4096,
    val_fraction: ValFraction = 0.0,
    bert_name: Annotated[str, typer.Option(
        help="tokenizer name in the text shard names (MMPT's bert_name)")] = "bert-base-uncased",
    dtype: Annotated[str, typer.Option(help="float16 (MMPT's default) or float32")] = "float16",
    per_video: Annotated[bool, typer.Option(
        "--per-video/--no-per-video", help="write feat_s3d/<video_id>.npy")] = True,
    text: Annotated[bool, typer.Option(
        "--text/--no-text", help="shard only videos with text and write the text shards")] = True,
) -> None:
    """fairseq MMPT (VideoCLIP): S3D .npy per video, ShardedTensor shards, raw_caption.json,
    pre-tokenised .caps_ids/.startends shards."""
    from vlprep.export.mmpt import MmptOptions, export_mmpt

    if dtype not in ("float16", "float32"):
        die(f"export: --dtype {dtype}: expected float16 or float32")
    opts = MmptOptions(shard_size=shard_size, val_fraction=val_fraction, bert_name=bert_name,
                       dtype=dtype, per_video=per_video, text=text)
    _run(lambda: export_mmpt(store, out, opts))


@app.command()
def alpro(
    store: Store,
    out: Out,
    val_fraction: ValFraction = 0.0,
    all_texts: Annotated[bool, typer.Option(
        "--all-texts", help="transcript lines too, not only captions")] = False,
    link_videos: LinkVideos = False,
) -> None:
    """salesforce/ALPRO: txt/train.pkl and txt/val.pkl caption tables, unigrams.txt."""
    from vlprep.export.alpro import AlproOptions, export_alpro

    opts = AlproOptions(val_fraction=val_fraction, all_texts=all_texts, link_videos=link_videos)
    _run(lambda: export_alpro(store, out, opts))


@app.command()
def stoa(
    store: Store,
    out: Out,
    shards: Annotated[int, typer.Option(
        min=1, help="object_attr_<K>_<i>_<n>.pth shards (STOA-VLP's pre-training reads 300)")]
    = 300,
    split: Annotated[str | None, typer.Option(
        help="write one object_attr_<split>_<K>.pth instead (fine-tuning loaders)")] = None,
    frame_json: Annotated[bool, typer.Option(
        "--frame-json/--no-frame-json", help="write tsv_files/<video_id>.json")] = True,
    link_videos: LinkVideos = False,
    selection: Annotated[str | None, typer.Option(
        help="object rule: stoa (STOA-VLP's loader: one box per class and frame) or "
             "same_class_iou; default: the store's trajectories rule")] = None,
) -> None:
    """whongzhong/STOA-VLP: object_attr_*.pth object cache, tsv_files/, labelmap.json,
    webvidpos/postagging_ids_<K>_new.pth and frozen_train_labels.json."""
    from vlprep.export.stoa import StoaOptions, export_stoa

    opts = StoaOptions(shards=shards, split=split, frame_json=frame_json,
                       link_videos=link_videos, selection=selection)
    _run(lambda: export_stoa(store, out, opts))


@app.command()
def vinvl(
    store: Store,
    out: Out,
    name: Annotated[str, typer.Option(help="file stem of the TSVs")] = "predictions",
) -> None:
    """VinVL / scene_graph_benchmark: predictions.tsv (+ .lineidx, .hw.tsv), labelmap.json."""
    from vlprep.export.vinvl import VinvlOptions, export_vinvl

    _run(lambda: export_vinvl(store, out, VinvlOptions(name=name)))
