"""YAML data files with the line of every mapping (``__line__``), so a bad entry is reported as
``file:line``. The fault catalog and the signature catalog both read their files through here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class YamlFileError(ValueError):
    """A data file that is not valid YAML; the message is ``file:line: YAML error: ...``."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that records the line of every mapping."""


def _mapping_with_line(loader: _Loader, node: yaml.MappingNode) -> dict[str, Any]:
    data: dict[str, Any] = {str(k): v for k, v in loader.construct_mapping(node, deep=True).items()}
    data["__line__"] = node.start_mark.line + 1
    return data


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


def read_yaml(path: Path) -> Any:
    """Parse ``path``; mappings carry ``__line__``. Raises YamlFileError or OSError."""
    text = path.read_text(encoding="utf-8")
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlFileError(f"{path}{line}: YAML error: {problem}") from exc
