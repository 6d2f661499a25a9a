"""YAML data files with the line of every mapping (``__line__``), so a bad entry is reported as
``file:line``, and the field readers both catalogs validate entries with (a ``ValueError`` naming
the field). The fault catalog and the signature catalog both read their files through here."""

from __future__ import annotations

from collections.abc import Collection, Mapping
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


def str_list(value: Any, what: str, *, non_empty: bool = False) -> tuple[str, ...]:
    """An optional list of strings (stripped, and each non-empty when asked)."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and (v.strip() or not non_empty) for v in value):
        raise ValueError(f"field '{what}': must be a list of {'non-empty ' if non_empty else ''}strings")
    return tuple(v.strip() for v in value) if non_empty else tuple(value)


def choice(raw: Mapping[str, Any], name: str, allowed: Collection[str], default: Any = None) -> Any:
    """A field whose value must be one of ``allowed`` (``default`` when absent)."""
    value = raw.get(name, default)
    if value not in allowed:
        raise ValueError(f"field '{name}': {value!r} is not one of {', '.join(allowed)}")
    return value
