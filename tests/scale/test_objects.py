"""afx/objects.py and the remote cache's publishing, on SeaweedFS and in a folder: create-if-absent
(two writers, one record), whole files only, hostile names; a remote failing mid-run is a
warning and the stage is built locally; --shard's arithmetic."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from afx.engine import shards
from afx.engine.remote import RemoteCache, decode, encode
from afx.engine.runner import process_job
from afx.engine.store import Manifest, Store
from afx.errors import UsageError
from afx.objects import ObjectStore, check_name, open_store
from afx.testing.services import free_port
from tests.scale.remotefix import unique


@pytest.fixture(params=["s3", "folder"])
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "folder":
        return open_store(str(tmp_path / "objects"))
    server = request.getfixturevalue("s3_server")
    bucket = unique("afx")
    server.make_bucket(bucket)
    return open_store(f"s3://{bucket}/p", {"endpoint_url": server.endpoint, "key": server.key,
                                           "secret": server.secret})


def test_create_if_absent_lets_one_writer_of_many_win(objects):
    objects.check()
    assert objects.put_bytes(b"first", "ac/k1") is True
    assert objects.put_bytes(b"second", "ac/k1") is False
    assert objects.read_bytes("ac/k1") == b"first"
    wins: list[bytes] = []
    start = threading.Barrier(6)

    def race(i: int) -> None:
        start.wait()
        if objects.put_bytes(f"writer {i}".encode(), "ac/race"):
            wins.append(f"writer {i}".encode())

    threads = [threading.Thread(target=race, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and objects.read_bytes("ac/race") == wins[0]
    assert objects.put_bytes(b"replaced", "ac/k1", if_absent=False) and objects.read_bytes("ac/k1") == b"replaced"


def test_files_go_whole_and_names_stay_inside(objects, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 300_000)
    assert objects.put_file(src, "cas/abc") and not objects.put_file(src, "cas/abc")
    dest = tmp_path / "got" / "file"
    assert objects.get_file("cas/abc", dest) and dest.read_bytes() == src.read_bytes()
    assert not objects.get_file("cas/missing", tmp_path / "none") and not (tmp_path / "none").exists()
    assert not [p for p in dest.parent.iterdir() if p.name != "file"]  # no temp left beside it
    assert objects.exists("cas/abc") and not objects.exists("cas/nope")
    assert objects.read_bytes("cas/nope") is None
    assert objects.list("cas/") == ["cas/abc"]
    with pytest.raises(ValueError):
        objects.read_bytes("cas/abc", limit=10)
    signed = objects.sign("cas/abc", 60)
    assert (signed is None) == objects.url.startswith("/")
    objects.delete("cas/abc")
    assert not objects.exists("cas/abc")
    for bad in ("../x", "/etc/passwd", "a//b", "a/../b", "a\\b", "", "a/./b", "x\x00"):
        with pytest.raises(ValueError):
            check_name(bad)
        with pytest.raises(ValueError):
            objects.exists(bad)


def test_two_stores_pushing_one_key_leave_one_record(objects, tmp_path):
    records = []
    for i in (1, 2):
        store = Store(tmp_path / f"store{i}")
        art = tmp_path / f"art{i}"
        art.write_text(f"output {i}")
        m = Manifest("ingest", "k" * 64, {"source.json": store.put_object(art)}, {}, {"n": i})
        records.append(RemoteCache(objects).push(m, store))
        store.close()
    assert records == [True, False]
    kept = decode(objects.read_bytes(f"ac/{'k' * 64}") or b"", "k" * 64, "ingest")
    assert kept.meta == {"n": 1}
    assert len(objects.list("cas/")) == 1  # the second saw the record: it uploaded nothing


def test_a_record_naming_paths_outside_is_refused():
    m = Manifest("ingest", "k" * 64, {"a.json": {"digest": "0" * 64, "size": 1, "mtime_ns": 0}},
                 {"a.json": "a.json"}, {})
    assert decode(encode(m), "k" * 64, "ingest").files["a.json"]["digest"] == "0" * 64
    for evil in (b'"../../x"', b'".hidden"', b'"a/b"'):
        data = encode(m).replace(b'"a.json"}', evil + b"}")
        with pytest.raises(ValueError):
            decode(data, "k" * 64, "ingest")
    with pytest.raises(ValueError):
        decode(encode(m), "k" * 64, "render")  # another stage's record under this key


def test_a_remote_failing_mid_run_is_a_warning_and_the_stage_is_built_here(tmp_path, monkeypatch):
    from afx.engine.runner import load_pipeline
    from afx.spec.resolve import resolve

    monkeypatch.delenv("AFX_CACHE_DIR", raising=False)
    (tmp_path / "afx.yaml").write_text("version: 1\n")
    (tmp_path / "a.yaml").write_text("entry: compose\ntopic: Offline\nplatforms: [tiktok]\n")
    job = resolve([], cwd=tmp_path).jobs[0]
    dead = open_store("s3://afx-gone/x", {"endpoint_url": f"http://127.0.0.1:{free_port()}", "key": "k",
                                          "secret": "s"})
    store = Store(tmp_path / ".afx")
    store.remote = RemoteCache(dead)
    started = time.monotonic()
    report = process_job(job, load_pipeline("afx.testing.pipeline:PIPELINE"), store, tmp_path / "out", execute=True)
    assert report.status == "complete", report.error
    assert time.monotonic() - started < 20
    failed = [w for w in store.warnings if "remote cache" in w]
    assert len(failed) == 1 and "going on without it" in failed[0], store.warnings  # once, then not used
    for s in report.stages:
        m, problem = store.checked_manifest(s.key or "")
        assert m is not None and not problem  # a sound local cache
    store.close()


def test_shards_split_by_a_stable_hash_of_the_name():
    names = [f"job-{i}" for i in range(200)]
    parts = {n: shards.shard_of(n, 4) for n in names}
    assert set(parts.values()) == {1, 2, 3, 4} and all(40 <= list(parts.values()).count(i) <= 60 for i in (1, 2, 3, 4))
    more = {n: shards.shard_of(n, 4) for n in [*names, "a-new-job"]}
    assert all(more[n] == parts[n] for n in names)  # a new job moves no other
    assert shards.parse("2/3") == (2, 3) and shards.parse(" 1 / 1 ") == (1, 1)
    for bad in ("0/2", "3/2", "x", "1/0", "", "1/2/3", "-1/2"):
        with pytest.raises(UsageError, match="--shard"):
            shards.parse(bad)


def test_a_bad_shard_is_a_usage_error(repo):
    repo.write("a.yaml", "entry: compose\ntopic: T\n")
    for bad in ("0/2", "3/2", "x"):
        r = repo.afx("run", "--shard", bad)
        assert r.code == 2 and "--shard" in r.err, r.err
