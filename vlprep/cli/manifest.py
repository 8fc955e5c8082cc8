"""`vlprep manifest ...`: turn public dataset annotations into a vlprep manifest.

Prints one summary line; on bad input prints a one-line reason to stderr and exits 2, so
scripts can tell a usage problem from a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from vlprep.cli.errors import die, reported
from vlprep.jobs import convert

app = typer.Typer(
    help="Convert public dataset annotations (WebVid, HowTo100M, MSR-VTT) to a manifest.",
    no_args_is_help=True,
    add_completion=False,
)

Out = Annotated[str, typer.Option("--out", "-o",
                                  help="Manifest to write: .jsonl, or .parquet / .pq.")]
Videos = Annotated[str, typer.Option("--videos", help="Folder (or URI prefix) of the videos.")]


def _run(out: str, job: Callable[[], convert.ConvertReport]) -> None:
    with reported(usage=(ValueError, OSError)):
        report = job()
    typer.echo(f"wrote {report.rows} rows to {out} ({report.skipped} skipped)")


@app.command()
def webvid(
    csv_path: Annotated[str, typer.Argument(help="WebVid CSV (videoid,contentUrl,...,name).")],
    out: Out,
    videos: Annotated[str | None, typer.Option(
        "--videos", help="Folder (or URI prefix) of the downloaded videos.")] = None,
    pattern: Annotated[str, typer.Option(
        help="Video path under --videos, formatted with the CSV's columns.")]
    = "{page_dir}/{videoid}.mp4",
    use_urls: Annotated[bool, typer.Option(
        "--use-urls", help="Use contentUrl as the path instead of --videos.")] = False,
) -> None:
    """WebVid-2M/10M results CSV -> manifest with one caption per video."""
    if videos is None and not use_urls:
        die("webvid needs --videos DIR or --use-urls")
    _run(out, lambda: convert.webvid(csv_path, videos, out, pattern=pattern, use_urls=use_urls))


@app.command()
def howto100m(
    raw_caption_json: Annotated[str, typer.Argument(help="HowTo100M raw_caption.json.")],
    videos: Videos,
    out: Out,
    ext: Annotated[list[str] | None, typer.Option(
        "--ext", help="Video file extensions, in order of preference (repeatable).")] = None,
) -> None:
    """HowTo100M raw_caption.json -> manifest with timed ASR segments."""
    extensions = tuple(ext) if ext else (".mp4", ".webm", ".mkv")
    _run(out, lambda: convert.howto100m(raw_caption_json, videos, out, extensions=extensions))


@app.command()
def msrvtt(
    json_path: Annotated[str, typer.Argument(help="MSR-VTT annotation JSON (videos, sentences).")],
    videos: Videos,
    out: Out,
    ext: Annotated[str, typer.Option("--ext", help="Video file extension.")] = ".mp4",
) -> None:
    """MSR-VTT JSON -> manifest with the first caption and all captions of each video."""
    _run(out, lambda: convert.msrvtt(json_path, videos, out, ext=ext))
