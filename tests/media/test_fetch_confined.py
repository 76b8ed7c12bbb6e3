"""Every byte a fetch downloads goes through afx's checked connection, or the fetch fails
naming the feature that would have needed another program (issue 11, hole 1).

The origin is one loopback server reachable under two names: `localhost` (allowed by the
policy) and `127.0.0.1` (a loopback address, refused). A request the origin logs under
`127.0.0.1` is a request that slipped past the policy.
"""

from __future__ import annotations

import subprocess

import pytest

from afx.media import ytguard
from afx.media.fetch import fetch
from afx.media.ffmpeg import SOURCE_INPUT, MediaError, ffmpeg_exe, run
from afx.media.netguard import Policy
from afx.media.probe import probe
from tests.mediafix import ff

LOCALHOST = Policy(frozenset({"localhost"}))


def leaked(origin) -> list[str]:
    """Requests that reached the origin under the refused name."""
    return [r for r in origin.requests if r.startswith("127.0.0.1")]


def segment(origin, name: str = "seg.ts", seconds: int = 2) -> None:
    ff("-f", "lavfi", "-i", f"testsrc2=s=160x120:r=15:d={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
       "-f", "mpegts", str(origin.root / name))


def refused(origin, tmp_path, url: str, policy: Policy = LOCALHOST) -> str:
    with pytest.raises(MediaError) as info:
        fetch(url, tmp_path, "source0", policy)
    assert not list(tmp_path.glob("source0*")), "a refused fetch leaves nothing behind"
    return str(info.value)


def test_the_sample_aes_playlist_of_the_report_fetches_nothing_past_the_policy(origin, tmp_path):
    segment(origin)
    (origin.root / "key").write_bytes(b"k" * 16)
    (origin.root / "p.m3u8").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:5\n"
        f'#EXT-X-KEY:METHOD=SAMPLE-AES,URI="{origin.url("key")}"\n#EXT-X-KEY:METHOD=NONE\n'
        f"#EXTINF:4.0,\n{origin.url('seg.ts')}\n#EXT-X-ENDLIST\n")
    message = refused(origin, tmp_path, origin.url("p.m3u8", host="localhost"))
    assert "METHOD=SAMPLE-AES" in message and "ffmpeg" in message, message
    assert leaked(origin) == [] and not any("/seg.ts" in r or "/key" in r for r in origin.requests)


def _aes_playlist(origin, key_host: str) -> str:
    (origin.root / "enc.key").write_bytes(bytes(range(16)))
    (origin.root / "keyinfo").write_text(f"{origin.url('enc.key', host=key_host)}\n{origin.root / 'enc.key'}\n")
    ff("-f", "lavfi", "-i", "testsrc2=s=160x120:r=15:d=2", "-c:v", "libx264", "-preset", "ultrafast", "-f", "hls",
       "-hls_time", "1", "-hls_playlist_type", "vod", "-hls_key_info_file", str(origin.root / "keyinfo"),
       "-hls_segment_filename", str(origin.root / "aes%d.ts"), str(origin.root / "aes.m3u8"))
    return origin.url("aes.m3u8", host="localhost")


def test_an_aes_128_playlist_is_decrypted_natively_through_the_guard(origin, tmp_path):
    # Without pycryptodomex yt-dlp would hand AES-128 to ffmpeg; afx keeps it native.
    path = fetch(_aes_playlist(origin, "localhost"), tmp_path, "source0", LOCALHOST)
    assert abs(probe(path).duration - 2) < 0.5
    assert any("/enc.key" in r for r in origin.requests) and leaked(origin) == []


def test_a_key_uri_on_a_disallowed_host_is_refused(origin, tmp_path):
    message = refused(origin, tmp_path, _aes_playlist(origin, "127.0.0.1"))
    assert "refusing to connect to 127.0.0.1" in message, message
    assert leaked(origin) == []


def test_a_segment_that_redirects_to_a_disallowed_host_is_refused(origin, tmp_path):
    segment(origin)
    origin.redirects["/hop.ts"] = origin.url("seg.ts")
    (origin.root / "v.m3u8").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n"
                                        f"#EXTINF:2.0,\n{origin.url('hop.ts', host='localhost')}\n#EXT-X-ENDLIST\n")
    message = refused(origin, tmp_path, origin.url("v.m3u8", host="localhost"))
    assert "refusing to connect to 127.0.0.1" in message, message
    assert leaked(origin) == [] and any("/hop.ts" in r for r in origin.requests)


