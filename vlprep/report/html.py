"""The report as one self-contained HTML page: inline CSS, images from `assets/`, no scripts,
no fonts or styles from the network, so it opens offline from the file system.

Machine-readable facts ride along as data attributes (``data-boxes`` on every detector frame,
``data-video-id`` on every card) for tests and scripts that check the report.
"""

from __future__ import annotations

import json
import math
import time
from html import escape
from typing import Any

import vlprep
from vlprep.report.cards import Card, Section
from vlprep.report.checks import Failure
from vlprep.report.summary import Summary

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1400px;padding:0 16px;
color:#222;background:#fafafa}
h1{margin:16px 0 4px}h2{border-bottom:2px solid #ccc;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#eee}td.n{text-align:right}
.random{background:#b00020;color:#fff;font-weight:bold;padding:8px 12px;margin:8px 0}
.ok{color:#0a7d22;font-weight:bold}.bad{color:#b00020;font-weight:bold}
.note{background:#fff0c0;border-left:4px solid #e0a000;padding:4px 8px;margin:4px 0}
.plots img{margin:4px;border:1px solid #ddd;background:#fff}
.card{background:#fff;border:1px solid #bbb;border-radius:6px;margin:18px 0;padding:8px 14px}
.card.failed{border-color:#b00020}
.frames{display:flex;flex-wrap:wrap;gap:6px}
figure{margin:0;font-size:11px;text-align:center}figure img{display:block;height:150px}
.legend span{display:inline-block;margin:2px 8px 2px 0}
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px;border:1px solid #333}
mark.noun{background:#bde0ff}mark.verb{background:#ffd2a8}
pre{background:#f3f3f3;padding:6px;overflow:auto;max-height:260px;font-size:12px}
"""


def _n(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:,.3g}" if abs(value) < 1000 \
            else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else escape(str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f'<td class="n">{_n(c)}</td>' if isinstance(c, (int, float)) else f"<td>{c}</td>"
        for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _attrs(attrs: dict[str, str]) -> str:
    return "".join(f' data-{escape(k)}="{escape(v)}"' for k, v in attrs.items())


def summary_html(s: Summary, throughput: dict[str, dict[str, float]]) -> str:
    out = [f"<p>videos committed <b>{s.videos_done:,}</b> of {s.videos_total:,}; partitions "
           f"{s.partitions_done:,} of {s.partitions_total:,}"
           + (" <span class='bad'>(partial store: the report shows what it has)</span>"
              if s.partitions_done < s.partitions_total else "") + "</p>"]
    if s.random_stages:
        out.append(f"<div class='random' id='random-weights'>RANDOM WEIGHTS: stage(s) "
                   f"{escape(', '.join(s.random_stages))} ran with init: random. Their "
                   "features, boxes and soft labels are NOT meaningful.</div>")
    out.append("<h2 id='tables'>Tables</h2>")
    out.append(_table(["table", "rows", "files", "MiB"],
                      [[escape(t), v["rows"], v["files"], v["bytes"] / 2**20]
                       for t, v in s.tables.items()]))
    out.append("<h2 id='stages'>Videos per stage</h2>")
    rows = []
    for f in s.flow:
        tp = throughput.get(f.name, {})
        if f.aggregate:
            rows.append([escape(f.name), "corpus-wide", "", "", escape(", ".join(f.tables)),
                         tp.get("worker_seconds", "-"), "-"])
            continue
        rows.append([escape(f.name), f.entered, f.ok,
                     f"<span class='{'bad' if f.failed else 'ok'}'>{f.failed:,}</span>",
                     escape(", ".join(f.tables)), tp.get("worker_seconds", "-"),
                     tp.get("videos_per_worker_second", "-")])
    out.append(_table(["stage", "in", "ok", "failed", "writes", "worker s (all runs)",
                       "videos / worker s"], rows))
    out.append(f"<p>{len(s.runs)} run(s) recorded in <code>_runs/</code>: "
               + ", ".join(f"{escape(r['_file'])} ({r.get('videos', 0)} videos, "
                           f"{_n(float(r.get('seconds') or 0))} s)" for r in s.runs) + "</p>")
    out.append("<h2 id='errors'>Errors by reason</h2>")
    if not s.errors:
        out.append("<p class='ok'>no errors rows</p>")
    else:
        out.append(_table(["stage", "videos", "reason", "examples"], [
            [escape(e.stage), e.count, escape(e.reason),
             "<br>".join(f"{escape(v)} <code>{escape(p)}</code>" for v, p in e.examples)]
            for e in s.errors]))
    out.append("<h2 id='recipe'>Recipe</h2>")
    if s.recipe is None:
        out.append("<p class='bad'>no _recipe.json: how this store was made is unknown</p>")
    else:
        rows = []
        for st in s.recipe.get("stages", []):
            w = st.get("weights")
            if w is None:
                weights = "-"
            elif w.get("init") == "random":
                weights = f"<span class='bad'>RANDOM (seed {escape(str(w.get('seed')))})</span>"
            else:
                weights = (f"<code>{escape(str(w.get('checkpoint')))}</code><br>sha256 "
                           f"<code>{escape(str(w.get('sha256')))}</code>")
            opts = escape(json.dumps(st.get("options", {}), sort_keys=True))
            rows.append([escape(st["name"]), escape(st["kind"]), weights,
                         f"<details><summary>options</summary><pre>{opts}</pre></details>"])
        out.append(f"<p>schema version {escape(str(s.recipe.get('schema_version')))}, "
                   f"vlprep {escape(str(s.recipe.get('vlprep_version')))}</p>")
        out.append(_table(["stage", "kind", "weights", "options"], rows))
    if s.plots:
        out.append("<h2 id='manifest'>Videos: probe facts</h2><div class='plots'>"
                   + "".join(f"<img src='{escape(src)}' alt='{escape(t)}'>" for t, src in s.plots)
                   + "</div>")
    return "\n".join(out)


def health_html(parts: dict[str, Any], failures: list[Failure]) -> str:
    out = ["<h2 id='health'>Feature health</h2>"]
    if failures:
        out.append("<div class='note'><b class='bad'>health check FAILED</b><ul>"
                   + "".join(f"<li>{escape(str(f))}</li>" for f in failures) + "</ul></div>")
    else:
        out.append("<p class='ok' id='health-ok'>health check passed</p>")
    out.append(_table(["table.column", "dim", "vectors", "null rows", "NaN", "Inf", "all-zero",
                       "norm min", "mean", "max"], [
        [f"{escape(c.table)}.{escape(c.column)}"
         + (" <small>(not written: optional, all null)</small>" if c.vectors == 0 else ""),
         c.dim, c.vectors, c.null_rows,
         f"<span class='{'bad' if c.nan else 'ok'}'>{c.nan:,}</span>",
         f"<span class='{'bad' if c.inf else 'ok'}'>{c.inf:,}</span>",
         f"<span class='{'bad' if c.zero else 'ok'}'>{c.zero:,}</span>",
         c.norm_min if c.vectors > c.nan + c.inf else float("nan"), c.norm_mean, c.norm_max]
        for c in parts["columns"]]))
    out.append("<div class='plots'>" + "".join(
        f"<img src='{escape(src)}' alt='{escape(t)}'>" for t, src in parts["plots"]) + "</div>")
    dup = parts["duplicates"]
    if dup is not None:
        out.append(f"<h3>Duplicate videos (mean CLIP embedding, cosine &ge; 0.99)</h3><p>"
                   f"{dup.videos:,} videos searched by {escape(dup.method)}: "
                   f"{dup.exact_pairs:,} identical pairs, {dup.near_pairs:,} near pairs, "
                   f"{len(dup.groups):,} groups.</p>")
        if dup.groups:
            out.append(_table(["group", "videos (best cosine)"], [
                [i, ", ".join(f"{escape(v)} ({c:.4f})" for v, c in g[:20])
                 + (f" ... {len(g) - 20} more" if len(g) > 20 else "")]
                for i, g in enumerate(dup.groups[:50])]))
    if parts.get("soft_rows"):
        share = parts["soft_low"] / parts["soft_rows"]
        out.append(f"<p>soft labels: {parts['soft_rows']:,} crops, low confidence "
                   f"(top prob under the threshold) <b>{share:.1%}</b></p>")
    return "\n".join(out)


def _section(sec: Section) -> str:
    out = [f"<div class='section {escape(sec.kind)}' data-kind='{escape(sec.kind)}'>"
           f"<h4>{escape(sec.title)}</h4>"]
    out += [f"<div class='note'>{escape(n)}</div>" for n in sec.notes]
    if sec.legend:
        out.append("<div class='legend'>" + "".join(
            f"<span><i class='swatch' style='background:{c}'></i>{escape(t)}</span>"
            for c, t in sec.legend) + "</div>")
    out.append("<div class='frames'>" + "".join(
        f"<figure{_attrs(p.attrs)}><img src='{escape(p.src)}' alt='{escape(p.caption)}'>"
        f"<figcaption>{escape(p.caption)}</figcaption></figure>" for p in sec.pictures)
        + "</div></div>")
    return "".join(out)


def card_html(card: Card) -> str:
    failed = " failed" if card.errors else ""
    facts = ", ".join(f"{k} {_n(v)}" for k, v in card.facts.items() if v is not None)
    out = [f"<div class='card{failed}' id='card-{escape(card.video_id)}' "
           f"data-video-id='{escape(card.video_id)}'><h3>{escape(card.video_id)}</h3>"
           f"<p><code>{escape(card.path)}</code><br>{facts}</p>"]
    if card.errors:
        out.append(_table(["stage", "error", "path"], [
            [escape(e["stage"]), f"<span class='bad'>{escape(e['error'])}</span>",
             escape(e["path"])] for e in card.errors]))
    if card.texts:
        out.append("<div class='texts'><h4>texts (<mark class='noun'>nouns</mark>, "
                   "<mark class='verb'>verbs</mark>)</h4><ul>")
        for t in card.texts:
            when = "" if t["start"] is None else f" {t['start']:.1f}-{t['end']:.1f}s"
            out.append(f"<li data-nouns='{len(t['nouns'])}' data-verbs='{len(t['verbs'])}'>"
                       f"<i>{escape(str(t['source']))}{when}</i>: {t['html']} "
                       f"<small>(marked from {escape(t['how'])})</small></li>")
        out.append("</ul></div>")
    out += [_section(sec) for sec in card.sections]
    out.append("</div>")
    return "".join(out)


def page(title: str, summary: Summary, throughput: dict[str, dict[str, float]],
         health: dict[str, Any], failures: list[Failure], cards: list[Card]) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    nav = " | ".join(f"<a href='#{a}'>{t}</a>" for a, t in (
        ("tables", "tables"), ("stages", "stages"), ("errors", "errors"), ("recipe", "recipe"),
        ("health", "health"), ("cards", "videos")))
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>vlprep report</h1><p><code>{escape(summary.store)}</code> &middot; made "
            f"{stamp} by vlprep {escape(vlprep.__version__)}</p><p>{nav}</p>"
            + summary_html(summary, throughput) + health_html(health, failures)
            + f"<h2 id='cards'>Videos ({len(cards)} cards)</h2>"
            + "".join(card_html(c) for c in cards) + "</body></html>")
