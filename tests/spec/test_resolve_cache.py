"""The resolve cache (afx/spec/cache.py): unchanged spec files are not resolved again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from afx.spec.resolve import resolve
from tests.conftest import SpecRepo


@pytest.fixture
def many(repo: SpecRepo) -> SpecRepo:
    repo.write("templates/weekly.yaml", "tone: hype\nplatforms: [tiktok]\ntopic: 'Week {{ week }}'\n")
    repo.write("templates/other.yaml", "tone: calm\nplatforms: [youtube]\n")
    for i in range(6):
        tpl = "weekly" if i < 3 else "other"
        repo.write(f"job-{i}.yaml", f"fromTemplateId: {tpl}\nentry: compose\nvars: {{week: {i}}}\nscript: Job {i}.\n")
    repo.write("media/clip.mp4", b"\x00" * 64)
    repo.write("up.yaml", "fromTemplateId: other\nentry: upload\nfile: media/clip.mp4\ntopic: Up\n")
    return repo


def docs(result) -> dict[str, dict]:
    return {j.name: (j.to_dict(), j.digest, str(j.file), j.line, j.template_chain, dict(j.paths)) for j in result.jobs}


def bump(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


def test_unchanged_files_come_from_the_cache_and_equal_a_fresh_resolution(many):
    first = resolve([], cwd=many.root, cached=True)
    assert first.reused == 0 and len(first.jobs) == 7
    again = resolve([], cwd=many.root, cached=True)
    assert again.reused == 7
    assert docs(again) == docs(resolve([], cwd=many.root)) == docs(first)


def test_editing_one_spec_resolves_only_it(many):
    resolve([], cwd=many.root, cached=True)
    bump(many.root / "job-4.yaml", "fromTemplateId: other\nentry: compose\nscript: Edited.\n")
    result = resolve([], cwd=many.root, cached=True)
    assert result.reused == 6
    assert result.job("job-4")[0]["script"] == "Edited."


def test_editing_a_template_resolves_its_users_only(many):
    resolve([], cwd=many.root, cached=True)
    bump(many.root / "templates" / "weekly.yaml", "tone: calm\nplatforms: [tiktok]\ntopic: 'W{{ week }}'\n")
    result = resolve([], cwd=many.root, cached=True)
    assert result.reused == 4  # job-3..5 and up use `other`
    assert [j["topic"] for j in result.jobs if j.name in ("job-0", "job-1")] == ["W0", "W1"]


def test_errors_are_never_cached(many):
    many.write("bad.yaml", "entry: compose\nscript: x\ndurationMins: lots\n")
    for _ in range(2):
        result = resolve([], cwd=many.root, cached=True)
        assert any(d.file == "bad.yaml" for d in result.diagnostics)
    assert result.reused == 7


def test_a_removed_media_file_is_an_error_again(many):
    resolve([], cwd=many.root, cached=True)
    (many.root / "media" / "clip.mp4").unlink()
    result = resolve([], cwd=many.root, cached=True)
    assert any(d.file == "up.yaml" and "not found" in d.message for d in result.diagnostics)


def test_a_corrupt_cache_is_ignored_and_rebuilt(many):
    resolve([], cwd=many.root, cached=True)
    (cache,) = (many.root / ".afx" / "resolve").iterdir()
    for damage in (b"", cache.read_bytes()[:100], b"\x00" * 32 + cache.read_bytes()[32:]):
        cache.write_bytes(damage)
        result = resolve([], cwd=many.root, cached=True)
        assert result.reused == 0 and docs(result) == docs(resolve([], cwd=many.root))
    assert resolve([], cwd=many.root, cached=True).reused == 7


def test_a_file_changed_within_the_clock_tick_is_read_again(many):
    # Same size, same mtime (as a fast second edit can leave it): the content decides.
    resolve([], cwd=many.root, cached=True)
    path = many.root / "job-0.yaml"
    st = path.stat()
    path.write_text(path.read_text().replace("Job 0.", "Job X."))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    result = resolve([], cwd=many.root, cached=True)
    assert result.job("job-0")[0]["script"] == "Job X."


def test_concurrent_resolutions_leave_a_whole_cache(many):
    code = ("import sys; from pathlib import Path; from afx.spec.resolve import resolve\n"
            "for i in range(15): assert len(resolve([], cwd=Path(sys.argv[1]), cached=True).jobs) == 7\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(many.root)]) for _ in range(2)]
    for i in range(15):  # meanwhile, edits that change what gets written
        bump(many.root / "job-5.yaml", f"fromTemplateId: other\nentry: compose\nscript: Round {i}.\n")
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    result = resolve([], cwd=many.root, cached=True)
    assert result.job("job-5")[0]["script"] == "Round 14."
    assert docs(result) == docs(resolve([], cwd=many.root))


def test_a_cached_job_has_every_field_a_job_has():
    import dataclasses

    from afx.spec import cache
    from afx.spec.job import Job

    # (cached jobs are made without Job.__init__: a new field must be set there too)
    assert {f.name for f in dataclasses.fields(Job)} == cache._FIELDS


def test_spec_files_are_found_as_os_walk_finds_them(tmp_path):
    from afx.spec.repo import CONFIG_NAME, SKIP_DIRS, SPEC_SUFFIXES, spec_files

    root = tmp_path / "r"
    for rel in ["b.yaml", "a.yml", "x.txt", ".hidden.yaml", "afx.yaml", "z/c.yaml", "z/y/d.yaml", "out/e.yaml",
                ".git/f.yaml", "m/g.yaml", "dir.yaml/h.yaml"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("{}\n")
    (root / "link.yaml").symlink_to(tmp_path / "outside.yaml")
    (tmp_path / "outside.yaml").write_text("{}\n")
    (root / "linked-dir").symlink_to(root / "z", target_is_directory=True)  # listed, not entered
    expected = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS)
        expected += [Path(dirpath).resolve() / n for n in sorted(filenames)
                     if not n.startswith(".") and n != CONFIG_NAME and n.endswith(SPEC_SUFFIXES)]
    links: set[Path] = set()
    assert spec_files(root, links) == expected
    assert links == {root.resolve() / "link.yaml"}
