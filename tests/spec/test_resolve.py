"""Templates, variables and matrices, resolved end to end from files in a temp spec repo."""

from __future__ import annotations

import os

import pytest

from afx.errors import SpecError
from afx.spec import resolve
from afx.spec.load import Mark
from afx.spec.merge import Origins, merge


def names(result):
    return [j.name for j in result.jobs]


def test_merge_rule_deep_maps_replaced_lists_null_removes_job_wins():
    base = {"tone": "hype", "platforms": ["tiktok", "youtube"], "staging": True,
            "render": {"layout": "split", "captions": {"uppercase": True, "size": 80}}}
    over = {"tone": "calm", "platforms": ["instagram"], "staging": None,
            "render": {"captions": {"size": 60, "uppercase": None}}}
    merged, _ = merge(base, Origins(), over, Origins())
    assert merged == {"tone": "calm", "platforms": ["instagram"],
                      "render": {"layout": "split", "captions": {"size": 60}}}
    assert base["render"]["captions"] == {"uppercase": True, "size": 80}  # inputs untouched


def test_merge_keeps_provenance_of_each_value():
    a = Origins({("tone",): ("t.yaml", Mark(1, 1), Mark(1, 7)), ("render",): ("t.yaml", Mark(2, 1), Mark(3, 3)),
                 ("render", "layout"): ("t.yaml", Mark(3, 3), Mark(3, 11))})
    b = Origins({("render",): ("j.yaml", Mark(5, 1), Mark(6, 3)),
                 ("render", "voice"): ("j.yaml", Mark(6, 3), Mark(6, 10))})
    _, o = merge({"tone": "x", "render": {"layout": "fit"}}, a, {"render": {"voice": "v"}}, b)
    assert o.locate(("tone",))[0] == "t.yaml"
    assert o.locate(("render", "layout")) == ("t.yaml", Mark(3, 11))
    assert o.locate(("render", "voice")) == ("j.yaml", Mark(6, 10))


def test_template_chain_merges_in_order_and_is_reported(repo):
    repo.write("templates/base.yaml", """
        tone: hype
        platforms: [tiktok, youtube]
        vars: {game: CS2, week: 1}
        render: {layout: split, captions: {uppercase: true}}
    """)
    repo.write("templates/weekly.yaml", """
        fromTemplateId: base
        name: Weekly
        topic: "Best {{ game }} plays, week {{ week }}"
        vars: {week: 2}
        render: {captions: {position: top}}
    """)
    repo.write("job.yaml", """
        fromTemplateId: weekly
        url: https://clips.twitch.tv/abc
        platforms: [instagram]
        vars: {game: Valorant}
    """)
    result = resolve([repo.root])
    assert result.ok, result.diagnostics
    (job,) = result.jobs
    assert job.name == "job"
    assert job.template_chain == ("weekly", "base")
    assert job["topic"] == "Best Valorant plays, week 2"
    assert list(job["platforms"]) == ["instagram"]
    assert dict(job["render"]["captions"]) == {"uppercase": True, "position": "top"}
    assert job["tone"] == "hype" and job["entry"] == "fetch" and job["durationMins"] == 1
    assert "fromTemplateId" not in job.fields and "vars" not in job.fields


def test_errors_in_template_values_point_at_the_template(repo):
    repo.write("templates/t.yaml", """
        durationMins: 5
    """)
    repo.write("a.yaml", """
        fromTemplateId: t
        url: https://example.com/a.mp4
    """)
    result = resolve([repo.root])
    (d,) = result.diagnostics
    assert d.file.endswith("templates/t.yaml") and d.line == 1 and d.path == "durationMins"
    assert "60 s" in d.message


def test_missing_template_names_the_chain(repo):
    repo.write("templates/a.yaml", "fromTemplateId: b\n")
    repo.write("templates/b.yaml", "fromTemplateId: nope\n")
    repo.write("j.yaml", "fromTemplateId: a\nurl: https://x.org/v\n")
    (d,) = resolve([repo.root]).diagnostics
    assert "'nope' not found (j -> a -> b -> nope)" in d.message
    assert d.file.endswith("templates/b.yaml") and d.path == "fromTemplateId"


def test_template_cycle_names_the_chain(repo):
    repo.write("templates/a.yaml", "fromTemplateId: b\n")
    repo.write("templates/b.yaml", "fromTemplateId: a\n")
    repo.write("j.yaml", "fromTemplateId: a\nurl: https://x.org/v\n")
    (d,) = resolve([repo.root]).diagnostics
    assert "template cycle: j -> a -> b -> a" in d.message


def test_template_id_field_and_multi_template_files(repo):
    repo.write("templates/pack.yaml", "id: one\ntone: calm\n---\nid: two\nfromTemplateId: one\nformat: long\n")
    repo.write("j.yaml", "fromTemplateId: two\nurl: https://x.org/v\ndurationMins: 3\n")
    result = resolve([repo.root])
    assert result.ok, result.diagnostics
    assert result.jobs[0]["tone"] == "calm" and result.jobs[0]["format"] == "long"
    assert sorted(result.templates) == ["one", "two"]


