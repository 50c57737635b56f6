"""The leaderboard site: one self-contained ``index.html`` built from the board files.

``python -m bench report --html`` writes ``<leaderboards>/index.html``: every board, grouped
by the question it answers, its provenance header kept, its plots inlined as data URIs and
its tables sortable by a click on a column head. It needs no server and no network: open
it from disk. A URL fragment ``#sort=<table id>:<column>:<asc|desc>`` sorts a table on load
(what the test drives a headless browser with).
"""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import markdown

from .store import atomic_write

#: track -> the question its boards answer, in the order the site shows them
QUESTIONS = {"detection": "Which identifier finds planted and real hardness?",
             "reference": "Which identifier agrees with a reference hardness (C-scores)?",
             "split": "Which identifier's hard samples move test accuracy (split, pathways)?",
             "pathways": "Which identifier's hard samples move test accuracy (split, pathways)?",
             "resampling": "Which identifier's class hardness helps resampling?",
             "geometry": "Which identifier agrees with the exact geometry of a ReLU network?",
             "meta": "How stable, how alike and how costly are the identifiers?"}

SCRIPT = """
function cellValue(row, column) {
  const text = row.cells[column] ? row.cells[column].textContent.trim() : "";
  const number = /^[-+−]?[0-9]*\\.?[0-9]+/.exec(text);
  return number ? parseFloat(number[0].replace("−", "-")) : text.toLowerCase();
}
function sortTable(table, column, ascending) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = cellValue(a, column), y = cellValue(b, column);
    const order = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
    return ascending ? order : -order;
  });
  rows.forEach(row => body.appendChild(row));
  table.dataset.sorted = column + ":" + (ascending ? "asc" : "desc");
}
document.querySelectorAll("table").forEach(table => {
  Array.from(table.tHead ? table.tHead.rows[0].cells : []).forEach((head, column) => {
    head.title = "sort";
    head.addEventListener("click", () => {
      const ascending = table.dataset.sorted !== column + ":asc";
      sortTable(table, column, ascending);
    });
  });
});
const wanted = /sort=([^:]+):(\\d+):(asc|desc)/.exec(decodeURIComponent(location.hash));
if (wanted) {
  const table = document.getElementById(wanted[1]);
  if (table) sortTable(table, parseInt(wanted[2]), wanted[3] === "asc");
}
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; display: flex; }
nav { width: 18em; padding: 1em; background: #f4f4f4; height: 100vh; overflow-y: auto; position: sticky; top: 0;
      font-size: 0.85em; }
main { padding: 1em 2em; max-width: 75em; overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; }
th { background: #eee; cursor: pointer; }
img { max-width: 100%; }
section.board { border-top: 2px solid #888; margin-top: 2em; }
"""


def _inline_images(text: str, folder: Path) -> str:
    def data_uri(match):
        path = folder / html.unescape(match.group(1))
        if not path.exists():
            return match.group(0)
        return 'src="data:image/png;base64,' + base64.b64encode(path.read_bytes()).decode("ascii") + '"'

    return re.sub(r'src="([^"]+\.png)"', data_uri, text)


def board_html(path: Path, anchor: str) -> str:
    """One board as an HTML section, its tables numbered ``<anchor>-t<k>`` and its plots inlined."""
    body = markdown.markdown(path.read_text(), extensions=["tables"])
    counter = iter(range(10_000))
    body = re.sub(r"<table>", lambda _: f'<table id="{anchor}-t{next(counter)}">', body)
    return f'<section class="board" id="{anchor}">{_inline_images(body, path.parent)}</section>'


def write_site(out_dir: str | Path) -> Path:
    """``index.html`` of every board in ``out_dir``, grouped by question."""
    out_dir = Path(out_dir)
    boards = sorted(p for p in out_dir.glob("*/*.md"))
    by_question: dict[str, list[Path]] = {}
    for path in boards:
        track = path.stem.split("-")[0]
        by_question.setdefault(QUESTIONS.get(track, "Other boards"), []).append(path)
    order = list(dict.fromkeys([*QUESTIONS.values(), "Other boards"]))
    nav, sections = [], []
    overview = out_dir / "README.md"
    if overview.exists():
        sections.append(board_html(overview, "overview"))
        nav.append('<p><a href="#overview">Overview</a></p>')
    for question in order:
        paths = by_question.get(question, [])
        if not paths:
            continue
        nav.append(f"<h4>{html.escape(question)}</h4><ul>")
        sections.append(f"<h1>{html.escape(question)}</h1>")
        for path in paths:
            anchor = re.sub(r"[^A-Za-z0-9_-]", "_", f"{path.parent.name}--{path.stem}")
            nav.append(f'<li><a href="#{anchor}">{html.escape(path.parent.name)}/{html.escape(path.stem)}</a></li>')
            sections.append(board_html(path, anchor))
        nav.append("</ul>")
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>hardbench leaderboards</title>'
            f"<style>{STYLE}</style></head><body><nav><h3>hardbench</h3>{''.join(nav)}</nav>"
            f"<main>{''.join(sections)}</main><script>{SCRIPT}</script></body></html>\n")
    path = out_dir / "index.html"
    atomic_write(path, lambda tmp: tmp.write_text(page))
    return path
