"""Hostile-input-proof YAML loading with source positions. Pure.

Pipeline position: the first step of hvlm.manifest. Turns bytes into plain Python data plus a map
from document path to (line, column), or a list of located Diagnostics. Bounded: file size,
nesting depth and the number of nodes after alias expansion (so an alias bomb costs microseconds,
not gigabytes), duplicate keys detected (PyYAML silently keeps the last one), no custom tags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from hvlm.errors import Diagnostic, Severity

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_NODES = 200_000
MAX_ALIAS_NODES = 10_000  # nodes reached again through aliases (anchors for defaults are fine)

Path = tuple[str | int, ...]
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


@dataclass(frozen=True)
class Loaded:
    data: Any
    positions: dict[Path, tuple[int, int]]  # path -> (line, column), 1-based
    key_positions: dict[Path, tuple[int, int]]  # path of a mapping key -> its own position


class _TooBig(Exception):
    def __init__(self, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.mark = mark


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _error(file: str, message: str, mark: yaml.Mark | None = None, path: Path = ()) -> Diagnostic:
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
    return Diagnostic(Severity.ERROR, message, file, line, col, format_path(path))


def _decode(raw: bytes, file: str) -> tuple[str | None, Diagnostic | None]:
    if len(raw) > MAX_BYTES:
        return None, _error(file, f"file is {len(raw)} bytes; the limit is {MAX_BYTES}")
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        return None, Diagnostic(
            Severity.ERROR, "binary data (NUL byte): not a YAML manifest", file, line, 1
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, Diagnostic(
            Severity.ERROR, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})", file, line, col
        )
    return text.removeprefix("\ufeff"), None


class _Loader(yaml.SafeLoader):
    """SafeLoader whose composer refuses deep nesting before recursing into it."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _TooBig(
                    f"nesting deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _Builder:
    """Walks a composed node graph into Python data, counting every node it expands."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.count = 0
        self.aliased = 0
        self.seen: set[int] = set()
        self.positions: dict[Path, tuple[int, int]] = {}
        self.key_positions: dict[Path, tuple[int, int]] = {}
        self.duplicates: list[tuple[str, yaml.Mark, Path]] = []

    def build(self, node: yaml.Node, path: Path, depth: int) -> Any:
        self.count += 1
        if id(node) in self.seen:
            self.aliased += 1
            if self.aliased > MAX_ALIAS_NODES:
                raise _TooBig(
                    f"YAML aliases expand to more than {MAX_ALIAS_NODES} nodes (alias bomb?)",
                    node.start_mark,
                )
        elif not isinstance(node, yaml.ScalarNode):
            self.seen.add(id(node))
        if self.count > MAX_NODES:
            raise _TooBig(f"document has more than {MAX_NODES} nodes", node.start_mark)
        if depth > MAX_DEPTH:
            raise _TooBig(f"nesting deeper than {MAX_DEPTH} levels", node.start_mark)
        self.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_TAGS:
            raise yaml.constructor.ConstructorError(
                None, None, f"unsupported YAML tag {node.tag!r}", node.start_mark
            )
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        return self.loader.construct_object(node)

    def _mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict[str, Any]:
        self.loader.flatten_mapping(node)  # YAML merge keys (<<)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.loader.construct_object(key_node)
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(
                    None, None, f"mapping keys must be strings, found {key!r}", key_node.start_mark
                )
            child = path + (key,)
            if key in out:
                self.duplicates.append((key, key_node.start_mark, child))
            self.key_positions[child] = (
                key_node.start_mark.line + 1,
                key_node.start_mark.column + 1,
            )
            out[key] = self.build(value_node, child, depth + 1)
        return out


def load_yaml(raw: bytes, file: str) -> tuple[Loaded | None, list[Diagnostic]]:
    """Parse one YAML document. Returns data or the located errors (never raises on bad input)."""
    text, problem = _decode(raw, file)
    if problem is not None or text is None:
        return None, [problem] if problem else []
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, [_error(file, "empty document: expected a manifest mapping")]
        builder = _Builder(loader)
        data = builder.build(node, (), 0)
    except _TooBig as exc:
        return None, [_error(file, str(exc), exc.mark)]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        return None, [_error(file, f"YAML syntax: {message}", mark)]
    except yaml.YAMLError as exc:
        return None, [_error(file, f"YAML: {exc}".splitlines()[0])]
    except RecursionError:
        return None, [_error(file, f"nesting deeper than {MAX_DEPTH} levels")]
    finally:
        loader.dispose()
    errors = [
        _error(file, f"duplicate key '{key}' (YAML would silently keep the last one)", mark, path)
        for key, mark, path in builder.duplicates
    ]
    if errors:
        return None, errors
    return Loaded(data, builder.positions, builder.key_positions), []
