"""afx report: one static HTML page about the jobs' results (out/report.html).

Per job: thumbnail, a playable video, the score with its parts and suggestions, the copy
per platform, and where it stands on each platform. Links are relative to the page, so
the out/ folder can be copied or served as it is. Everything shown is escaped.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from afx.cli.env import Environment
from afx.cli.targets import select_jobs as select
from afx.errors import ExitStatus
from afx.fsutil import atomic_write

CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#0f1115;color:#e8e8ea}
header{padding:20px 28px;border-bottom:1px solid #23262d}h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#9aa0aa}main{display:grid;gap:22px;padding:22px 28px}
.job{display:grid;grid-template-columns:220px 260px 1fr;gap:20px;background:#171a21;border:1px solid #23262d;
border-radius:12px;padding:18px}.job h2{grid-column:1/-1;margin:0;font-size:17px}
.job h2 small{color:#9aa0aa;font-weight:400;margin-left:8px}img.thumb,video{width:100%;border-radius:8px;
background:#000}.score{font-size:34px;font-weight:700}.parts{width:100%;border-collapse:collapse;font-size:13px}
.parts td{padding:3px 6px;border-bottom:1px solid #23262d}.parts td.n{text-align:right;white-space:nowrap}
.tip{color:#f5c451}.bar{height:6px;border-radius:3px;background:#2a2e37;overflow:hidden}.bar i{display:block;
height:100%;background:#3ecf8e}.platform{margin:0 0 12px}.platform b{text-transform:capitalize}
.state{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;background:#2a2e37;margin-left:6px}
.state.published{background:#1e4d36;color:#8ff0c0}.state.failed{background:#5a1f24;color:#ffb3ba}
.state.scheduled,.state.staged,.state.manual{background:#4a3d16;color:#f5d68a}pre{white-space:pre-wrap;
margin:4px 0;font:13px/1.4 ui-monospace,monospace;background:#0f1115;padding:8px;border-radius:6px}
.missing{color:#9aa0aa;font-style:italic}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _rel(target: Path, page: Path) -> str:
    return Path(os.path.relpath(target, page.parent)).as_posix()


def _clock(t: float) -> str:
    t = int(round(t))
    return f"{t // 3600}:{t // 60 % 60:02d}:{t % 60:02d}" if t >= 3600 else f"{t // 60}:{t % 60:02d}"


def clips_section(name: str, doc: dict[str, Any]) -> str:
    """A job with clips: its clips in rank order with why each was taken (links to their
    sections), and the moments not taken, with why not."""
    rows = []
    for c in doc.get("clips", []):
        rows.append(f'<tr><td class="n">{_e(c["rank"])}</td><td><a href="#{_e(c["name"])}">{_e(c["name"])}</a></td>'
                    f'<td class="n">{_e(_clock(c["start"]))}–{_e(_clock(c["end"]))}</td>'
                    f'<td class="n">{c["seconds"]:.1f} s</td><td class="n">{c["score"]:.2f}</td>'
                    f'<td>{_e(c["why"])}</td></tr>')
    left = [c for c in doc.get("candidates", []) if not c.get("taken")]
    others = "".join(f'<tr><td class="n">{_e(_clock(c["start"]))}–{_e(_clock(c["end"]))}</td>'
                     f'<td class="n">{c["score"]:.2f}</td><td>{_e(c["why"])}</td></tr>' for c in left)
    more = (f'<details><summary>{len(left)} moment{"s" * (len(left) != 1)} not taken</summary>'
            f'<table class="parts">{others}</table></details>') if left else ""
    head = "<tr><td>#</td><td>clip</td><td>in the source</td><td>length</td><td>score</td><td>why</td></tr>"
    return (f'<section class="job clips" id="{_e(name)}"><h2>{_e(name)}<small>{len(rows)} clip'
            f'{"s" * (len(rows) != 1)} of {_e(doc.get("count", len(rows)))} asked for</small></h2>'
            f'<div style="grid-column:1/-1"><table class="parts">{head}{"".join(rows)}</table>{more}</div></section>')


def job_section(name: str, folder: Path, page: Path) -> str:
    result_path = folder / "result.json"
    if not result_path.is_file() and (folder / "clips.json").is_file():
        return clips_section(name, json.loads((folder / "clips.json").read_text(encoding="utf-8")))
    if not result_path.is_file():
        return (f'<section class="job" id="{_e(name)}"><h2>{_e(name)}</h2>'
                '<p class="missing">not built yet: run <code>afx run</code></p></section>')
    result = json.loads(result_path.read_text(encoding="utf-8"))
    copy = json.loads((folder / "copy.json").read_text()) if (folder / "copy.json").is_file() else {}
    extras = result.get("afx") or {}
    score = extras.get("score") or {}
    parts = []
    video, thumb = result.get("videoUrl"), result.get("thumbnailUrl")
    thumb_html = (f'<img class="thumb" src="{_e(_rel(folder / thumb, page))}" alt="thumbnail of {_e(name)}">'
                  if thumb and (folder / thumb).is_file() else '<p class="missing">no thumbnail</p>')
    video_html = (f'<video controls preload="metadata" src="{_e(_rel(folder / video, page))}"'
                  + (f' poster="{_e(_rel(folder / thumb, page))}"' if thumb else "") + "></video>"
                  if video and (folder / video).is_file() else '<p class="missing">no video</p>')
    for part in score.get("parts", []):
        width = 100 * part["points"] / part["max"] if part["max"] else 0
        tip = f'<div class="tip">{_e(part["suggestion"])}</div>' if part.get("suggestion") else ""
        parts.append(f'<tr><td>{_e(part["name"])}<div class="bar"><i style="width:{width:.0f}%"></i></div>{tip}</td>'
                     f'<td class="n">{part["points"]:g} / {part["max"]}</td></tr>')
    platforms = []
    results = {r.get("platform"): r for r in result.get("publishResults", [])}
    per_platform = copy.get("platforms") or {}
    for platform in sorted(set(per_platform) | set(results)):
        r = results.get(platform, {})
        c = per_platform.get(platform, {})
        state = r.get("status") or "not published"
        where = f' <a href="{_e(r["url"])}">{_e(r["url"])}</a>' if r.get("url", "").startswith("http") else (
            f" {_e(r['url'])}" if r.get("url") else "")
        platforms.append(f'<div class="platform"><b>{_e(platform)}</b><span class="state {_e(state)}">{_e(state)}'
                         f'</span>{where}<pre>{_e(c.get("title", ""))}\n\n{_e(c.get("caption", ""))}</pre></div>')
    if not platforms:
        general = result.get("publishCopy") or {}
        tags = " ".join(general.get("hashtags", []))
        text = f'{general.get("title", "")}\n\n{general.get("description", "")}\n{tags}'
        platforms.append(f'<div class="platform"><b>copy</b><pre>{_e(text)}</pre></div>')
    return (f'<section class="job" id="{_e(name)}"><h2>{_e(name)}<small>{_e(result.get("completedAt") or "")}'
            f'</small></h2><div>{thumb_html}</div><div>{video_html}</div><div>'
            f'<div class="score">{_e(score.get("total", "–"))}<small style="font-size:14px;color:#9aa0aa"> / 100'
            f'</small></div><table class="parts">{"".join(parts)}</table>{"".join(platforms)}</div></section>')


def build(root: Path, names: Sequence[str], page: Path) -> str:
    sections = [job_section(n, root / "out" / n, page) for n in names]
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>afx report: {_e(root.name)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>afx report</h1><p>{len(names)} job{'s' * (len(names) != 1)} in {_e(root.name)}</p></header>"
            f"<main>{''.join(sections)}</main></body></html>\n")


def report(env: Environment, targets: Sequence[str], output: str | None) -> int:
    result, jobs = select(targets)
    page = Path(output).resolve() if output else result.root / "out" / "report.html"
    atomic_write(page, build(result.root, [j.name for j in jobs], page))
    if env.json:
        env.emit_json({"report": str(page), "jobs": [j.name for j in jobs]})
    else:
        env.info(f"wrote {page}")
    return int(ExitStatus.OK)
