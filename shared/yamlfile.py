"""User-edited YAML files (taxonomy, routing rules) read with the line of every value.

So a mistake can be reported where the user made it: "rules.yaml:14: ...".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

# Where a value sits in the document: keys and list indices from the root.
YamlPath = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads a bare ``no`` (Norwegian) as false: only true/false are booleans."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class YamlFileError(ValueError):
    """Not valid YAML, or a key given twice; ``problems`` are (line, message) in file order."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        super().__init__("\n".join(message for _, message in problems))
        self.problems = problems


@dataclass(frozen=True)
class YamlDocument:
    data: Any
    lines: Mapping[YamlPath, int]
    source: str


def nearest_line(location: YamlPath, lines: Mapping[YamlPath, int]) -> int | None:
    """The line of a value, or of the nearest enclosing one that has a line."""
    for end in range(len(location), -1, -1):
        if location[:end] in lines:
            return lines[location[:end]]
    return None


def read_yaml(text: str, source: str) -> YamlDocument:
    """Parse a YAML document, refusing syntax errors and keys given twice, with their lines."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark is not None else 0
        where = f"{source}:{line}" if mark is not None else source
        raise YamlFileError([(line, f"{where}: not valid YAML: {problem}")]) from None
    finally:
        loader.dispose()
    if node is None:
        return YamlDocument(None, {}, source)
    # YAML keeps the last of two equal keys without a word: a second "da:" list or a second
    # "category:" would silently replace the first.
    repeated = _repeated_keys(node, source)
    if repeated:
        raise YamlFileError(repeated)
    return YamlDocument(data, _lines_of(node), source)


def _lines_of(node: yaml.Node, path: YamlPath = ()) -> dict[YamlPath, int]:
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                lines.update(_lines_of(value, (*path, key.value)))
                lines[(*path, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_lines_of(item, (*path, index)))
    return lines


def _repeated_keys(node: yaml.Node, source: str) -> list[tuple[int, str]]:
    problems = []
    if isinstance(node, yaml.MappingNode):
        seen: set[object] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                line = key.start_mark.line + 1
                if key.value in seen:
                    problems.append((line, f"{source}:{line}: {key.value!r} appears twice here"))
                seen.add(key.value)
            problems.extend(_repeated_keys(value, source))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            problems.extend(_repeated_keys(item, source))
    return problems
