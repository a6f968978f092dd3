"""The pieces every tlhub page is made of: one static, self-contained HTML file (no script, no network).

Pictures are embedded as base64 PNG ``data:`` URIs; every piece of user text goes through ``esc``.
"""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path
from string import Template

PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<link rel="icon" href="data:,">
<style>
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1d2330;
       background: #f6f7f9; margin: 0; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 2px solid #dfe3ea; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.sub { color: #5b6475; margin: 0 0 18px; }
.tiles { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.tile { background: #fff; border: 1px solid #dfe3ea; border-radius: 8px; padding: 10px 16px; min-width: 120px; }
.tile .v { font-size: 26px; font-weight: 650; font-variant-numeric: tabular-nums; }
.tile .k { color: #5b6475; font-size: 13px; }
.tile.main { border-color: #1f6feb; box-shadow: 0 0 0 1px #1f6feb inset; }
table { border-collapse: collapse; background: #fff; margin: 6px 0 12px; font-size: 14px; }
th, td { border: 1px solid #dfe3ea; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #eef1f5; font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.bad td { color: #b3261e; }
td.frozen { color: #5b6475; }
td.trainable { color: #1a7f37; font-weight: 600; background: #f0f9f1; }
td.trainable small, td.frozen small { font-weight: 400; color: #3d4656; }
pre { background: #fff; border: 1px solid #dfe3ea; border-radius: 6px; padding: 10px 14px; overflow-x: auto;
      font-size: 13px; line-height: 1.35; }
pre.recipe { column-width: 330px; column-gap: 28px; column-rule: 1px solid #eef1f5; white-space: pre-wrap;
             overflow-wrap: anywhere; }
img.fig { max-width: 100%; height: auto; background: #fff; border: 1px solid #dfe3ea; border-radius: 6px; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
figure.thumb { margin: 0; width: 150px; background: #fff; border: 1px solid #dfe3ea; border-radius: 6px;
               padding: 6px; font-size: 12.5px; }
figure.thumb img { width: 136px; height: 136px; image-rendering: pixelated; display: block; margin: 0 auto 4px; }
figure.thumb.bad { border: 2px solid #b3261e; }
.row { display: flex; flex-wrap: wrap; gap: 8px 28px; align-items: flex-start; }
.muted { color: #5b6475; }
.note { color: #5b6475; font-size: 13px; }
</style>
</head>
<body>
<main>
$body
</main>
</body>
</html>
""")


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def page(title: str, body: str) -> str:
    return PAGE.substitute(title=esc(title), body=body)


def num(value, digits: int = 4) -> str:
    """A number for a table cell; '—' when absent."""
    if value is None:
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{float(value):.{digits}f}"


@dataclass(frozen=True)
class Cell:
    """A table cell: escaped text, right-aligned when numeric, with an optional CSS class."""

    text: str
    numeric: bool = False
    css: str = ""
    raw: bool = False  # text is already HTML (built by this package)


def table(headers: list[str], rows: list[list], row_css: list[str] | None = None, numeric: set[int] = frozenset()) -> str:
    """Rows of plain values or ``Cell``s; columns in ``numeric`` are right-aligned."""
    head = "".join(f'<th class="n">{esc(h)}</th>' if i in numeric else f"<th>{esc(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        cells = []
        for i, c in enumerate(row):
            c = c if isinstance(c, Cell) else Cell(str(c), numeric=i in numeric)
            css = " ".join(x for x in ("n" if c.numeric else "", c.css) if x)
            attr = f' class="{css}"' if css else ""
            cells.append(f"<td{attr}>{c.text if c.raw else esc(c.text)}</td>")
        cls = f' class="{row_css[r]}"' if row_css and row_css[r] else ""
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figure(path: Path, alt: str) -> str:
    """An embedded PNG from a file, or a note saying which file is missing."""
    if not path.is_file():
        return f'<p class="note">({esc(path.name)} not found in the run directory)</p>'
    return f'<img class="fig" src="{png_uri(path.read_bytes())}" alt="{esc(alt)}">'


def fig_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (closed afterwards)."""
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return buf.getvalue()
