"""mkdocs hook: the parts of the documentation generated from the code, so they cannot
drift — the table of model keys and creation arguments (from `models`, which checks them),
the command-line reference (from the argument parsers) and the limits (the README's)."""

from __future__ import annotations

import re
from pathlib import Path

from service_framework import models
from service_framework.cli import build_parser, proxy, topology

ROOT = Path(__file__).resolve().parents[1]


def _keys() -> str:
    lines = ["| type | creation argument | takes |", "|---|---|---|"]
    lines += [f"| {kind} | `{key}` | {what} |" for kind, key, what in models.creation_table()]
    lines += ["", "Model keys of a connection: " + ", ".join(
        f"`{key}`" for key in sorted(models.CONNECTION_MODEL_KEYS)) + ".",
              "", "Model keys of a state: " + ", ".join(
        f"`{key}`" for key in sorted(models.STATE_MODEL_KEYS)) + ".",
              "", "Connection types: " + ", ".join(
        f"`{kind}` ({side})" for kind, side in models.CONNECTION_SIDES.items()) + ".",
              "", "State types: " + ", ".join(f"`{kind}`" for kind in models.STATE_KINDS) + "."]
    return "\n".join(lines)


def _cli() -> str:
    parsers = [build_parser(), proxy.build_parser(), topology.build_parser()]
    return "\n\n".join(f"```text\n{parser.format_help()}```" for parser in parsers)


def _limits() -> str:
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Limits\n(.*?)(?=^## )", readme, re.MULTILINE | re.DOTALL)
    return section.group(1).strip() if section else "(the README has no Limits section)"


def _topology(addresses: str, *services: str) -> str:
    """The picture `service_framework topology` draws of an example (its services given)."""
    drawn = topology.build([ROOT / addresses], [str(ROOT / service) for service in services])
    return f"```mermaid\n{topology.mermaid(drawn)}```"


GENERATED = {"keys": _keys, "cli": _cli, "limits": _limits, "topology": _topology}


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 - mkdocs API
    return re.sub(r"<!-- generated: (\w+)((?: \S+)*) -->",
                  lambda m: GENERATED[m.group(1)](*m.group(2).split()), markdown)
