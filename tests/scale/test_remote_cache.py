"""A remote stage cache shared by fresh clones (issue 15), on a real SeaweedFS S3 server and
in a plain folder: the second clone renders nothing, a corrupt remote object is refused,
an unreachable remote is a clear error, and CI shards give one full run's afx.lock."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from afx.objects import open_store
from afx.testing.services import free_port
from tests.scale.remotefix import Clones, events, unique

SHARED = {"ingest", "analyze", "moments", "clips", "edit", "script", "render", "package"}


@pytest.fixture(params=["s3", "folder"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """(URL, environment) of an empty remote cache."""
    if request.param == "folder":
        return str(tmp_path / "remote-cache"), {}
    server = request.getfixturevalue("s3_server")
    bucket = unique("afx")
    server.make_bucket(bucket)
    return f"s3://{bucket}/ci", server.env


@pytest.fixture
def clones(tmp_path: Path, remote: tuple[str, dict[str, str]]) -> Clones:
    return Clones(tmp_path, remote[1])


def stage_events(proc) -> list[dict]:
    return [e for e in events(proc) if e.get("event") == "stage"]


def test_a_fresh_clone_fetches_every_stage_and_renders_nothing(clones, remote):
    url = remote[0]
    clones.fresh()
    first = clones.afx("run", "--cache", url, "--json")
    assert first.returncode == 0, first.stderr
    assert {s for _, s in clones.ran()} >= SHARED
    lock, outs = clones.lock(), {p.relative_to(clones.root / "out"): p.read_bytes()
                                 for p in (clones.root / "out").rglob("*") if p.is_file() and p.name != "result.json"}

    clones.fresh()
    status = clones.afx("status", "--cache", url)
    lines = status.stdout.splitlines()  # one per job of the specs (a clip job is known once its parent ran)
    assert len(lines) == 4 and all("stages in the remote cache" in line for line in lines), status.stdout
    second = clones.afx("run", "--cache", url, "--json")
    assert second.returncode == 0, second.stderr
    ran = [e for e in stage_events(second) if e["status"] in ("running", "done")]
    assert {e["stage"] for e in ran} <= {"publish"}, ran  # publish reads this machine's ledger: never shared
    cached = [e for e in stage_events(second) if e["status"] == "cached"]
    assert {e["stage"] for e in cached} == SHARED
    # each fetched once; a stage two jobs share is then a local hit
    fetched = [e for e in cached if e.get("remote")]
    assert fetched and all(e["reason"] == "fetched from the remote cache" for e in fetched)
    assert {s for _, s in clones.ran()} == {"publish"}
    assert clones.lock() == lock  # the same afx.lock, byte for byte
    for rel, data in outs.items():
        assert (clones.root / "out" / rel).read_bytes() == data, rel
    done = events(second)[-1]
    assert done["event"] == "done" and done["fetched"] == len(fetched)
    assert done["ran"] == sum(e["status"] == "done" for e in ran)
    # and now it is a local no-op: nothing fetched, nothing run
    third = clones.afx("run", "--cache", url, "--json")
    assert third.returncode == 0 and not clones.ran()
    assert not any(e.get("remote") for e in stage_events(third))


@pytest.mark.parametrize("remote", ["s3"], indirect=True)
def test_a_corrupt_remote_object_is_refused_and_the_stage_reruns(clones, remote):
    url = remote[0]
    clones.fresh()
    assert clones.afx("run", "--cache", url).returncode == 0
    lock = json.loads(clones.lock())
    digest = next(iter(lock["jobs"]["a"]["stages"]["script"]["outputs"].values()))
    store = _store(url, remote[1])
    store.put_bytes(b"not the script", f"cas/{digest}", if_absent=False)

    clones.fresh()
    second = clones.afx("run", "--cache", url, "--json", "a")
    assert second.returncode == 0, second.stderr
    warnings = [e["message"] for e in events(second) if e.get("event") == "warning"]
    assert any("corrupt" in w and digest[:12] in w for w in warnings), warnings
    assert ("a", "script") in clones.ran()  # refused, so built here (and what follows it is fetched again)
    assert ("a", "ingest") not in clones.ran()
    assert json.loads(clones.lock())["jobs"]["a"] == lock["jobs"]["a"]
    # the rerun put a good copy back: the next clone fetches it
    data = store.read_bytes(f"cas/{digest}")
    assert data is not None and hashlib.sha256(data).hexdigest() == digest
    clones.fresh()
    third = clones.afx("run", "--cache", url, "--json", "a")
    assert third.returncode == 0 and {s for _, s in clones.ran()} == {"publish"}, third.stderr


def _store(url: str, env: dict[str, str]):
    if not env:
        return open_store(url)
    return open_store(url, {"endpoint_url": env["AWS_ENDPOINT_URL"], "key": env["AWS_ACCESS_KEY_ID"],
                            "secret": env["AWS_SECRET_ACCESS_KEY"]})


@pytest.mark.parametrize("remote", ["s3"], indirect=True)
def test_two_shards_give_the_afx_lock_of_one_full_run(clones, remote):
    url = remote[0]
    # what the checkout's afx.lock says: an earlier full run, with a job since removed
    clones.fresh({"gone.yaml": "entry: compose\ntopic: Gone soon\n"})
    assert clones.afx("run").returncode == 0
    base = clones.lock()
    assert "gone" in json.loads(base)["jobs"]
    change = {"b.yaml": "fromTemplateId: base\nentry: upload\nfile: media/b.mp4\ntopic: Beta, edited\n"}

    clones.fresh(change, lock=base)  # one full run of the new commit, without a cache
    full = clones.afx("run")
    assert full.returncode == 0, full.stderr
    expected = clones.lock()
    assert "gone" not in json.loads(expected)["jobs"] and "vod-01" in json.loads(expected)["jobs"]

    shard_locks, names = [], []
    for i in (1, 2):
        clones.fresh(change, lock=base)
        proc = clones.afx("run", "--shard", f"{i}/2", "--cache", url, "--json")
        assert proc.returncode == 0, proc.stderr
        names.append({e["job"] for e in events(proc) if e.get("event") == "job"})
        saved = clones.base / f"shard-{i}.lock"
        saved.write_text(clones.lock())
        shard_locks.append(str(saved))
    assert not names[0] & names[1] and names[0] | names[1] == set(json.loads(expected)["jobs"])
    assert {"vod", "vod-01"} <= names[0] or {"vod", "vod-01"} <= names[1]  # a job and its clips: one shard

    clones.fresh(change, lock=base)
    merged = clones.afx("lock", "merge", *shard_locks)
    assert merged.returncode == 0, merged.stderr
    assert clones.lock() == expected
    # the merged checkout, with the cache, builds nothing and keeps that afx.lock
    after = clones.afx("run", "--cache", url, "--json")
    assert after.returncode == 0 and {s for _, s in clones.ran()} <= {"publish"}
    assert clones.lock() == expected


def test_an_unreachable_remote_is_a_clear_error(tmp_path):
    clones = Clones(tmp_path, {})
    clones.fresh()
    dead = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "y", "AWS_DEFAULT_REGION": "us-east-1"}
    for args in (("run",), ("status",), ("plan",)):
        proc = clones.afx(*args, "--cache", "s3://afx-nowhere/x", **dead)
        assert proc.returncode == 4, proc.stderr
        assert "cannot reach s3://afx-nowhere/x" in proc.stderr and "AWS_ENDPOINT_URL" in proc.stderr
    assert not clones.ran() and not (clones.root / "out").exists()
    (tmp_path / "a-file").write_text("")
    proc = clones.afx("run", "--cache", str(tmp_path / "a-file" / "cache"))
    assert proc.returncode == 4 and "cannot use" in proc.stderr, proc.stderr


def test_the_flag_wins_over_afx_yaml(tmp_path):
    clones, url = Clones(tmp_path, {}), "../remote-cache"  # a folder: from the repo root
    clones.fresh({"afx.yaml": f"version: 1\ncache: {{remote: {json.dumps(url)}}}\n"})
    assert clones.afx("run", "a").returncode == 0  # cache.remote from afx.yaml
    clones.fresh({"afx.yaml": f"version: 1\ncache: {{remote: {json.dumps(url)}}}\n"})
    other = clones.afx("run", "a", "--json", "--cache", str(tmp_path / "other-cache"))
    assert other.returncode == 0 and {s for _, s in clones.ran()} >= SHARED - {"moments", "clips"}
    clones.fresh({"afx.yaml": f"version: 1\ncache: {{remote: {json.dumps(url)}}}\n"})
    again = clones.afx("run", "a", "--json")
    assert again.returncode == 0 and {s for _, s in clones.ran()} == {"publish"}
