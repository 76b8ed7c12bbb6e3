"""Templates, variables and matrices, resolved end to end from files in a temp spec repo."""

from __future__ import annotations

import os
import time

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


# -- found in review: hostile repos must stay fast, small and clean -------------------------

def test_strings_in_unknown_fields_are_reported_not_rendered(repo):
    junk = "\n".join(["- '{{ x }}{{ x }}'"] * 5000)
    repo.write("a.yaml", f"entry: generate\ntopic: t\nvars: {{x: {'a' * 100000}}}\njunk:\n{junk}\n")
    started = time.perf_counter()
    (d,) = resolve([repo.root]).diagnostics
    assert time.perf_counter() - started < 2
    assert d.path == "junk" and d.message == "unknown field"


def test_a_big_template_shared_by_many_jobs_is_merged_once(repo):
    repo.write("templates/big.yaml", "vars: {big: " + str(list(range(15000))) + "}\ntone: calm\n")
    repo.write("a.yaml", "".join(f"---\nname: j{i}\nfromTemplateId: big\nentry: generate\ntopic: t\n"
                                 for i in range(300)))
    started = time.perf_counter()
    result = resolve([repo.root])
    assert result.ok and len(result.jobs) == 300
    assert time.perf_counter() - started < 3


def test_template_chains_are_capped(repo):
    for i in range(40):
        repo.write(f"templates/t{i}.yaml", f"fromTemplateId: t{i + 1}\n" if i < 39 else "tone: x\n")
    repo.write("a.yaml", "fromTemplateId: t0\nentry: generate\ntopic: t\n")
    (d,) = resolve([repo.root]).diagnostics
    assert "longer than 32" in d.message and d.path == "fromTemplateId"


def test_a_broken_template_reports_only_its_own_error(repo):
    repo.write("templates/t.yaml", "entry: fetch\ntonne: x\n")
    repo.write("a.yaml", "fromTemplateId: t\n")
    (d,) = resolve([repo.root]).diagnostics
    assert d.file.endswith("t.yaml") and d.path == "tonne"


def test_matrix_values_that_slug_to_one_name(repo):
    repo.write("m.yaml", "entry: generate\ntopic: t\nmatrix:\n  g: [a-b, a_b]\n")
    (d,) = resolve([repo.root]).diagnostics
    assert d.path == "matrix" and d.line == 3 and "two combinations" in d.message


def test_include_only_empty_matrix(repo):
    repo.write("m.yaml", "entry: generate\ntopic: t\nmatrix: {include: []}\n")
    (d,) = resolve([repo.root]).diagnostics
    assert d.message == "expands to no jobs"


@pytest.mark.parametrize("text,path", [("vars: {afx: 1}", "vars.afx"), ("matrix: {afx: [1]}", "matrix.afx")])
def test_afx_is_reserved_for_built_ins(repo, text, path):
    repo.write("a.yaml", f"entry: generate\ntopic: t\n{text}\n")
    (d,) = resolve([repo.root]).diagnostics
    assert d.path == path and "reserved" in d.message


def test_job_names_that_clash_on_case_insensitive_disks_or_windows(repo):
    repo.write("a.yaml", "name: Clip\nentry: generate\ntopic: t\n")
    repo.write("b.yaml", "name: clip\nentry: generate\ntopic: t\n")
    repo.write("c.yaml", "name: con\nentry: generate\ntopic: t\n")
    repo.write("d.yaml", "name: trailing.\nentry: generate\ntopic: t\n")
    messages = {os.path.basename(d.file): d.message + d.hint for d in resolve([repo.root]).diagnostics}
    assert "(as 'Clip')" in messages["b.yaml"]
    assert "Windows" in messages["c.yaml"]
    assert "not a valid job name" in messages["d.yaml"]


def test_a_spec_linked_from_outside_the_repo_is_not_read(repo, tmp_path):
    outside = tmp_path / "outside.yaml"
    outside.write_text("secret_key: hunter2\n")
    os.symlink(outside, repo.root / "leak.yaml")
    result = resolve([repo.root])
    (d,) = result.diagnostics
    assert d.file.endswith("leak.yaml") and "outside the spec repo" in d.message
    assert "secret" not in str(d)


def test_unusable_local_paths_are_diagnostics(repo):
    os.symlink("loop", repo.root / "loop")
    repo.write("a.yaml", "entry: upload\nfile: loop/x.mp4\n")
    repo.write("b.yaml", "entry: upload\nfile: " + "x" * 300 + ".mp4\n")
    diags = resolve([repo.root]).diagnostics
    assert len(diags) == 2 and all(d.path == "file" and "cannot be used" in d.message for d in diags)


def test_empty_key_is_named(repo):
    repo.write("a.yaml", "entry: generate\ntopic: t\n'': 1\n")
    (d,) = resolve([repo.root]).diagnostics
    assert d.path == '""' and d.message == "unknown field"


def test_long_lists_are_summarised_in_messages(repo):
    repo.write("a.yaml", "url: https://x.org/v\nurls: " + str([f"https://x.org/{i}" for i in range(30)]) + "\n")
    (d,) = resolve([repo.root]).diagnostics
    assert d.message == "has 30 items; at most 20 allowed"


def test_config_errors_are_reported_with_the_rest(repo):
    repo.write("afx.yaml", "version: 1\nfetch: {alow_hosts: [127.0.0.1]}\n")
    repo.write("a.yaml", "entry: generate\n")
    diags = resolve([repo.root]).diagnostics
    assert {d.path for d in diags} == {"fetch.alow_hosts", "topic"}
    assert any('did you mean "allow_hosts"' in d.hint for d in diags)
