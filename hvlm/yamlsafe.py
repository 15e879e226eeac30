"""Hostile-input-proof YAML loading with source positions. Pure.

Pipeline position: the first step of hvlm.manifest. Turns bytes into plain Python data plus a map
from document path to (line, column), or a list of located Diagnostics. Bounded: file size,
nesting depth and the number of nodes after alias expansion (so an alias bomb costs microseconds,
not gigabytes), duplicate keys detected (PyYAML silently keeps the last one), no custom tags.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
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
    def __init__(self, message: str, mark: Any, path: Path = ()) -> None:
        super().__init__(message)
        self.mark = mark
        self.path = path


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if len(part) <= 60 else part[:57] + "..."
            out += f".{key}" if out else key
    return out


def _error(file: str, message: str, mark: Any = None, path: Path = ()) -> Diagnostic:
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
    return Diagnostic(Severity.ERROR, message, file, line, col, format_path(path))


def _decode(raw: bytes, file: str) -> tuple[str | None, Diagnostic | None]:
    if len(raw) > MAX_BYTES:
        return None, Diagnostic(
            Severity.ERROR, f"file is {len(raw)} bytes; the limit is {MAX_BYTES}", file, 1, 1
        )
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None, Diagnostic(
            Severity.ERROR, "file is UTF-16 (byte order mark): save it as UTF-8", file, 1, 1
        )
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
    composed = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.depth += 1
        self.composed += 1
        try:
            if self.composed > MAX_NODES:
                raise _TooBig(
                    f"document has more than {MAX_NODES} nodes",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
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
        self.in_alias = 0
        self.seen: set[int] = set()
        self.positions: dict[Path, tuple[int, int]] = {}
        self.key_positions: dict[Path, tuple[int, int]] = {}
        self.duplicates: list[tuple[str, yaml.Mark, Path]] = []

    def build(self, node: yaml.Node, path: Path, depth: int) -> Any:
        """Every node reached again through an alias, and everything below it, counts as aliased."""
        again = id(node) in self.seen
        self.in_alias += again
        try:
            return self._build(node, path, depth)
        finally:
            self.in_alias -= again

    def _build(self, node: yaml.Node, path: Path, depth: int) -> Any:
        self.count += 1
        if self.in_alias:
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
        return self._scalar(node, path)

    def _scalar(self, node: yaml.Node, path: Path) -> Any:
        try:
            value = self.loader.construct_object(node)
        except yaml.YAMLError:
            raise
        except Exception:  # PyYAML's constructors fail in many ways on hostile scalars
            shown = str(node.value)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            kind = node.tag.rsplit(":", 1)[-1]
            raise _TooBig(f"cannot read {shown!r} as {kind}", node.start_mark, path) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise _TooBig("not a finite number", node.start_mark, path)
        if isinstance(value, int) and value.bit_length() > 64:
            raise _TooBig("number too large (more than 64 bits)", node.start_mark, path)
        return value

    def _mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict[str, Any]:
        explicit = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
        self.loader.flatten_mapping(node)  # YAML merge keys (<<): merged pairs come first
        out: dict[str, Any] = {}
        written: set[str] = set()  # keys written explicitly (an explicit key may override a merge)
        for key_node, value_node in node.value:
            key = self._scalar(key_node, path)
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"mapping keys must be strings, found {repr(key)[:40]}",
                    key_node.start_mark,
                )
            child = path + (key,)
            if id(key_node) in explicit:
                if key in written:
                    self.duplicates.append((key, key_node.start_mark, child))
                written.add(key)
            self.key_positions[child] = (
                key_node.start_mark.line + 1,
                key_node.start_mark.column + 1,
            )
            out[key] = self.build(value_node, child, depth + 1)
        return out


def _reader_error(file: str, text: str, exc: yaml.YAMLError) -> Diagnostic:
    position = getattr(exc, "position", None)
    if not isinstance(position, int):
        return _error(file, f"YAML: {exc}".splitlines()[0])
    character = getattr(exc, "character", "?")
    if isinstance(character, int):  # libyaml: the code point, at a byte offset of the UTF-8
        code = character
        position = len(text.encode("utf-8")[:position].decode("utf-8", "ignore"))
    else:  # PyYAML's reader: the character, at its index in the text
        code = ord(character) if character else 0
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return Diagnostic(
        Severity.ERROR, f"control character U+{code:04X} is not allowed in YAML", file, line, column
    )


_CLoader: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)
_OPEN = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSE = (yaml.SequenceEndEvent, yaml.MappingEndEvent)
_LEAF = (yaml.ScalarEvent, yaml.AliasEvent)


def _prescan(text: str) -> _TooBig | None:
    """Count nodes and nesting on libyaml's event stream (no tree, no recursion) and stop at the
    first limit crossed: a flood or a deep nest is refused in milliseconds, not minutes."""
    if _CLoader is None:
        return None  # the pure-Python composer checks the same limits as it goes
    try:
        return _first_limit(yaml.parse(text, Loader=_CLoader))
    except yaml.MarkedYAMLError as exc:
        if "nesting depth" not in str(exc.problem):
            return None  # the real parse reports it, located
        # libyaml's own cap (1000 flow levels), met while its scanner looks ahead for a simple
        # key: far past where ours was crossed. The pure-Python parser has no such cap; it finds
        # the opener that crossed ours (its scanner looks ahead at most 1024 characters).
        try:
            found = _first_limit(yaml.parse(text, Loader=yaml.SafeLoader))
        except yaml.YAMLError:
            found = None
        return found or _TooBig(f"nesting deeper than {MAX_DEPTH} levels", exc.problem_mark)
    except yaml.YAMLError:
        return None


def _first_limit(events: Iterator[yaml.Event]) -> _TooBig | None:
    depth = nodes = 0
    for event in events:
        if isinstance(event, _OPEN):
            depth += 1
            if depth > MAX_DEPTH:
                return _TooBig(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
        elif isinstance(event, _CLOSE):
            depth -= 1
            continue
        elif not isinstance(event, _LEAF):
            continue
        nodes += 1
        if nodes > MAX_NODES:
            return _TooBig(f"document has more than {MAX_NODES} nodes", event.start_mark)
    return None


def _syntax_message(text: str, exc: yaml.MarkedYAMLError) -> str:
    """The parser's words, with what libyaml leaves out and PyYAML's own parser names: the
    undefined alias, the character that cannot start a token."""
    message = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
    mark = exc.problem_mark
    lines = text.split("\n")
    if mark is None or not 0 <= mark.line < len(lines):
        return message
    rest = lines[mark.line][mark.column :]
    if exc.problem == "found undefined alias":
        alias = re.match(r"\*([^\s,\[\]{}]+)", rest)
        if alias:
            return f"{message} {_quoted(alias.group(1))}"
    elif exc.problem == "found character that cannot start any token" and rest:
        return message.replace("character that", f"character {_quoted(rest[0])} that")
    return message


def _quoted(found: str) -> str:
    """What the file holds, as Python shows it ('\\t', 'nowhere'), bounded."""
    return repr(found if len(found) <= 60 else found[:57] + "...")


def load_yaml(raw: bytes, file: str) -> tuple[Loaded | None, list[Diagnostic]]:
    """Parse one YAML document. Returns data or the located errors (never raises on bad input)."""
    text, problem = _decode(raw, file)
    if problem is not None or text is None:
        return None, [problem] if problem else []
    too_big = _prescan(text)
    if too_big is not None:
        return None, [_error(file, str(too_big), too_big.mark)]
    try:
        # libyaml composes ~10x faster; its recursion is safe once the prescan bounded the depth
        loader: yaml.SafeLoader = _CLoader(text) if _CLoader is not None else _Loader(text)
    except yaml.YAMLError as exc:  # the reader refuses some characters up front
        return None, [_reader_error(file, text, exc)]
    try:
        node = loader.get_single_node()
        if node is None:
            return None, [
                Diagnostic(
                    Severity.ERROR, "empty document: expected a manifest mapping", file, 1, 1
                )
            ]
        builder = _Builder(loader)
        data = builder.build(node, (), 0)
    except _TooBig as exc:
        return None, [_error(file, str(exc), exc.mark, exc.path)]
    except yaml.reader.ReaderError as exc:
        return None, [_reader_error(file, text, exc)]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        return None, [_error(file, f"YAML syntax: {_syntax_message(text, exc)}", mark)]
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
