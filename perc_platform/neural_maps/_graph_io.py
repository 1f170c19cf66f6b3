"""Density graphs on disk with their edges: node-link JSON (networkx), read back as the same graph."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import networkx as nx

from perc_platform.errors import DataNotFoundError, FormatError

__all__ = ["read_graph", "write_graph"]

GRAPH_FORMAT = "perc-density-graph/1"


def write_graph(graph: nx.Graph, path: str | os.PathLike[str]) -> Path:
    """Write ``graph`` (nodes with ``position``, edges with ``distance``, graph parameters) as JSON.

    The file is ``networkx.node_link_data`` plus a ``format`` tag; it is written whole, then renamed
    into place, so no partial file is left behind.
    """
    target = Path(path)
    data = nx.node_link_data(graph, edges="edges")
    data["format"] = GRAPH_FORMAT
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(json.dumps(data, default=_plain))
    partial.replace(target)
    return target


def read_graph(path: str | os.PathLike[str]) -> nx.Graph:
    """Read a graph written by :func:`write_graph` (positions back as ``(x, y, z)`` tuples)."""
    source = Path(path)
    if not source.is_file():
        raise DataNotFoundError(f"graph file {source} does not exist; write one with write_graph")
    try:
        data = json.loads(source.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"{source}: not a JSON density graph ({exc})") from exc
    if not isinstance(data, dict) or data.pop("format", None) != GRAPH_FORMAT:
        raise FormatError(f"{source}: not a {GRAPH_FORMAT} file; write it with write_graph")
    try:
        graph = nx.node_link_graph(data, edges="edges")
    except (KeyError, TypeError, nx.NetworkXError) as exc:
        raise FormatError(f"{source}: malformed node-link data ({exc})") from exc
    for n in graph.nodes:
        if "position" in graph.nodes[n]:
            graph.nodes[n]["position"] = tuple(float(v) for v in graph.nodes[n]["position"])
    return graph


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to a graph file")
