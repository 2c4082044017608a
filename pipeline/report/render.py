"""One document model, two renderings: self-contained HTML and Markdown with its figures beside it.

A :class:`Document` is a list of sections holding paragraphs, bullet lists, tables (pandas
DataFrames of already formatted strings, optionally with cells to highlight) and figures (PNG
bytes). :func:`write_document` writes it atomically (:func:`pipeline.store.atomic_output`): the
HTML embeds every figure as a ``data:image/png;base64`` URI and references nothing outside the
file (no scripts, fonts, styles or images from anywhere); the Markdown refers to
``<stem>_files/<figure>.png``, written into a temporary directory and renamed into place.
Output is deterministic: no timestamps, fixed number formats.
"""

from __future__ import annotations

import base64
import html
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import OptionError
from pipeline.store import atomic_output

FORMATS = ("html", "md", "both")


@dataclass
class Para:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    data: pd.DataFrame                     # cells as strings
    caption: str = ""
    highlight: pd.DataFrame | None = None  # same shape, True = highlighted cell


@dataclass
class Figure:
    name: str                              # file stem for Markdown (unique in the document)
    png: bytes
    caption: str = ""


@dataclass
class Section:
    title: str
    blocks: list[Any] = field(default_factory=list)
    level: int = 2

    def add(self, block: Any) -> Section:
        self.blocks.append(block)
        return self


@dataclass
class Document:
    title: str
    intro: list[Any] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)

    def section(self, title: str, level: int = 2) -> Section:
        s = Section(title, level=level)
        self.sections.append(s)
        return s

    def figures(self) -> list[Figure]:
        return [b for s in [Section("", self.intro)] + self.sections for b in s.blocks if isinstance(b, Figure)]


# --- number formatting -----------------------------------------------------------------------------

def fmt_num(v: Any, spec: str = ",.1f") -> str:
    """A number with ``spec``; "-" for missing or non-finite values; strings pass through."""
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not np.isfinite(f):
        return "-"
    if spec.endswith("d"):
        return format(int(round(f)), spec)
    return format(f, spec)


def fmt_table(df: pd.DataFrame, formats: dict[str, str | Callable[[Any], str]] | None = None,
              rename: dict[str, str] | None = None, index: bool = False) -> pd.DataFrame:
    """Every cell as a string: ``formats`` per column (format spec or function), others by type."""
    d = df.reset_index() if index else df.copy()
    formats = formats or {}
    out = pd.DataFrame(index=range(len(d)))
    for c in d.columns:
        f = formats.get(c)
        col = d[c].tolist()
        if callable(f):
            out[c] = [f(v) for v in col]
        elif f is not None:
            out[c] = [fmt_num(v, f) for v in col]
        elif pd.api.types.is_integer_dtype(d[c]):
            out[c] = [fmt_num(v, ",d") for v in col]
        elif pd.api.types.is_float_dtype(d[c]):
            out[c] = [fmt_num(v, ",.2f") for v in col]
        else:
            out[c] = ["-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else str(v) for v in col]
    if rename:
        out = out.rename(columns=rename)
    return out


# --- HTML ------------------------------------------------------------------------------------------

_CSS = """
body{font-family:sans-serif;margin:2em auto;max-width:1100px;color:#222;line-height:1.4}
h1{font-size:1.6em}h2{font-size:1.3em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
h3{font-size:1.1em}table{border-collapse:collapse;margin:.5em 0 1em;font-size:.85em}
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:right;vertical-align:top}
th{background:#f2f2f2}td.l{text-align:left}td.hl{background:#ffe08a;font-weight:bold}
caption{caption-side:top;text-align:left;font-weight:bold;padding:.3em 0}
figure{margin:1em 0}figcaption{font-size:.85em;color:#555}img{max-width:100%}
"""


def _html_table(t: Table) -> str:
    e = html.escape
    parts = ["<table>"]
    if t.caption:
        parts.append(f"<caption>{e(t.caption)}</caption>")
    parts.append("<thead><tr>" + "".join(f"<th>{e(str(c))}</th>" for c in t.data.columns) + "</tr></thead><tbody>")
    for i in range(len(t.data)):
        cells = []
        for j in range(len(t.data.columns)):
            v = str(t.data.iat[i, j])
            cls = []
            if not _looks_numeric(v):
                cls.append("l")
            if t.highlight is not None and bool(t.highlight.iat[i, j]):
                cls.append("hl")
            ca = f' class="{" ".join(cls)}"' if cls else ""
            cells.append(f"<td{ca}>{e(v)}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    return "\n".join(parts)


def _looks_numeric(v: str) -> bool:
    s = v.replace(",", "").replace("%", "").replace("x", "").replace("+", "").replace("-", "").strip()
    return s.replace(".", "", 1).isdigit() or v == "-"


def render_html(doc: Document) -> str:
    """The document as one self-contained HTML page (figures as base64 PNG data URIs)."""
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{e(doc.title)}</title>", f"<style>{_CSS}</style></head><body>", f"<h1>{e(doc.title)}</h1>"]

    def blocks(bs: list[Any]) -> None:
        for b in bs:
            if isinstance(b, Para):
                out.append(f"<p>{e(b.text)}</p>")
            elif isinstance(b, Bullets):
                out.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in b.items) + "</ul>")
            elif isinstance(b, Table):
                out.append(_html_table(b))
            elif isinstance(b, Figure):
                data = base64.b64encode(b.png).decode("ascii")
                out.append(f'<figure><img alt="{e(b.caption or b.name)}" src="data:image/png;base64,{data}">'
                           + (f"<figcaption>{e(b.caption)}</figcaption>" if b.caption else "") + "</figure>")

    blocks(doc.intro)
    for s in doc.sections:
        lvl = min(max(s.level, 2), 4)
        out.append(f"<h{lvl}>{e(s.title)}</h{lvl}>")
        blocks(s.blocks)
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# --- Markdown --------------------------------------------------------------------------------------

