from __future__ import annotations

import os
import time

import pytest

from afx.spec.load import MAX_FILE_BYTES, Mark, load_file, load_text


def one(text: str):
    docs, diags = load_text(text, "t.yaml")
    assert not diags, diags
    assert len(docs) == 1
    return docs[0]


def errors(text: str):
    docs, diags = load_text(text, "t.yaml")
    assert diags, "expected a diagnostic"
    return diags


def test_values_keep_line_and_column_of_key_and_value():
    doc = one("# c\ntopic: hi\nrender:\n  captions:\n    size: 80\nplatforms:\n  - tiktok\n  - youtube\n")
    assert doc.data == {"topic": "hi", "render": {"captions": {"size": 80}}, "platforms": ["tiktok", "youtube"]}
    assert doc.key_mark(("topic",)) == Mark(2, 1)
    assert doc.value_mark(("topic",)) == Mark(2, 8)
    assert doc.value_mark(("render", "captions", "size")) == Mark(5, 11)
    assert doc.value_mark(("platforms", 1)) == Mark(8, 5)
    # a path that does not exist points at its nearest existing parent
    assert doc.value_mark(("render", "captions", "nope")) == Mark(5, 5)


@pytest.mark.parametrize("text,value", [
    ("no", "no"), ("yes", "yes"), ("on", "on"), ("off", "off"),  # YAML 1.1 booleans stay text
    ("true", True), ("False", False), ("~", None), ("null", None),
    ("12", 12), ("-3", -3), ("0x1f", 31), ("1.5", 1.5), ("1e3", 1000.0),
    ("2026-05-26T09:00:00Z", "2026-05-26T09:00:00Z"),  # timestamps stay text
    ("2026-05-26", "2026-05-26"), ("1_000", "1_000"), ("'12'", "12"), ("!!str 12", "12"),
    ("!!int '7'", 7),
])
def test_plain_scalars_follow_yaml_1_2_core(text, value):
    assert one(f"v: {text}\n").data["v"] == value


def test_several_documents_in_one_file_and_empty_documents_skipped():
    docs, diags = load_text("a: 1\n---\n---\nb: 2\n...\n", "t.yaml")
    assert not diags
    assert [d.data for d in docs] == [{"a": 1}, {"b": 2}]
    assert docs[1].start.line == 4


@pytest.mark.parametrize("text,needle,line", [
    ("topic: !!python/object:os.system x\n", "!!python/object:os.system", 1),
    ("a: 1\ntopic: !!python/name:os.system ''\n", "!!python/name:os.system", 2),
    ("x: !!binary aGVsbG8=\n", "!!binary", 1),
    ("x: !custom 1\n", "!custom", 1),
    ("x: !!set {a, b}\n", "!!set", 1),
])
def test_non_standard_tags_are_refused_with_line(text, needle, line):
    (d,) = errors(text)
    assert needle in d.message and "not allowed" in d.message
    assert d.line == line


def test_duplicate_keys_are_an_error_naming_both_lines():
    (d,) = errors("topic: a\ntone: hype\ntopic: b\n")
    assert d.line == 3 and d.path == "topic" and "first given at line 1" in d.message


def test_merge_keys_are_refused_with_advice():
    (d,) = errors("base: &b {tone: hype}\njob:\n  <<: *b\n")
    assert "merge keys" in d.message and "template" in d.hint


def test_alias_bomb_is_refused_quickly():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    started = time.perf_counter()
    diags = errors("\n".join(lines) + "\n")
    assert time.perf_counter() - started < 2
    assert "alias" in (diags[0].message + diags[0].hint)
    assert diags[0].line > 1


def test_small_aliases_are_fine():
    doc = one("a: &x [1, 2]\nb: *x\n")
    assert doc.data == {"a": [1, 2], "b": [1, 2]}


def test_deep_nesting_is_refused():
    (d,) = errors("a: " + "[" * 100 + "]" * 100 + "\n")
    assert "deeper" in d.message


def test_syntax_error_has_line_and_column():
    (d,) = errors("topic: hi\nplatforms: [tiktok\ntone: x\n")
    assert d.line >= 2 and "YAML syntax error" in d.message


def test_empty_and_comment_only_files_are_errors():
    assert "empty" in errors("")[0].message
    assert "empty" in errors("# only a comment\n")[0].message


def test_file_size_cap_is_checked_before_reading(tmp_path):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:
        fh.truncate(50 * 1024 * 1024)  # sparse: 50 MB without writing 50 MB
    docs, diags = load_file(big, "big.yaml")
    assert docs == [] and "50.0 MiB" in diags[0].message and diags[0].line == 1
    ok = tmp_path / "ok.yaml"
    ok.write_bytes(b"a: " + b"x" * (MAX_FILE_BYTES - 10) + b"\n")
    assert load_file(ok)[1] == []


def test_non_utf8_names_line_and_column(tmp_path):
    p = tmp_path / "latin1.yaml"
    p.write_bytes("topic: ok\ntone: caf\xe9\n".encode("latin-1"))
    docs, (d,) = load_file(p, "latin1.yaml")
    assert (d.line, d.column) == (2, 10) and "UTF-8" in d.message


def test_bom_is_accepted_and_nul_refused(tmp_path):
    p = tmp_path / "bom.yaml"
    p.write_bytes(b"\xef\xbb\xbftopic: ok\n")
    assert load_file(p)[0][0].data == {"topic": "ok"}
    p.write_bytes(b"topic: ok\nx: a\x00b\n")
    docs, (d,) = load_file(p)
    assert d.line == 2 and "NUL" in d.message


def test_non_string_keys_become_text():
    assert one("1: a\ntrue: b\n").data == {"1": "a", "true": "b"}


@pytest.mark.parametrize("text", ["v: .nan", "v: .inf", "v: -.Inf", "v: 1e400", "v: 0x" + "f" * 5000,
                                  "v: " + "9" * 50])
def test_numbers_without_a_json_form_are_refused(text):
    (d,) = errors(text + "\n")
    assert d.line == 1 and d.path == "v" and "cannot read" in d.message


def test_control_characters_are_reported_at_their_line_and_column():
    (d,) = errors("topic: ok\ntone: a\x07b\n")
    assert (d.line, d.column) == (2, 8) and "'\\x07'" in d.message


def test_a_fifo_is_not_read(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    started = time.perf_counter()
    docs, (d,) = load_file(fifo, "fifo.yaml")
    assert time.perf_counter() - started < 1 and "not a regular file" in d.message
