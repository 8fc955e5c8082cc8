"""`vlprep import FORMAT ...`: fill a store's tables from another tool's outputs, exactly once.

The format modules are imported inside the commands, so `vlprep --help` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from vlprep.cli.errors import reported

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Fill a store from another tool's outputs (VinVL's TSVs).")


@app.command()
def vinvl(
    predictions: Annotated[str, typer.Argument(help="scene_graph_benchmark's predictions.tsv")],
    features: Annotated[str, typer.Argument(help="Oscar's features TSV (num_boxes, features)")],
    store: Annotated[str, typer.Option("--store", help="store path or URI")],
    frames: Annotated[str | None, typer.Option(
        help="key, video_id, sample_rank, frame_index, time TSV (default: frames.tsv beside "
             "PREDICTIONS; else keys are <video_id>_<sample_rank>)")] = None,
    hw: Annotated[str | None, typer.Option(
        help="image sizes TSV (default: <PREDICTIONS stem>.hw.tsv)")] = None,
    label_map: Annotated[str | None, typer.Option(
        help="VG-SGG-dicts JSON (default: labelmap.json beside PREDICTIONS)")] = None,
    partition_size: Annotated[int, typer.Option(
        min=1, help="videos per commit unit when the store has no `videos` table")] = 256,
    feature_dim: Annotated[int, typer.Option(min=1, help="region feature size")] = 2048,
) -> None:
    """VinVL predictions + features -> `regions` (one commit unit per partition)."""
    from vlprep.export.vinvl_import import import_vinvl

    with reported(prefix="import: ", usage=(OSError, ValueError)):
        report = import_vinvl(predictions, features, store, frames=frames, hw=hw,
                              label_map=label_map, partition_size=partition_size,
                              feature_dim=feature_dim)
    typer.echo(report.summary())
    for note in report.notes:
        typer.echo(f"warning: {note}", err=True)