def _live_dash(origin) -> str:
    (origin.root / "live.mpd").write_text(
        '<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" '
        'availabilityStartTime="2026-01-01T00:00:00Z" minimumUpdatePeriod="PT2S" '
        'profiles="urn:mpeg:dash:profile:isoff-live:2011"><Period id="0" start="PT0S">'
        '<AdaptationSet contentType="video" mimeType="video/mp4"><Representation id="v" bandwidth="100000" '
        f'width="160" height="120"><BaseURL>{origin.url("")}</BaseURL>'
        '<SegmentTemplate timescale="1" duration="2" initialization="init.m4s" media="c$Number$.m4s" '
        'startNumber="1"/></Representation></AdaptationSet></Period></MPD>\n')
    return "live.mpd"


def _live_hls(origin) -> str:
    (origin.root / "live.m3u8").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n"
                                           f"#EXTINF:2.0,\n{origin.url('seg.ts')}\n")
    return "live.m3u8"


def _rtmp_page(origin) -> str:
    (origin.root / "rtmp.html").write_text(
        f'<html><body><video><source src="rtmp://127.0.0.1:{origin.port}/live/stream" type="video/mp4">'
        "</video></body></html>")
    return "rtmp.html"


def _drm_hls(origin) -> str:
    (origin.root / "drm.m3u8").write_text('#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-KEY:METHOD=SAMPLE-AES,'
                                          'URI="skd://key",KEYFORMAT="com.apple.streamingkeydelivery"\n'
                                          f"#EXTINF:2.0,\n{origin.url('seg.ts')}\n#EXT-X-ENDLIST\n")
    return "drm.m3u8"


@pytest.mark.parametrize("make,says", [
    (_live_hls, "live HLS stream"),
    (_live_dash, "live DASH stream"),
    (_rtmp_page, "rtmp"),
    (_drm_hls, "DRM"),
])
def test_every_path_yt_dlp_hands_to_another_program_is_refused(origin, tmp_path, make, says):
    segment(origin)
    message = refused(origin, tmp_path, origin.url(make(origin), host="localhost"))
    assert says in message, message
    assert leaked(origin) == []
    assert not any(r.endswith((".ts", ".m4s")) for r in origin.requests), origin.requests


def test_dash_with_separate_audio_is_fetched_natively_and_merged_locally(origin, tmp_path):
    ff("-f", "lavfi", "-i", "testsrc2=s=160x120:r=15:d=3", "-f", "lavfi", "-i", "sine=d=3", "-map", "0:v",
       "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-c:a", "aac", "-f", "dash",
       "-seg_duration", "1", "-use_template", "1", "-use_timeline", "0",
       "-adaptation_sets", "id=0,streams=v id=1,streams=a", str(origin.root / "vod.mpd"))
    path = fetch(origin.url("vod.mpd", host="localhost"), tmp_path, "source0", LOCALHOST)
    info = probe(path)
    assert info.has_audio and abs(info.duration - 3) < 0.5
    assert leaked(origin) == [] and any("chunk-stream1" in r for r in origin.requests)


def test_inside_the_guard_no_other_downloader_or_program_runs_and_ffmpeg_reads_only_local_media(tmp_path):
    import yt_dlp
    from yt_dlp.downloader.external import FFmpegFD
    from yt_dlp.utils import Popen

    others = [cls for cls in ytguard._downloaders() if cls.__name__ not in ytguard._NATIVE]
    names = {cls.__name__ for cls in others}
    assert {"FFmpegFD", "Aria2cFD", "CurlFD", "RtmpFD", "WebSocketFragmentFD", "NiconicoLiveFD"} <= names
    available = FFmpegFD.__dict__["available"]
    with ytguard.confined(LOCALHOST), yt_dlp.YoutubeDL({"quiet": True}) as ydl:
        for fd in others:  # every downloader yt-dlp has that is not its own HTTP/HLS/DASH/ISM/F4M
            with pytest.raises(ytguard.Refused):
                fd(ydl, {}).real_download(str(tmp_path / "x.mp4"), {"url": "http://127.0.0.1/x", "protocol": "http"})
        with pytest.raises(FileNotFoundError, match="curl"):
            Popen(["curl", "http://127.0.0.1/"])  # to yt-dlp, no other program is installed
        proc = Popen([ffmpeg_exe(), "-hide_banner", "-i", "file:nothing.mp4"], stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
        proc.wait()
        assert proc.args[1:] == ["-hide_banner", *SOURCE_INPUT, "-i", "file:nothing.mp4"]
    assert FFmpegFD.__dict__["available"] is available, "the guard restores what it patched"


def _disguised(origin, tmp_path, text: str, name: str = "clip.mp4"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text,what", [
    ("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{seg}\n#EXT-X-ENDLIST\n", "HLS playlist"),
    ("ffconcat version 1.0\nfile '{seg}'\n", "concat list"),
])
def test_a_playlist_disguised_as_a_video_is_never_followed(origin, tmp_path, text, what):
    segment(origin)
    path = _disguised(origin, tmp_path, text.format(seg=origin.url("seg.ts")))
    with pytest.raises(MediaError, match=what):
        probe(path, label="media/clip.mp4")
    # ffmpeg run by afx, even where a call left out the whitelist, opens no URL...
    with pytest.raises(MediaError):
        run(["-i", str(path), "-f", "null", "-"], what="reading")
    assert origin.requests == []


