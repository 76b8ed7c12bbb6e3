"""Probing sources, the address policy, and fetching from a loopback server."""

from __future__ import annotations

import shutil

import pytest

from afx.media.fetch import fetch
from afx.media.ffmpeg import MediaError
from afx.media.netguard import BlockedAddress, Policy, classify
from afx.media.probe import probe, sniff_mp4
from tests.mediafix import ff

ALLOW_LOOPBACK = Policy(frozenset({"127.0.0.1"}))


def test_probe_reads_streams(media):
    p = probe(media["story"])
    assert (p.width, p.height, p.fps) == (640, 360, 30.0)
    assert abs(p.duration - 24) < 0.1 and p.has_audio and p.video_codec == "h264"
    assert p.format.startswith("mov,mp4")


def test_probe_applies_rotation(media):
    p = probe(media["rotated"])
    assert p.rotation == 90 and (p.width, p.height) == (360, 640)


@pytest.mark.parametrize("name,message", [
    ("audio-only", "has no video stream (audio)"),
    ("text", "not a video ffmpeg can read"),
    ("truncated", "not a video ffmpeg can read"),
    ("cut", "truncated"),
    ("empty", "file is empty (0 bytes)"),
])
def test_probe_refuses_bad_files_clearly(media, name, message):
    with pytest.raises(MediaError) as info:
        probe(media[name], label=f"media/{name}.mp4")
    assert f"media/{name}.mp4" in str(info.value) and message in str(info.value)


def test_sniff_checks_content_not_name(media):
    assert sniff_mp4(media["plain"]) and not sniff_mp4(media["text"])


@pytest.mark.parametrize("address,why", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("10.1.2.3", "private"), ("172.16.0.1", "private"),
    ("192.168.1.1", "private"), ("169.254.169.254", "link-local"), ("100.64.0.1", "carrier-grade NAT"),
    ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"), ("::1", "loopback"), ("fe80::1", "link-local"),
    ("fd00::1", "private"), ("::ffff:127.0.0.1", "loopback (in IPv6)"), ("::ffff:169.254.169.254", "link-local"),
    ("2002:7f00:1::", "loopback (in IPv6)"), ("64:ff9b::a9fe:a9fe", "link-local (in IPv6)"),
    ("fd00:ec2::254", "private"), ("fec0::1", "site-local"),
])
def test_non_public_addresses_are_refused(address, why):
    assert classify(address).startswith(why.split(" (")[0])


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "1.1.1.1"])
def test_public_addresses_pass(address):
    assert classify(address) == ""


def test_allow_list_opens_a_host():
    with pytest.raises(BlockedAddress):
        Policy().check("127.0.0.1", "127.0.0.1")
    ALLOW_LOOPBACK.check("127.0.0.1", "127.0.0.1")
    with pytest.raises(BlockedAddress):
        ALLOW_LOOPBACK.check("localhost", "127.0.0.1")  # the name, not the address, is allowed


def test_fetch_direct_mp4(server, media, tmp_path):
    base, root, _ = server
    shutil.copy(media["plain"], root / "clip.mp4")
    path = fetch(f"{base}/clip.mp4", tmp_path, "source0", ALLOW_LOOPBACK)
    assert path.read_bytes() == media["plain"].read_bytes()


def test_fetch_page_with_video_tag(server, media, tmp_path):
    base, root, _ = server
    shutil.copy(media["plain"], root / "clip.mp4")
    (root / "page.html").write_text('<html><body><video src="clip.mp4" controls></video></body></html>')
    path = fetch(f"{base}/page.html", tmp_path, "source0", ALLOW_LOOPBACK)
    assert probe(path).duration > 3


def test_fetch_hls_natively(server, media, tmp_path):
    base, root, _ = server
    ff("-i", str(media["plain"]), "-c", "copy", "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod",
       str(root / "stream.m3u8"))
    path = fetch(f"{base}/stream.m3u8", tmp_path, "source0", ALLOW_LOOPBACK)
    assert abs(probe(path).duration - 4) < 0.5


