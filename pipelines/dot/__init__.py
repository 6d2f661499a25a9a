"""Diagram of Thought: the reasoning DAG, its tolerant parser and its chat renderings."""

from pipelines.dot.graph import NODE_KINDS, Attachment, DotGraph, DotGraphError, DotNode
from pipelines.dot.parse import graph_to_xml, parse_dot
from pipelines.dot.render import outline, render_png

__all__ = [
    "NODE_KINDS",
    "Attachment",
    "DotGraph",
    "DotGraphError",
    "DotNode",
    "graph_to_xml",
    "outline",
    "parse_dot",
    "render_png",
]
