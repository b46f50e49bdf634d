"""Markdown to one self-contained HTML page: figures embedded, the leaderboard sortable.

``report.md`` is the single source; the HTML is that Markdown rendered with markdown-it, its
images inlined as base64 PNGs so the page can be mailed or archived as one file.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

#: The section whose first table becomes the sortable ``#leaderboard``.
LEADERBOARD_TITLE = "Leaderboard"

_STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328;
       max-width: 1300px; margin: 2em auto; padding: 0 1.5em; }
h1 { font-size: 1.7em; border-bottom: 1px solid #d0d7de; padding-bottom: .3em; }
h2 { font-size: 1.35em; margin-top: 2em; border-bottom: 1px solid #d0d7de; padding-bottom: .2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #d0d7de; padding: 4px 9px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
tr:nth-child(even) td { background: #fbfcfd; }
code { background: #f0f2f4; padding: 1px 4px; border-radius: 4px; font-size: 90%; }
img { max-width: 100%; height: auto; display: block; margin: 1em 0; }
table.sortable th { cursor: pointer; user-select: none; white-space: nowrap; }
table.sortable th[data-order="asc"]::after { content: " ▲"; }
table.sortable th[data-order="desc"]::after { content: " ▼"; }
"""

# Click a header to sort by it; again to reverse. A column sorts by number when its cells start
# with one ("0.63 ± 0.01", "[0.60, 0.66]", "1,234"); cells without one ("—") go last.
_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var number = function (cell) {
    var match = cell.textContent.replace(/,/g, "").match(/^[\\s★\\[]*(-?\\d+(\\.\\d+)?(e[-+]?\\d+)?)/i);
    return match ? parseFloat(match[1]) : NaN;
  };
  table.querySelectorAll("thead th").forEach(function (header) {
    header.title = "click to sort";
    header.addEventListener("click", function () {
      var column = header.cellIndex, body = table.tBodies[0], rows = Array.from(body.rows);
      var ascending = header.dataset.order !== "asc";
      table.querySelectorAll("thead th").forEach(function (th) { delete th.dataset.order; });
      header.dataset.order = ascending ? "asc" : "desc";
      var numeric = rows.some(function (row) { return !isNaN(number(row.cells[column])); });
      rows.sort(function (a, b) {
        if (!numeric) {
          var order = a.cells[column].textContent.localeCompare(b.cells[column].textContent);
          return ascending ? order : -order;
        }
        var x = number(a.cells[column]), y = number(b.cells[column]);
        if (isNaN(x) || isNaN(y)) { return isNaN(x) - isNaN(y); }
        return ascending ? x - y : y - x;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def render_html(markdown_text: str, folder: Path, title: str) -> str:
    """The Markdown report as one HTML page; images are read from ``folder`` and embedded."""
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = parser.parse(markdown_text)
    _embed_images(tokens, folder)
    _mark_leaderboard(tokens)
    body = parser.renderer.render(tokens, parser.options, {})
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"{body}\n<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )


def _embed_images(tokens, folder: Path) -> None:
    for token in tokens:
        for child in token.children or ():
            if child.type == "image" and not child.attrGet("src").startswith(("http:", "https:", "data:")):
                data = base64.b64encode((folder / child.attrGet("src")).read_bytes()).decode("ascii")
                child.attrSet("src", f"data:image/png;base64,{data}")


def _mark_leaderboard(tokens) -> None:
    """Give the first table after the leaderboard heading its id and the sortable class."""
    in_leaderboard = False
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            in_leaderboard = tokens[index + 1].content.strip() == LEADERBOARD_TITLE
        elif token.type == "table_open" and in_leaderboard:
            token.attrSet("id", "leaderboard")
            token.attrSet("class", "sortable")
            return
