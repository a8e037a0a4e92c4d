"""The topology as a self-contained HTML page: an SVG drawn here (no script, nothing
fetched), the problems found, and the Mermaid text for pasting elsewhere."""

from __future__ import annotations

import html
import math
from typing import Any

WIDTH, HEIGHT, BOX_W, BOX_H = 900, 640, 170, 44
_COLOURS = {"request": "#1f6feb", "publish": "#8250df", "state": "#1a7f37",
            "snapshot": "#9a6700"}


def _positions(names: list[str]) -> dict[str, tuple[float, float]]:
    """Services on a circle, in the order given: the same input draws the same picture."""
    count = max(len(names), 1)
    radius = min(WIDTH, HEIGHT) / 2 - BOX_H * 2
    return {name: (WIDTH / 2 + radius * math.cos(2 * math.pi * i / count - math.pi / 2),
                   HEIGHT / 2 + radius * math.sin(2 * math.pi * i / count - math.pi / 2))
            for i, name in enumerate(names)}


def svg(topology: Any) -> str:
    where = _positions(topology.services)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
             'markerHeight="8" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/>'
             '</marker></defs>']
    for number, link in enumerate(topology.links):
        (x1, y1), (x2, y2) = where[link.sender.service], where[link.receiver.service]
        shift = 6 * (number % 3 - 1)  # links between the same two services stay apart
        colour = _COLOURS.get(link.kind, "#555")
        bound = link.receiver if link.receiver.binds else link.sender
        label = html.escape(f"{link.sender.name} ({link.kind}) {bound.endpoint}")
        parts.append(f'<line x1="{x1:.0f}" y1="{y1 + shift:.0f}" x2="{x2:.0f}" '
                     f'y2="{y2 + shift:.0f}" stroke="{colour}" stroke-width="1.5" '
                     f'marker-end="url(#arrow)"><title>{label}</title></line>')
        parts.append(f'<text x="{(x1 + x2) / 2:.0f}" y="{(y1 + y2) / 2 + shift - 4:.0f}" '
                     f'fill="{colour}" text-anchor="middle">{label}</text>')
    for name, (x, y) in where.items():
        parts.append(f'<rect x="{x - BOX_W / 2:.0f}" y="{y - BOX_H / 2:.0f}" width="{BOX_W}" '
                     f'height="{BOX_H}" rx="8" fill="#f6f8fa" stroke="#24292f"/>')
        parts.append(f'<text x="{x:.0f}" y="{y + 4:.0f}" text-anchor="middle" '
                     f'font-weight="bold">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def html_page(topology: Any, mermaid_text: str) -> str:
    problems = "".join(f"<li>{html.escape(problem)}</li>" for problem in topology.problems)
    return ("<!doctype html>\n<html><head><meta charset='utf-8'><title>topology</title>"
            "</head><body>\n<h1>Services</h1>\n" + svg(topology) +
            f"\n<h2>Problems</h2>\n<ul>{problems or '<li>none</li>'}</ul>\n"
            f"<h2>Mermaid</h2>\n<pre>{html.escape(mermaid_text)}</pre>\n</body></html>\n")
