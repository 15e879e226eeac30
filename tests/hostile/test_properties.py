"""Property-based tests of manifest loading (hypothesis): whatever the bytes, `parse_manifest`
returns a LoadResult or raises ManifestError with one-line diagnostics; nothing else. No timing
limit per example (a deadline inside a fuzz test fails on a loaded 2-core machine, not on a bug):
how long loading takes is the benchmarks' business (bench/).

Inputs: arbitrary bytes; YAML-ish text built from YAML's own punctuation, tags, anchors and
scalars that PyYAML resolves specially; and examples/prod-east.yaml mutated as data (values, keys,
deletions) and as text (bytes inserted, deleted, replaced). The `@example`s are the minimal cases
of bugs found so far, kept so that they are always tried.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hvlm.errors import Diagnostic, ManifestError, Severity
from hvlm.manifest import LoadResult, parse_manifest
from tests.hostile.expectations import EXAMPLE, terminal_unsafe

FILE = "fuzz.yaml"
EXAMPLE_BYTES = EXAMPLE.read_bytes()
EXAMPLE_DATA: dict[str, Any] = yaml.safe_load(EXAMPLE_BYTES)
FUZZ = settings(
    max_examples=50,
    deadline=None,  # what is asserted is the outcome, never the time an example took
    database=None,  # nothing written into the tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Pieces of YAML that exercise the scanner, the composer and the resolvers.
TOKENS = [
    "\n",
    "  ",
    "- ",
    ": ",
    "? ",
    "[",
    "]",
    "{",
    "}",
    ", ",
    "'",
    '"',
    "#",
    "|",
    ">",
    "---\n",
    "...\n",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "<<: ",
    "<<: *a",
    "!!int ",
    "!!bool ",
    "!!float ",
    "!!timestamp ",
    "!!binary ",
    "!!set ",
    "!!python/object/apply:os.system ",
    "!Ref ",
    "%YAML 1.1\n",
    "%TAG ! tag:x,2000:\n",
    "~",
    "null",
    "yes",
    "no",
    "on",
    ".nan",
    ".inf",
    "-.inf",
    "0x",
    "0x_",
    "0b_",
    "0o7",
    "1_000",
    "1:2:3",
    "1e9999",
    "2001-13-45",
    "2001-12-14t21:59:43.10-05:00",
    "9" * 5000,
    "\\e[31m",
    "\\x1b",
    "\\0",
    "\\u202e",
    "\t",
    "\r",
    "\x85",
    "\ufeff",
    "apiVersion",
    "hvlm/v1",
    "kind",
    "LiveMigrationConfig",
    "metadata",
    "name",
    "hosts",
    "HV01",
    "hv01",
    "fqdn",
    "address",
    "defaults",
    "migration",
    "networks",
    "subnet",
    "10.0.0.1/24",
    "fd00::/64",
    "useAnyNetwork",
    "groups",
    "password",
    "token",
    "directory",
    "timeoutSeconds",
]
token_soup = st.lists(
    st.sampled_from(TOKENS) | st.text(alphabet="abcHV0123456789:-_./;$`|*()=\\", max_size=6),
    max_size=50,
).map("".join)
line_soup = st.lists(
    st.tuples(
        st.sampled_from(["", "  ", "- ", "  - ", "    "]),
        st.sampled_from(TOKENS) | st.text(max_size=6),
        st.sampled_from([": ", ": [", ": {", ":\n", ": !!int ", ": &a ", ": *a"]),
        st.sampled_from(TOKENS) | st.text(max_size=6),
    ).map(lambda parts: "".join(parts) + "\n"),
    max_size=12,
).map("".join)
yamlish = token_soup | line_soup

HOSTILE_STRINGS = [
    "HV01;Stop-Computer",
    "$(calc)",
    "HV`01",
    "| Remove-Item",
    "*)(cn=*",
    "\\00",
    "\x00",
    "\x1b[2J",
    "\r",
    "\u202e",
    "10.0.0.1",
    "10.0.0.1/32",
    "fd00:0::/64",
    "192.168.10.1/24",
    "",
    " ",
    "9" * 5000,
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([0, -1, 2**32, 10**100])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(HOSTILE_STRINGS)
    | st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
KEYS = st.sampled_from(["nmae", "hostz", "Name", "password", "token", "", "<<"]) | st.text(
    max_size=12
)


def _paths(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path] if path else []
    if isinstance(data, dict):
        for key, value in data.items():
            out += _paths(value, path + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            out += _paths(value, path + (index,))
    return out


PATHS = _paths(EXAMPLE_DATA)


def _mutate(data: Any, path: tuple[Any, ...], operation: str, key: str, value: Any) -> None:
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if operation == "replace":
        parent[last] = value
    elif operation == "delete":
        del parent[last]
    elif isinstance(parent, dict):  # rename
        parent[key] = parent.pop(last)
    else:
        parent.insert(last, value)


mutations = st.lists(
    st.tuples(
        st.sampled_from(PATHS),
        st.sampled_from(["replace", "delete", "rename"]),
        KEYS,
        values,
    ),
    min_size=1,
    max_size=4,
)


class _Dumper(yaml.SafeDumper):
    """Writes ints too long for str() (Python's 4300-digit limit) in hex, which YAML reads back."""


def _represent_int(dumper: yaml.SafeDumper, value: int) -> yaml.ScalarNode:
    text = str(value) if value.bit_length() < 8000 else hex(value)
    return dumper.represent_scalar("tag:yaml.org,2002:int", text)


_Dumper.add_representer(int, _represent_int)


def _one_line(diagnostic: Diagnostic) -> str:
    assert isinstance(diagnostic, Diagnostic), diagnostic
    text = str(diagnostic)
    assert "\n" not in text and "\r" not in text, text
    assert text.startswith(FILE), text
    return text


def assert_contract(raw: bytes) -> list[str]:
    """parse_manifest's contract on any input; returns the diagnostic lines."""
    try:
        result = parse_manifest(raw, FILE)
    except ManifestError as exc:
        assert exc.diagnostics, "ManifestError without diagnostics"
        assert any(d.severity is Severity.ERROR for d in exc.diagnostics), exc.diagnostics
        return [_one_line(d) for d in exc.diagnostics]
    assert isinstance(result, LoadResult)
    return [_one_line(w) for w in result.warnings]


@FUZZ
@given(st.binary(max_size=2048))
@example(b"a: 2001-13-45\n")
@example(b"a: \x1b\n")
def test_arbitrary_bytes(raw: bytes) -> None:
    assert_contract(raw)


@FUZZ
@given(yamlish)
@example("a: 0x_")
@example("a: !!bool maybe")
@example("a: !!timestamp x")
@example("a: " + "9" * 5000)
def test_yamlish_text(text: str) -> None:
    assert_contract(text.encode("utf-8", errors="surrogatepass"))


@FUZZ
@given(mutations)
@example([(("directory", "domain"), "rename", "timeoutSeconds", float("nan"))])
@example([(("defaults", "migration", "maxStorageMigrations"), "replace", "", 16**5000)])
def test_mutated_example_as_data(changes: list[tuple[tuple[Any, ...], str, str, Any]]) -> None:
    data = copy.deepcopy(EXAMPLE_DATA)
    for path, operation, key, value in changes:
        try:
            _mutate(data, path, operation, key, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or reshaped this path
    text = yaml.dump(data, Dumper=_Dumper, allow_unicode=True)
    assert_contract(text.encode("utf-8", errors="surrogatepass"))


@FUZZ
@given(st.data())
def test_mutated_example_as_text(data: st.DataObject) -> None:
    raw = bytearray(EXAMPLE_BYTES)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw)))
        piece = data.draw(st.binary(max_size=6) | st.sampled_from(TOKENS).map(str.encode))
        operation = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        if operation == "insert":
            raw[at:at] = piece
        elif operation == "delete":
            del raw[at : at + len(piece) + 1]
        else:
            raw[at : at + len(piece)] = piece
    assert_contract(bytes(raw))


