"""A document as a list of blocks, written as Markdown or as one self-contained HTML file.

Blocks: ("h1" | "h2" | "h3" | "p", text), ("ul", [text, ...]), ("table", header, rows),
("img", alt, path). Text may hold **bold**, *italics*, `code` and [label](relative link). The HTML has its
style inline and every image embedded as base64: no file or address outside it is needed to read it
(links to the other charts stay relative links).
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

Block = tuple
INLINE = (
    (re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])"), r"<em>\1</em>"),
    (re.compile(r"`(.+?)`"), r"<code>\1</code>"),
    (re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)"), r'<a href="\2">\1</a>'),
)
STYLE = """body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}th{background:#f2f2f2}
code{background:#f4f4f4;padding:0 .2em;border-radius:3px}img{max-width:100%;height:auto;border:1px solid #eee}
h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}"""
MIME = {".png": "image/png", ".svg": "image/svg+xml"}


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block]) -> str:
    out = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            out.append(f"{'#' * int(kind[1])} {block[1]}")
        elif kind == "p":
            out.append(block[1])
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            header, rows = block[1], block[2]
            lines = ["| " + " | ".join(map(_cell, header)) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in rows]
            out.append("\n".join(lines))
        elif kind == "img":
            out.append(f"![{block[1]}]({block[2]})")
    return "\n\n".join(out) + "\n"


def _inline(text: object) -> str:
    escaped = html.escape(str(text), quote=False)
    for pattern, replacement in INLINE:
        escaped = pattern.sub(replacement, escaped)
    return escaped


def to_html(blocks: list[Block], base: Path, title: str) -> str:
    """The document as HTML; ("img", alt, path) reads base / path and embeds it."""
    out = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>",
           f"<style>{STYLE}</style></head><body>"]  # fmt: skip
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3", "p"):
            out.append(f"<{kind}>{_inline(block[1])}</{kind}>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{_inline(h)}</th>" for h in block[1])
            body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in block[2])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "img":
            path = base / block[2]
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            src = f"data:{MIME.get(path.suffix, 'application/octet-stream')};base64,{data}"
            out.append(f'<p><img alt="{html.escape(block[1])}" src="{src}"></p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"
