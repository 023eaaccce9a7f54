"""v2023-03-03 manifests through the component: golden vectors, validation, round trips."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import VECTORS
from jobattach import Manifest, ManifestEntry, ValidationError, decode_manifest

NAMES = ["basic", "unicode", "invalid-utf8"]


def _vector(name: str) -> tuple[bytes, str, dict[str, object]]:
    d = VECTORS / name
    expected = json.loads((d / "expected.json").read_text())
    return (d / "manifest.json").read_bytes(), (d / "manifest.xxh128").read_text().strip(), expected


@pytest.mark.parametrize("name", NAMES)
def test_golden_vectors_decode_and_encode_byte_for_byte(name: str) -> None:
    data, digest, expected = _vector(name)
    m = decode_manifest(data)
    assert m.encode() == data
    assert m.hash() == digest
    assert m.total_size == expected["totalSize"]
    assert len(m) == expected["path_count"]
    if "path_order" in expected:
        assert [p.path for p in m.entries] == expected["path_order"]


@pytest.mark.parametrize("name", NAMES)
def test_golden_vectors_rebuilt_from_entries_in_any_order(name: str) -> None:
    data, digest, _ = _vector(name)
    paths = list(decode_manifest(data).entries)
    random.Random(7).shuffle(paths)
    rebuilt = Manifest.from_entries(paths)
    assert rebuilt.encode() == data
    assert rebuilt.hash() == digest
    assert rebuilt == decode_manifest(data)


GOOD = {
    "hashAlg": "xxh128",
    "manifestVersion": "2023-03-03",
    "paths": [{"hash": "0" * 31 + "1", "mtime": 5, "path": "a/b.txt", "size": 1}],
    "totalSize": 1,
}


def _with(change: dict[str, object], entry: dict[str, object] | None = None) -> str:
    doc = json.loads(json.dumps(GOOD))
    doc.update(change)
    if entry is not None:
        doc["paths"][0].update(entry)
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("", "malformed JSON"),
        ("{", "malformed JSON"),
        ("[]", "must be a JSON object"),
        (_with({"manifestVersion": "2099-01-01"}), "manifestVersion"),
        (_with({"hashAlg": "md5"}), "hashAlg"),
        (_with({"totalSize": 2}), "totalSize is 2"),
        (_with({"totalSize": "1"}), "manifest.totalSize must be a non-negative integer"),
        (_with({"extra": 1}), "manifest.extra is not a known field"),
        (_with({}, {"size": -1}), "paths[0].size must be a non-negative integer"),
        (_with({}, {"mtime": 1.5}), "paths[0].mtime must be an integer"),
        (_with({}, {"hash": "ABC"}), "paths[0].hash"),
        (_with({}, {"path": "../x"}), "'..' segment"),
        (_with({}, {"path": "/abs"}), "absolute"),
        (_with({}, {"path": "a//b"}), "empty segment"),
        (_with({}, {"path": "./a"}), "'.' segment"),
        (_with({}, {"path": "a\u0000"}), "NUL"),
        (_with({}, {"path": 3}), "paths[0].path must be a string"),
        (
            json.dumps({**GOOD, "paths": GOOD["paths"] * 2, "totalSize": 2}),  # type: ignore[operator]
            "appears more than once",
        ),
    ],
)
def test_malformed_manifests_name_the_problem(data: str, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        decode_manifest(data)
    assert message in str(err.value)
    assert err.value.kind == "invalid-input"


def _segment() -> st.SearchStrategy[str]:
    chars = st.characters(codec=None, exclude_characters="/\\\x00")
    return st.text(chars, min_size=1, max_size=12).filter(lambda s: s not in (".", ".."))


_paths = (
    st.lists(_segment(), min_size=1, max_size=4)
    .map("/".join)
    .filter(lambda p: not (len(p) >= 2 and p[1] == ":" and p[0].isascii() and p[0].isalpha()))
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(_paths, st.integers(0, 2**40), st.integers(-(2**50), 2**55)),
        unique_by=lambda t: t[0],
        max_size=20,
    )
)
def test_encoding_is_the_official_json_dumps(entries: list[tuple[str, int, int]]) -> None:
    # No file can also be a directory of another (a tree cannot hold both; that is refused).
    names = {p for p, _, _ in entries}
    entries = [e for e in entries if not any(n.startswith(e[0] + "/") for n in names)]
    paths = [
        ManifestEntry(p, f"{i:032x}", size, mtime) for i, (p, size, mtime) in enumerate(entries)
    ]
    m = Manifest.from_entries(paths)
    # The official encoder: json.dumps(sort_keys, compact, ensure_ascii) over UTF-16-sorted paths.
    official = json.dumps(
        {
            "hashAlg": "xxh128",
            "manifestVersion": "2023-03-03",
            "paths": sorted(
                ({"hash": p.hash, "mtime": p.mtime, "path": p.path, "size": p.size} for p in paths),
                key=lambda e: e["path"].encode("utf-16-be", "surrogatepass"),
            ),
            "totalSize": sum(p.size for p in paths),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    assert m.encode() == official.encode()
    assert decode_manifest(m.encode()) == m


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_decoder_fuzz_gives_a_manifest_or_a_validation_error(data: st.DataObject) -> None:
    # Mutations of every vector, in both formats.
    original = _vector(data.draw(st.sampled_from(NAMES)))[0]
    if data.draw(st.booleans()):
        original = decode_manifest(original).convert("v2025-12-snapshot").encode()
    base = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(base) - 1))
        base[i] = data.draw(st.sampled_from(b'{}[]",:0123456789-.\\u aZ\x00'))
    text = base.decode("ascii", errors="replace")
    try:
        m = decode_manifest(text)
    except ValidationError:
        return
    assert decode_manifest(m.encode()) == m  # whatever is accepted is canonical on re-encode


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_decoder_fuzz_on_arbitrary_text(text: str) -> None:
    with pytest.raises(ValidationError):
        decode_manifest(text)  # lone surrogates included: a WIT string cannot carry them


@pytest.mark.parametrize(
    "data", [b"\xff\xfe{}", b'{"paths":"\xc3"}', '{"x":"\ud800"}'], ids=["bom", "cut", "surrogate"]
)
def test_text_that_is_not_unicode_is_a_validation_error(data: bytes | str) -> None:
    with pytest.raises(ValidationError, match="not UTF-8"):
        decode_manifest(data)


def test_manifest_is_immutable_and_compares_by_content() -> None:
    data, _, _ = _vector("basic")
    a, b = decode_manifest(data), decode_manifest(data.decode())
    assert a == b
    assert hash(a) == hash(b)
    assert a.version == a.format == "v2023-03-03"
    assert a.hash_alg == "xxh128"
    with pytest.raises(AttributeError):
        a.format = "v2025-12-snapshot"  # type: ignore[misc]


def test_error_messages_escape_what_would_garble_a_terminal() -> None:
    doc = {
        "hashAlg": "xxh128",
        "manifestVersion": "2023-03-03",
        "paths": [{"hash": "0" * 32, "mtime": 1, "path": "x\n\x00\x7f/é", "size": 1}],
        "totalSize": 1,
    }
    with pytest.raises(ValidationError) as raised:
        decode_manifest(json.dumps(doc))
    assert raised.value.path == "x\n\x00\x7f/é"  # the path itself, exactly
    assert str(raised.value).startswith("x\\n\\x00\\x7f/é: ")  # shown escaped, on one line


def test_a_file_that_is_also_a_directory_is_refused() -> None:
    entries = [{"hash": "0" * 32, "mtime": 1, "path": p, "size": 1} for p in ("a", "a/b")]
    doc = {"hashAlg": "xxh128", "manifestVersion": "2023-03-03", "paths": entries, "totalSize": 2}
    with pytest.raises(ValidationError, match='"a" is a file and also the directory of "a/b"'):
        decode_manifest(json.dumps(doc))


def test_a_manifest_is_only_made_from_what_the_component_validated() -> None:
    with pytest.raises(TypeError, match=r"Manifest\.decode"):
        Manifest("v2023-03-03", ({"path": "../evil", "hash": "z", "size": -1},))
    m = decode_manifest((VECTORS / "basic" / "manifest.json").read_bytes())
    with pytest.raises(AttributeError):
        m._rows.append({})  # type: ignore[attr-defined]
