"""Issue 2's list of bad input: each gives exit 2, names file, line and field, writes nothing."""

from __future__ import annotations

import json
import re

import pytest

BILLION_LAUGHS = "\n".join(
    ['lol: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"l{n}: &{n} [" + ",".join([f"*{p}"] * 9) + "]" for p, n in zip("abcdefgh", "bcdefghi")]
) + "\n"

CASES = {
    "unknown key": ({"a.job.yaml": "url: https://x.org/v\ndurtionMins: 1\n"},
                    "a.job.yaml", 2, "durtionMins", 'unknown field; did you mean "durationMins"?'),
    "wrong type": ({"a.yaml": "url: https://x.org/v\nstaging: maybe\n"},
                   "a.yaml", 2, "staging", "expected true or false, got a string"),
    "out of range": ({"a.job.yaml": "url: https://x.org/v\nformat: long\n\n\ndurationMins: 200\n"},
                     "a.job.yaml", 5, "durationMins", "200 is greater than the maximum of 120"),
    "missing url for fetch": ({"a.yaml": "topic: hi\nentry: fetch\n"},
                              "a.yaml", 2, "url", "required when entry is fetch"),
    "missing url, entry defaulted": ({"a.yaml": "topic: hi\n"}, "a.yaml", 1, "url", "required when entry is fetch"),
    "missing file for upload": ({"a.yaml": "topic: hi\nentry: upload\n"},
                                "a.yaml", 2, "file", "exactly one of file"),
    "missing scheduledAt": ({"a.yaml": "url: https://x.org/v\npublishMode: scheduled\n"},
                            "a.yaml", 2, "scheduledAt", "required when publishMode is scheduled"),
    "bad scheduledAt": ({"a.yaml": "url: https://x.org/v\npublishMode: scheduled\nscheduledAt: 2026-13-40T09:00:00Z\n"},
                        "a.yaml", 3, "scheduledAt", "date-time"),
    "duplicate job names": ({"a.yaml": "name: x\nurl: https://x.org/v\n", "b.yaml": "url: https://x.org/v\nname: x\n"},
                            "b.yaml", 2, "name", "already used at a.yaml:1"),
    "template cycle": ({"templates/a.yaml": "fromTemplateId: b\n", "templates/b.yaml": "tone: x\nfromTemplateId: a\n",
                        "j.yaml": "fromTemplateId: a\n"},
                       "templates/b.yaml", 2, "fromTemplateId", "template cycle: j -> a -> b -> a"),
    "undefined variable": ({"a.yaml": "url: https://x.org/v\nvars: {game: CS2}\ntopic: 'Best {{ gmae }}'\n"},
                           "a.yaml", 3, "topic", "undefined variable 'gmae'"),
    "sandbox escape": ({"a.yaml": "url: https://x.org/v\ntopic: \"{{ ''.__class__.__mro__ }}\"\n"},
                       "a.yaml", 2, "topic", "unsafe"),
    "alias bomb": ({"a.yaml": BILLION_LAUGHS}, "a.yaml", 4, "ld", "alias"),
    "python tag": ({"a.yaml": "url: https://x.org/v\ntopic: !!python/object/apply:os.system ['id']\n"},
                   "a.yaml", 2, "topic", "tag !!python/object/apply:os.system is not allowed"),
    "non-UTF-8": ({"a.yaml": "url: https://x.org/v\ntopic: caf\xe9\n".encode("latin-1")},
                  "a.yaml", 2, None, "not valid UTF-8"),
    "empty file": ({"a.yaml": ""}, "a.yaml", 1, None, "spec file is empty"),
    "file leaves repo": ({"a.yaml": "entry: upload\nfile: ../../etc/passwd\n"},
                         "a.yaml", 2, "file", "leaves the spec repo"),
    "absolute file": ({"a.yaml": "entry: upload\nfile: /etc/passwd\n"}, "a.yaml", 2, "file", "absolute path"),
    "file url scheme": ({"a.yaml": "url: file:///etc/passwd\n"}, "a.yaml", 1, "url", "http:// or https://"),
    "template-only fields": ({"a.yaml": "url: https://x.org/v\nid: x\n"}, "a.yaml", 2, "id", "unknown field"),
    # clips (issue 14)
    "clips count 0": ({"a.yaml": "url: https://x.org/v\nclips:\n  count: 0\n"},
                      "a.yaml", 3, "clips.count", "0 is less than the minimum of 1"),
    "clips count 51": ({"a.yaml": "url: https://x.org/v\nclips: {count: 51}\n"},
                       "a.yaml", 2, "clips.count", "51 is greater than the maximum of 50"),
    "clips min over max": ({"a.yaml": "url: https://x.org/v\nclips:\n  count: 3\n  min: 40\n  max: 20\n"},
                           "a.yaml", 4, "clips.min", "the shortest clip (40 s) is longer than the longest (20 s)"),
    "clips min over the default max": ({"a.yaml": "url: https://x.org/v\nclips: {count: 3, min: 50}\n"},
                                       "a.yaml", 2, "clips.min", "longer than the longest (45 s)"),
    "clips longer than a short": ({"a.yaml": "url: https://x.org/v\nclips: {count: 3, max: 90}\n"},
                                  "a.yaml", 2, "clips.max", "a short is at most 60 s"),
    "clips on compose": ({"a.yaml": "entry: compose\ntopic: hi\nclips: {count: 3}\n"},
                         "a.yaml", 3, "clips", "only for entry fetch or upload"),
    "clips on generate": ({"a.yaml": "entry: generate\ntopic: hi\nclips: {count: 3}\n"},
                          "a.yaml", 3, "clips", "only for entry fetch or upload"),
    "clips without count": ({"a.yaml": "url: https://x.org/v\nclips: {min: 20}\n"},
                            "a.yaml", 2, "clips.count", "is required"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_exit_2_with_file_line_and_field(repo, case):
    files, file, line, field, fragment = CASES[case]
    for rel, text in files.items():
        repo.write(rel, text)
    before = repo.snapshot()
    result = repo.afx("validate")
    assert result.code == 2, result.text
    pattern = rf"^{re.escape(file)}:{line}:\d+: " + (rf"{re.escape(field)}: " if field else "") + r".*"
    matching = [l for l in result.err.splitlines() if re.match(pattern, l) and fragment in l]
    assert matching, f"no line like {pattern!r} with {fragment!r} in:\n{result.err}"
    assert repo.snapshot() == before
    assert not (repo.root / "out").exists() and not (repo.root / ".afx").exists()


def test_missing_media_warn_in_validate_fail_with_strict_and_in_run(repo):
    # Media are often not in git: CI validates specs without them (issue 12).
    repo.write("a.yaml", "entry: upload\nfile: media/none.mp4\ntopic: x\n")
    where = re.compile(r"a\.yaml:2:\d+: file: 'media/none.mp4' not found")
    plain = repo.afx("validate")
    assert plain.code == 0 and any(where.search(line) and line.startswith("warning")
                                   for line in plain.err.splitlines()), plain.text
    strict = repo.afx("validate", "--strict")
    assert strict.code == 2 and where.search(strict.err), strict.text
    run = repo.afx("run")
    assert run.code == 2 and where.search(run.err), run.text
    machine = repo.afx("validate", "--json")
    assert machine.code == 0 and json.loads(machine.out)["warnings"][0]["path"] == "file"
    repo.write("b.yaml", "entry: upload\nfile: ../outside.mp4\ntopic: x\n")
    assert repo.afx("validate").code == 2, "a path that leaves the repo stays an error"


def test_fifty_megabyte_spec_is_refused_without_reading_it(repo):
    with open(repo.root / "big.yaml", "wb") as fh:
        fh.truncate(50 * 1024 * 1024)
    result = repo.afx("validate")
    assert result.code == 2
    assert re.search(r"^big\.yaml:1:1: spec file is 50\.0 MiB, over the 1 MiB limit", result.err, re.M)


def test_json_mode_reports_the_same_diagnostics(repo):
    repo.write("a.yaml", "url: https://x.org/v\ndurationMins: 200\nformat: long\n")
    result = repo.afx("validate", "--json")
    assert result.code == 2
    data = json.loads(result.out)
    assert data["ok"] is False
    (d,) = data["diagnostics"]
    assert (d["file"], d["line"], d["column"], d["path"]) == ("a.yaml", 2, 15, "durationMins")
