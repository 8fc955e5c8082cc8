"""The `vlprep` command: each command lives in its own module of this package; this one only
puts them together (the leaves never import it, so there is no import circle)."""

from __future__ import annotations

import typer

from vlprep.cli import export, imports, inspect, manifest, report, run, scan, train, weights

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Offline preprocessing for video-language pretraining.")

app.command()(run.run)
app.command()(inspect.inspect)
app.command()(report.report)
app.command()(scan.scan)
app.command()(run.plan)
app.command()(train.train)
app.command("eval")(train.eval_)
app.add_typer(weights.app, name="weights")
app.add_typer(manifest.app, name="manifest",
              help="Convert public dataset formats (WebVid, HowTo100M, MSR-VTT) to a manifest.")
app.add_typer(export.app, name="export",
              help="Write a store as MMPT, ALPRO, STOA-VLP or VinVL read their inputs.")
app.add_typer(imports.app, name="import",
              help="Fill a store from another tool's outputs (VinVL's TSVs).")