def test_source_inputs_read_no_file_a_playlist_names(tmp_path):
    # ...and fetched material is read as a media container only: a playlist of local files
    # (another account's upload, say) is not a source either.
    secret = tmp_path / "secret.ts"
    ff("-f", "lavfi", "-i", "testsrc2=s=160x120:r=15:d=1", "-c:v", "libx264", "-f", "mpegts", str(secret))
    path = _disguised(None, tmp_path, f"#EXTM3U\n#EXTINF:1.0,\n{secret}\n#EXT-X-ENDLIST\n", "clip.m3u8")
    with pytest.raises(MediaError, match="failed"):
        run([*SOURCE_INPUT, "-i", str(path), "-f", "null", "-"], what="reading")
    assert "-protocol_whitelist" in SOURCE_INPUT and "hls" not in SOURCE_INPUT[-1].split(",")


def test_afx_run_of_such_a_job_fails_its_ingest_as_the_inputs_fault(origin, repo, monkeypatch):
    monkeypatch.delenv("AFX_PIPELINE", raising=False)
    segment(origin)
    (origin.root / "p.m3u8").write_text(
        f'#EXTM3U\n#EXT-X-TARGETDURATION:5\n#EXT-X-KEY:METHOD=SAMPLE-AES,URI="{origin.url("key")}"\n'
        f"#EXTINF:4.0,\n{origin.url('seg.ts')}\n#EXT-X-ENDLIST\n")
    repo.write("afx.yaml", "version: 1\nfetch: {allow_hosts: [localhost]}\n")
    repo.write("a.yaml", f"url: {origin.url('p.m3u8', host='localhost')}\ntopic: x\n")
    r = repo.afx("run", "--until", "ingest")
    assert r.code == 3, r.text
    assert "a: ingest" in r.err and "METHOD=SAMPLE-AES" in r.err, r.err
    assert leaked(origin) == [] and not (repo.root / "out" / "a").exists()


@pytest.fixture
def listener():
    """A TCP listener on 127.0.0.1 that counts the connections it is sent (an FTP server, say)."""
    import socket
    import threading

    sock = socket.create_server(("127.0.0.1", 0))
    sock.settimeout(0.2)
    accepted: list[tuple] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, peer = sock.accept()
            except OSError:
                continue
            accepted.append(peer)
            conn.sendall(b"220 ready\r\n")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1], accepted
    stop.set()
    thread.join()
    sock.close()


@pytest.mark.parametrize("how", ["redirect", "page", "segment"])
def test_ftp_is_never_opened_however_it_is_reached(origin, tmp_path, listener, how):
    # Found in review: urllib's FTP handler opens sockets of its own, unchecked.
    port, accepted = listener
    ftp = f"ftp://127.0.0.1:{port}/secret.mp4"
    if how == "redirect":
        origin.redirects["/go"] = ftp
        url = origin.url("go", host="localhost")
    elif how == "page":
        (origin.root / "p.html").write_text(f'<html><body><video><source src="{ftp}" type="video/mp4"></video>'
                                            "</body></html>")
        url = origin.url("p.html", host="localhost")
    else:
        (origin.root / "f.m3u8").write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{ftp}\n#EXT-X-ENDLIST\n")
        url = origin.url("f.m3u8", host="localhost")
    message = refused(origin, tmp_path, url)
    assert "ftp" in message, message
    assert accepted == [], "a connection reached the FTP port"