def test_matrix_expands_with_stable_readable_names_and_sets_fields(repo):
    repo.write("m.yaml", """
        name: clutch
        url: "https://clips.example/{{ game }}.mp4"
        topic: "{{ game | upper }} clutch"
        matrix:
          game: [cs2, valorant]
          platforms: [[tiktok], [youtube, instagram]]
          exclude: [{game: valorant, platforms: [tiktok]}]
          include: [{game: apex, platforms: [tiktok]}]
    """)
    result = resolve([repo.root])
    assert result.ok, result.diagnostics
    assert names(result) == ["clutch-cs2-tiktok", "clutch-cs2-youtube-instagram",
                             "clutch-valorant-youtube-instagram", "clutch-apex-tiktok"]
    by = {j.name: j for j in result.jobs}
    assert list(by["clutch-cs2-youtube-instagram"]["platforms"]) == ["youtube", "instagram"]
    assert by["clutch-apex-tiktok"]["url"] == "https://clips.example/apex.mp4"
    assert by["clutch-valorant-youtube-instagram"]["topic"] == "VALORANT clutch"
    assert dict(by["clutch-cs2-tiktok"].matrix) == {"game": "cs2", "platforms": ("tiktok",)}
    assert result.job("clutch") == result.jobs  # the base name selects every expansion


def test_matrix_name_may_use_variables(repo):
    repo.write("m.yaml", """
        name: "{{ game }}-short"
        entry: compose
        script: hi
        matrix: {game: [a, b]}
    """)
    assert names(resolve([repo.root])) == ["a-short", "b-short"]


def test_matrix_error_points_at_the_value_that_came_from_the_matrix(repo):
    repo.write("m.yaml", """
        url: https://x.org/v
        matrix:
          durationMins: [1, 500]
    """)
    (d,) = resolve([repo.root]).diagnostics
    assert (d.line, d.path) == (3, "durationMins") and "maximum of 120" in d.message


def test_matrix_too_large_is_an_error(repo):
    repo.write("m.yaml", "url: https://x.org/v\nmatrix: {a: " + str(list(range(20))) + ", b: " +
               str(list(range(20))) + "}\n")
    (d,) = resolve([repo.root]).diagnostics
    assert "400 jobs" in d.message and d.path == "matrix"


def test_builtins_and_job_name_in_vars(repo):
    repo.write("j.yaml", "entry: compose\nscript: hi\ntopic: '{{ afx.job }} on {{ afx.today }}'\n")
    assert resolve([repo.root]).jobs[0]["topic"] == "j on 2026-11-28"


def test_duplicate_job_names_across_files(repo):
    repo.write("a.yaml", "name: same\nentry: compose\nscript: hi\n")
    repo.write("b.yaml", "name: same\nentry: compose\nscript: hi\n")
    (d,) = resolve([repo.root]).diagnostics
    assert d.file.endswith("b.yaml") and d.path == "name" and "a.yaml:1" in d.message


def test_local_file_is_relative_to_its_spec_and_must_stay_inside(repo, tmp_path):
    repo.write("media/clip.mp4", b"\x00" * 16)
    repo.write("sub/j.yaml", "entry: upload\nfile: ../media/clip.mp4\n")
    result = resolve([repo.root])
    assert result.ok, result.diagnostics
    assert result.jobs[0].local_path() == (repo.root / "media" / "clip.mp4").resolve()
    (tmp_path / "secret.mp4").write_bytes(b"x")
    os.symlink(tmp_path / "secret.mp4", repo.root / "media" / "link.mp4")
    repo.write("sub/j.yaml", "entry: upload\nfile: ../media/link.mp4\n")
    (d,) = resolve([repo.root]).diagnostics
    assert "leaves the spec repo" in d.message and d.path == "file"


def test_all_errors_of_all_files_in_one_run(repo):
    repo.write("a.yaml", "url: https://x.org/v\ndurationMins: 200\n")
    repo.write("b.yaml", "url: https://x.org/v\ntopik: x\n")
    repo.write("c.yaml", "entry: compose\n")
    with pytest.raises(SpecError) as info:
        resolve([repo.root]).raise_for_errors()
    files = sorted({os.path.basename(d.file) for d in info.value.diagnostics})
    assert files == ["a.yaml", "b.yaml", "c.yaml"]
    assert "3 errors in 3 files" in str(info.value)


def test_job_is_immutable_and_has_a_stable_digest(repo):
    repo.write("j.yaml", "entry: compose\nscript: hi\nrender: {captions: {size: 80}}\n")
    job = resolve([repo.root]).jobs[0]
    with pytest.raises(TypeError):
        job.fields["script"] = "changed"  # type: ignore[index]
    with pytest.raises(TypeError):
        job.fields["render"]["captions"]["size"] = 1  # type: ignore[index]
    again = resolve([repo.root]).jobs[0]
    assert job.digest == again.digest
    repo.write("j.yaml", "entry: compose\nscript: hi!\nrender: {captions: {size: 80}}\n")
    assert resolve([repo.root]).jobs[0].digest != job.digest


def test_api_body_is_exactly_the_post_jobs_fields(repo):
    repo.write("media/a.mp4", b"\x00" * 8)
    repo.write("templates/t.yaml", "tone: hype\nrender: {layout: fit}\n")
    repo.write("j.yaml", """
        fromTemplateId: t
        entry: upload
        file: media/a.mp4
        topic: Ace
        platforms: [tiktok]
        script: local only
    """)
    job = resolve([repo.root]).jobs[0]
    assert job.to_api_body() == {
        "entry": "upload", "fileId": "upload:media/a.mp4", "topic": "Ace", "tone": "hype", "format": "short",
        "durationMins": 1, "platforms": ["tiktok"], "publishMode": "immediate", "staging": False,
    }
    assert job.to_api_body({"media/a.mp4": "file_123"})["fileId"] == "file_123"