@pytest.mark.parametrize("url,policy,message", [
    ("{base}/missing.mp4", ALLOW_LOOPBACK, "HTTP Error 404"),
    ("{base}/nothing.html", ALLOW_LOOPBACK, "Unsupported URL"),
    ("file:///etc/passwd", Policy(), "only http:// and https://"),
    ("http://169.254.169.254/latest/meta-data/", Policy(), "link-local"),
    ("http://[::ffff:127.0.0.1]:{port}/clip.mp4", Policy(), "loopback (in IPv6)"),
    ("http://2130706433:{port}/clip.mp4", Policy(), "(127.0.0.1): loopback"),
    ("{base}/clip.mp4", Policy(), "loopback address"),
    ("{base}/to-private", ALLOW_LOOPBACK, "refusing to connect to localhost"),
    ("{base}/to-metadata", ALLOW_LOOPBACK, "169.254.169.254"),
])
def test_fetch_errors_name_the_url(server, media, tmp_path, url, policy, message):
    base, root, redirects = server
    port = base.rsplit(":", 1)[1]
    shutil.copy(media["plain"], root / "clip.mp4")
    (root / "nothing.html").write_text("<html><body>no video here</body></html>")
    redirects["/to-private"] = f"http://localhost:{port}/clip.mp4"
    redirects["/to-metadata"] = "http://169.254.169.254/latest/meta-data/"
    url = url.format(base=base, port=port)
    with pytest.raises(MediaError) as info:
        fetch(url, tmp_path, "source0", policy)
    assert url in str(info.value) and message in str(info.value), str(info.value)
    assert not list(tmp_path.glob("source0.*"))


def test_fetch_of_an_empty_file_is_an_error(server, tmp_path):
    base, root, _ = server
    (root / "empty.mp4").write_bytes(b"")
    with pytest.raises(MediaError) as info:
        fetch(f"{base}/empty.mp4", tmp_path, "source0", ALLOW_LOOPBACK)
    assert "empty" in str(info.value) or "0 bytes" in str(info.value)


def test_yt_dlp_messages_go_through_afx_logging(server, media, tmp_path, caplog):
    base, root, _ = server
    shutil.copy(media["plain"], root / "clip.mp4")
    with caplog.at_level("DEBUG", logger="afx.fetch"):
        fetch(f"{base}/clip.mp4", tmp_path, "source0", ALLOW_LOOPBACK)
    assert any(r.name == "afx.fetch" and "clip" in r.getMessage() for r in caplog.records)


def test_a_download_over_the_size_limit_stops_and_leaves_nothing(server, media, tmp_path):
    base, root, _ = server
    shutil.copy(media["plain"], root / "clip.mp4")
    size = (root / "clip.mp4").stat().st_size
    dest = tmp_path / "dl"
    dest.mkdir()
    with pytest.raises(MediaError) as info:
        fetch(f"{base}/clip.mp4", dest, "source0", ALLOW_LOOPBACK, max_bytes=size // 2)
    assert "over the limit of" in str(info.value) and "fetch.max_gb in afx.yaml" in str(info.value), str(info.value)
    assert not list(dest.iterdir())
    assert fetch(f"{base}/clip.mp4", dest, "source0", ALLOW_LOOPBACK, max_bytes=size).stat().st_size == size


def test_a_download_known_to_be_too_big_for_the_disk_is_refused_before_it_starts(server, media, tmp_path,
                                                                                  monkeypatch):
    from collections import namedtuple

    from afx.media import fetch as fetch_module
    from afx.media import normalize

    base, root, _ = server
    shutil.copy(media["plain"], root / "clip.mp4")
    dest = tmp_path / "dl"
    dest.mkdir()
    monkeypatch.setattr(fetch_module, "_expected_size", lambda info: 8 * 1024 ** 3)  # the site says 8 GB
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(normalize.shutil, "disk_usage", lambda path: usage(10 ** 12, 0, 2 * 1024 ** 3))
    with pytest.raises(MediaError) as info:
        fetch(f"{base}/clip.mp4", dest, "source0", ALLOW_LOOPBACK, max_bytes=20 * 1024 ** 3)
    assert "not enough free disk" in str(info.value) and "2.1 GB are free" in str(info.value), str(info.value)
    with pytest.raises(MediaError) as info:
        fetch(f"{base}/clip.mp4", dest, "source0", ALLOW_LOOPBACK, max_bytes=4 * 1024 ** 3)
    assert "it is 8 GB, over the limit of 4 GB" in str(info.value), str(info.value)
    assert not list(dest.iterdir())


def test_a_local_file_over_the_limit_is_refused_naming_the_setting(tmp_path, media):
    from tests.conftest import SpecRepo

    repo = SpecRepo(tmp_path / "repo")
    repo.write("afx.yaml", "version: 1\nfetch:\n  max_gb: 0.0001\n")  # about 107 KB
    repo.write("media/big.mp4", (b"\0\0\0\x18ftypmp42" + b"\0" * 200_000))
    repo.write("a.yaml", "entry: upload\nfile: media/big.mp4\ntopic: x\n")
    r = repo.afx("run", "--until", "ingest")
    assert r.code == 3, r.text
    assert "media/big.mp4: the file is 195 KB, over the limit of 105 KB" in r.err, r.err
    assert "raise fetch.max_gb in afx.yaml" in r.err
    assert repo.afx("validate").code == 0
    repo.write("afx.yaml", "version: 1\nfetch:\n  max_gb: 0\n")
    bad = repo.afx("validate")
    assert bad.code == 2 and "max_gb" in bad.err, bad.err
