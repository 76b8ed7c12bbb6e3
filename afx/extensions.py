"""afx's extension registries, and the parts of the schemas made from them.

Each extension point is one registry, a dict by name:

- publishers: afx.publish.publishers (PUBLISHERS, and APIS: what `api` means per platform)
- layouts: afx.media.layouts (LAYOUTS)
- caption styles: afx.media.captions (STYLES; where lines sit: PLACES)
- platforms: afx.media.platforms (PLATFORMS)

The schemas stay committed source files (editors read them, and the API's OpenAPI document is
made from them), but every part that lists registry names is written from the registries:
`make schemas` (python -m afx.extensions) writes them, and tests/test_registries.py fails when
a committed schema and the registries disagree. The parts:

- job: `platforms` (enum, maxItems); `copy.<platform>` (one overrides block per platform);
  one duration rule per platform whose long videos are shorter than durationMins allows;
  `render.layout` (enum and description); `render.captions.style` (enum and description);
  `render.captions.position` (enum).
- config: `publish.<platform>` (the publisher choices); `publish.api.<platform>` (each
  platform API's base URL).

An extension registered while afx runs (afx.testing.extensions, for tests) is accepted by
specs because these same parts are made again, in memory, from the registries as they are.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Mapping
from typing import Any

from afx.media.captions import PLACES, STYLES
from afx.media.layouts import LAYOUTS
from afx.media.platforms import PLATFORMS
from afx.publish.publishers import APIS, DEFAULT, choices
from afx.spec.schema import KINDS, schema_dir, schema_text

Schema = dict[str, Any]

OVERRIDES = "Overrides for one platform."  # the description of a copy.<platform> block
CHOICE = ("Where this platform's videos go: outbox (a folder to upload by hand), webhook, or the platform's "
          "own API.")  # the description of a publish.<platform> choice


def apply(docs: Mapping[str, Schema]) -> None:
    """Write the registry-made parts into the schema documents (kind -> document), in place."""
    _job(docs["job"])
    _config(docs["config"])


def _named(summaries: Mapping[str, str]) -> str:
    return ", ".join(f"{name} ({summary})" for name, summary in summaries.items())


def _job(job: Schema) -> None:
    props = job["properties"]
    props["platforms"]["items"]["enum"] = list(PLATFORMS)
    props["platforms"]["maxItems"] = len(PLATFORMS)
    _copy_overrides(props["copy"])
    _duration_rules(job)
    render = job["$defs"]["render"]["properties"]
    layout = render["layout"]
    layout["enum"] = list(LAYOUTS)
    layout["description"] = ("How a source becomes 9:16 for a short: "
                             + _named({name: lay.summary for name, lay in LAYOUTS.items()}) + ".")
    captions = render["captions"]["properties"]
    captions["style"]["enum"] = list(STYLES)
    captions["style"]["description"] = ("How the words are shown: "
                                        + _named({name: s.summary for name, s in STYLES.items()}) + ".")
    captions["position"]["enum"] = list(PLACES)


def _copy_overrides(copy_field: Schema) -> None:
    """copy.<platform>: the general fields again, for one platform; placed after them."""
    general = {k: v for k, v in copy_field["properties"].items()
               if not (isinstance(v, dict) and v.get("description") == OVERRIDES)}
    block = {"type": "object", "additionalProperties": False, "properties": copy.deepcopy(general),
             "description": OVERRIDES, "examples": [{"title": "CS2 clutch #shorts"}]}
    copy_field["properties"] = {**general, **{name: copy.deepcopy(block) for name in PLATFORMS}}


def _duration_rules(job: Schema) -> None:
    """A rule for each platform that takes fewer minutes than durationMins allows, where the
    platforms' rules were (the end of the cross-field rules, at first)."""
    rules: list[Schema] = job["allOf"][0]["then"]["allOf"]
    at = next((i for i, r in enumerate(rules) if _platform_rule(r)), len(rules))
    kept = [r for r in rules if not _platform_rule(r)]
    most = job["properties"]["durationMins"]["maximum"]
    made = []
    for name, platform in PLATFORMS.items():
        minutes = int(platform.profiles["long"].max_seconds // 60)
        if minutes >= most:
            continue
        if not platform.too_long:
            raise ValueError(f"{name} takes long videos of at most {minutes} minutes: its record "
                             "(afx/media/platforms.py) needs the message for specs asking more (too_long)")
        made.append({
            "if": {"required": ["platforms"], "properties": {"platforms": {"contains": {"const": name}}}},
            "then": {"properties": {"durationMins": {"maximum": minutes}}},
            "errorMessage": platform.too_long.format(minutes=minutes),
            "x-afx-field": "durationMins",
            "x-afx-at": ["durationMins"],
        })
    rules[:] = kept[:at] + made + kept[at:]


def _platform_rule(rule: Schema) -> bool:
    return "const" in rule.get("if", {}).get("properties", {}).get("platforms", {}).get("contains", {})


def _config(config: Schema) -> None:
    publish = config["properties"]["publish"]
    props = publish["properties"]
    rest = {k: v for k, v in props.items() if not (isinstance(v, dict) and v.get("description") == CHOICE)}
    choice = {"description": CHOICE, "enum": choices(), "default": DEFAULT, "examples": [DEFAULT]}
    publish["properties"] = {**{name: copy.deepcopy(choice) for name in PLATFORMS}, **rest}
    rest["api"]["properties"] = {name: {"description": f"{name} API base URL.", "type": "string",
                                        "pattern": "^https?://", "examples": [api.base_url]}
                                 for name, api in APIS.items()}


def made() -> dict[str, str]:
    """kind -> the schema file's text as the registries make it (from the committed text)."""
    docs = {kind: json.loads(schema_text(kind)) for kind in KINDS}
    apply(docs)
    return {kind: dump(doc) for kind, doc in docs.items()}


def dump(doc: Schema) -> str:
    """A schema file's text: as the committed files are written (2-space JSON, UTF-8 as is)."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m afx.extensions",
                                     description="Write the schemas' registry-made parts (make schemas).")
    parser.add_argument("--check", action="store_true", help="only say which schema files are out of date")
    args = parser.parse_args(argv)
    stale = {kind: text for kind, text in made().items() if text != schema_text(kind)}
    for kind, text in stale.items():
        path = schema_dir() / f"{kind}.schema.json"
        if args.check:
            print(f"{path}: out of date with the registries: run make schemas", file=sys.stderr)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