def _md_cell(v: str) -> str:
    return v.replace("|", "\\|").replace("\n", " ")


def _md_table(t: Table) -> str:
    lines = []
    if t.caption:
        lines += [f"*{t.caption}*", ""]
    cols = [str(c) for c in t.data.columns]
    lines.append("| " + " | ".join(_md_cell(c) for c in cols) + " |")
    numeric = [len(t.data) > 0 and all(_looks_numeric(str(v)) for v in t.data.iloc[:, j]) for j in range(len(cols))]
    lines.append("|" + "|".join("---:" if numeric[j] else "---" for j in range(len(cols))) + "|")
    for i in range(len(t.data)):
        cells = []
        for j in range(len(cols)):
            v = _md_cell(str(t.data.iat[i, j]))
            if t.highlight is not None and bool(t.highlight.iat[i, j]):
                v = f"**{v}**"
            cells.append(v)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_markdown(doc: Document, figures_dir: str) -> str:
    """The document as Markdown; figures referenced as ``figures_dir/<name>.png``."""
    out = [f"# {doc.title}", ""]

    def blocks(bs: list[Any]) -> None:
        for b in bs:
            if isinstance(b, Para):
                out.extend([b.text, ""])
            elif isinstance(b, Bullets):
                out.extend([f"- {i}" for i in b.items] + [""])
            elif isinstance(b, Table):
                out.extend([_md_table(b), ""])
            elif isinstance(b, Figure):
                out.extend([f"![{b.caption or b.name}]({figures_dir}/{b.name}.png)", ""])
                if b.caption:
                    out.extend([f"*{b.caption}*", ""])

    blocks(doc.intro)
    for s in doc.sections:
        out.extend(["#" * min(max(s.level, 2), 4) + " " + s.title, ""])
        blocks(s.blocks)
    return "\n".join(out).rstrip() + "\n"


# --- writing ---------------------------------------------------------------------------------------

def output_paths(out: str | os.PathLike, fmt: str) -> dict[str, Path]:
    """Where a report goes: ``out`` with .html / .md (a given .html/.md suffix is replaced) and the
    Markdown figures directory ``<stem>_files``."""
    if fmt not in FORMATS:
        raise OptionError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    p = Path(out)
    if p.suffix.lower() in (".html", ".htm", ".md"):
        p = p.with_suffix("")
    if p.exists() and p.is_dir():
        raise OptionError(f"--out {out}: is a directory; give a file path such as {p / 'report'}")
    paths: dict[str, Path] = {}
    if fmt in ("html", "both"):
        paths["html"] = p.with_name(p.name + ".html")
    if fmt in ("md", "both"):
        paths["md"] = p.with_name(p.name + ".md")
        paths["figures"] = p.with_name(p.name + "_files")
    return paths


def _replace_dir(tmp: Path, dest: Path) -> None:
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=dest.parent))
        os.replace(dest, old / "d")
    os.replace(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_document(doc: Document, out: str | os.PathLike, fmt: str = "both") -> dict[str, Path]:
    """Write the HTML and/or Markdown (with figures) atomically; returns what was written."""
    paths = output_paths(out, fmt)
    any_path = next(iter(paths.values()))
    any_path.parent.mkdir(parents=True, exist_ok=True)
    html_text = render_html(doc) if "html" in paths else None
    md_text = render_markdown(doc, paths["figures"].name) if "md" in paths else None
    if "figures" in paths:
        figs = doc.figures()
        names = [f.name for f in figs]
        if len(set(names)) != len(names):
            raise ValueError(f"figure names are not unique: {names}")
        tmp = Path(tempfile.mkdtemp(prefix=f".{paths['figures'].name}.", suffix=".tmp", dir=any_path.parent))
        try:
            for f in figs:
                (tmp / f"{f.name}.png").write_bytes(f.png)
            os.chmod(tmp, 0o755)
            with atomic_output(paths["md"]) as tmp_md:
                tmp_md.write_text(md_text, encoding="utf-8")
                _replace_dir(tmp, paths["figures"])
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if html_text is not None:
        with atomic_output(paths["html"]) as tmp_html:
            tmp_html.write_text(html_text, encoding="utf-8")
    return paths