@FUZZ
@given(st.text(max_size=40), st.sampled_from(["key", "name", "fqdn", "subnet", "group"]))
@example("\x1b[2J\x1b[31m", "key")
@example("\x1b]0;pwned\x07" + "A" * 20, "name")
def test_diagnostics_never_carry_terminal_controls(text: str, where: str) -> None:
    """Whatever a manifest smuggles into a key or a value, no diagnostic can repaint a terminal."""
    quoted = yaml.safe_dump(text, allow_unicode=False, default_style='"').strip()
    quoted = quoted.removesuffix("\n...").strip()
    head = "apiVersion: hvlm/v1\nkind: LiveMigrationConfig\nmetadata: {name: fuzz}\n"
    body = {
        "key": f"hosts: [{{name: HV01, fqdn: a.b}}]\n{quoted}: 1\n",
        "name": f"hosts: [{{name: {quoted}, fqdn: a.b}}]\n",
        "fqdn": f"hosts: [{{name: HV01, fqdn: {quoted}}}]\n",
        "subnet": "hosts: [{name: HV01, fqdn: a.b}]\n"
        f"defaults: {{migration: {{networks: [{{subnet: {quoted}}}]}}}}\n",
        "group": f"hosts: [{{name: HV01, fqdn: a.b}}]\ngroups: [{{name: g, hosts: [HV01, {quoted}]}}]\n",
    }[where]
    for line in assert_contract((head + body).encode()):
        assert terminal_unsafe(line) == [], ascii(line)


SENTINEL = "Sentinel-4242-never-printed"
SECRET_KEYS = st.sampled_from(["password", "Password", "token", "secret", "apiKey", "passwd"])
secret_holders = st.builds(lambda key: {key: SENTINEL}, SECRET_KEYS) | st.builds(
    lambda key: [{key: SENTINEL}, {key: SENTINEL}], SECRET_KEYS
)


@FUZZ
@given(st.sampled_from(PATHS), secret_holders, st.booleans())
@example(("connection", "auth"), {"password": SENTINEL}, False)
def test_secret_values_are_never_printed(path: tuple[Any, ...], holder: Any, beside: bool) -> None:
    """A mapping holding a secret key, put anywhere (in place of a value, or as a sibling key):
    the secret's value appears in no diagnostic, whatever else is wrong with the document."""
    data = copy.deepcopy(EXAMPLE_DATA)
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    if beside and isinstance(holder, dict) and isinstance(parent, dict):
        parent.update(holder)
    else:
        _mutate(data, path, "replace", "", holder)
    lines = assert_contract(yaml.dump(data, Dumper=_Dumper).encode())
    assert lines, "a literal secret must be an error"
    assert not [line for line in lines if SENTINEL in line], lines
