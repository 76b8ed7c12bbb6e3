"""The registries (afx/extensions.py) and the schemas: every enum that lists registry names
is the registry's, and the committed schema files are what `make schemas` writes."""

from __future__ import annotations

import pytest

from afx import extensions
from afx.media.captions import PLACES, STYLES
from afx.media.layouts import LAYOUTS
from afx.media.platforms import PLATFORMS
from afx.publish.publishers import API, APIS, DEFAULT, PUBLISHERS, for_platform
from afx.spec.schema import KINDS, schema, schema_text


@pytest.mark.parametrize("kind", KINDS)
def test_the_committed_schemas_are_made_from_the_registries(kind):
    assert extensions.made()[kind] == schema_text(kind), f"schemas/{kind}.schema.json is out of date: make schemas"


def test_check_mode_finds_nothing_to_write(capsys):
    assert extensions.main(["--check"]) == 0
    assert capsys.readouterr().err == ""


def test_the_enums_are_the_registries():
    job, config = schema("job"), schema("config")
    render = job["$defs"]["render"]["properties"]
    assert render["layout"]["enum"] == list(LAYOUTS)
    assert render["captions"]["properties"]["style"]["enum"] == list(STYLES)
    assert render["captions"]["properties"]["position"]["enum"] == list(PLACES)
    assert job["properties"]["platforms"]["items"]["enum"] == list(PLATFORMS)
    assert job["properties"]["platforms"]["maxItems"] == len(PLATFORMS)
    copy = job["properties"]["copy"]["properties"]
    assert [k for k in copy if k in PLATFORMS] == list(PLATFORMS)
    publish = config["properties"]["publish"]["properties"]
    for platform in PLATFORMS:
        assert publish[platform]["enum"] == [*PUBLISHERS, API] and publish[platform]["default"] == DEFAULT
    assert list(publish["api"]["properties"]) == list(APIS)


def test_duration_rules_come_from_each_platforms_long_profile():
    rules = schema("job")["allOf"][0]["then"]["allOf"]
    limits = {r["if"]["properties"]["platforms"]["contains"]["const"]:
              r["then"]["properties"]["durationMins"]["maximum"]
              for r in rules if "platforms" in r["if"].get("properties", {})}
    assert limits == {"tiktok": 10, "instagram": 15}
    for name, minutes in limits.items():
        assert PLATFORMS[name].profiles["long"].max_seconds == minutes * 60


def test_every_registry_entry_is_complete():
    for name, layout in LAYOUTS.items():
        assert layout.summary and callable(layout.chain), name
    for name, style in STYLES.items():
        assert style.summary and callable(style.events), name
    for name, platform in PLATFORMS.items():
        assert platform.name == name and set(platform.profiles) == {"short", "long"}, name
        assert all(p.platform == name for p in platform.profiles.values()) and platform.by_hand, name
    for name, make in PUBLISHERS.items():
        assert make().name == name
    for name, api in APIS.items():
        assert name in PLATFORMS and api().name == name and api.base_url.startswith("https://")


def test_for_platform_picks_by_the_config():
    assert for_platform("tiktok", {}).name == "outbox"
    assert for_platform("tiktok", {"publish": {"tiktok": "webhook"}}).name == "webhook"
    assert for_platform("instagram", {"publish": {"instagram": "api", "tiktok": "webhook"}}).name == "instagram"
    assert for_platform("youtube", {"publish": {"youtube": None}}).name == "outbox"
