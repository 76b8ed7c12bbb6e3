"""An object store opened from a URL: S3 (s3fs), any fsspec URL, or a plain folder (issue 15).

    store = open_store("s3://bucket/prefix")      # or "gs://...", "memory://x", "/srv/cache"
    store.put_file(path, "cas/ab12...")           # create-if-absent: False if it was there
    store.get_file("cas/ab12...", dest)           # dest appears whole, or not at all
    store.sign("outputs/v.mp4", 3600)             # a presigned GET URL (None for a folder)

Names are `/`-separated paths relative to the store's root, validated (`check_name`): no
`..`, no absolute paths, no empty parts, no backslashes or control characters, so a name
from a request or a remote record cannot reach outside the root.

**Create-if-absent** (`if_absent=True`, the default of `put_file` and `put_bytes`) is atomic
where the backend can make it so: on S3 a PUT with `If-None-Match: *` (s3fs's mode "xb"; AWS,
SeaweedFS and MinIO honour it), in a folder a temp file hard-linked to its name (`link`
fails if the name exists, and a reader never sees a half file). Other fsspec backends get
"xb" where they support it, else a check then a write (documented as racy).

S3 settings: the endpoint, credentials and region come from `options` or the standard
variables AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION
(or whatever botocore finds: a profile, an instance role). Connection timeouts are short
(5 s to connect, one retry), so an unreachable store is an error in seconds, not minutes.

Errors: `ObjectStoreError` (the store cannot be opened or reached: `check()`), and the
backend's own `OSError`s from the other methods. A missing object is `False`/`None` where
the method says so, never an exception. Imports no afx layer (a foundation module).
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from afx.errors import AfxError, ExitStatus

_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")
_S3_SCHEMES = ("s3", "s3a")


class ObjectStoreError(AfxError):
    """The store cannot be opened or reached (a bad URL, no such bucket, no server)."""

    exit_status = ExitStatus.REMOTE_ERROR


def check_name(name: str) -> str:
    """`name` if it is a safe relative object name; ValueError otherwise."""
    if not isinstance(name, str) or not name or len(name) > 1024:
        raise ValueError(f"not an object name: {name!r}")
    if name.startswith("/") or _CONTROL.search(name) or any(p in ("", ".", "..") for p in name.split("/")):
        raise ValueError(f"not an object name: {name!r} (a relative path without '..' or empty parts)")
    return name


class ObjectStore:
    """The interface; `open_store` gives the implementation for a URL."""

    url: str

    def check(self) -> None:
        """Raise ObjectStoreError unless the store can be reached (its bucket or folder exists)."""
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def get_file(self, name: str, dest: Path) -> bool:
        """Download `name` to `dest` (through a temp file beside it, then os.replace: never a
        half file). False if there is no such object."""
        raise NotImplementedError

    def put_file(self, src: Path, name: str, *, if_absent: bool = True) -> bool:
        """Upload `src` as `name`. With if_absent, only if `name` does not exist: False if it did."""
        raise NotImplementedError

    def put_bytes(self, data: bytes, name: str, *, if_absent: bool = True) -> bool:
        raise NotImplementedError

    def read_bytes(self, name: str, *, limit: int | None = None) -> bytes | None:
        """The object's content; None if there is none. ValueError if it exceeds `limit` bytes."""
        raise NotImplementedError

    def sign(self, name: str, expires: int) -> str | None:
        """A URL anyone can GET `name` from for `expires` seconds; None where there is none."""
        return None

    def delete(self, name: str) -> None:
        """Remove `name` (nothing if it is not there)."""
        raise NotImplementedError

    def list(self, prefix: str = "") -> list[str]:
        """The names under `prefix` (a folder-like prefix: "cas/" or "" for everything), sorted."""
        raise NotImplementedError


def open_store(url: str, options: Mapping[str, Any] | None = None, *, base: Path | None = None) -> ObjectStore:
    """The store at `url`: `s3://bucket[/prefix]`, another fsspec URL (`proto://...`), or a
    folder path (relative paths from `base`, default the working directory; `file://` too)."""
    url = str(url).strip()
    if not url:
        raise ObjectStoreError("an object store URL is empty")
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in _S3_SCHEMES:
        return S3Store(url, options or {})
    if scheme in ("", "file", "local"):
        path = Path(url.split("://", 1)[1] if scheme else url).expanduser()
        return FolderStore((base or Path.cwd()) / path if not path.is_absolute() else path)
    return FsspecStore(url, options or {})


class FolderStore(ObjectStore):
    """Objects as files under a folder; writes are temp file + link/replace, never half files."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def _path(self, name: str) -> Path:
        return self.root / check_name(name)

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ObjectStoreError(f"cannot use {self.root} as an object store: {exc}") from None
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise ObjectStoreError(f"cannot read the object store folder {self.root}")

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def get_file(self, name: str, dest: Path) -> bool:
        src = self._path(name)
        try:
            with open(src, "rb") as fh, _temp_beside(Path(dest)) as (tmp, out):
                while chunk := fh.read(1 << 20):
                    out.write(chunk)
                out.close()
                os.replace(tmp, dest)
        except FileNotFoundError:
            return False
        return True

    def _publish(self, write: Any, name: str, if_absent: bool) -> bool:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _temp_beside(path) as (tmp, out):
            write(out)
            out.flush()
            os.fsync(out.fileno())
            out.close()
            if not if_absent:
                os.replace(tmp, path)
                return True
            try:
                os.link(tmp, path)  # atomic, and fails if the name exists: create-if-absent
            except FileExistsError:
                return False
            return True

    def put_file(self, src: Path, name: str, *, if_absent: bool = True) -> bool:
        def write(out: Any) -> None:
            with open(src, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    out.write(chunk)
        return self._publish(write, name, if_absent)

    def put_bytes(self, data: bytes, name: str, *, if_absent: bool = True) -> bool:
        return self._publish(lambda out: out.write(data), name, if_absent)

    def read_bytes(self, name: str, *, limit: int | None = None) -> bytes | None:
        try:
            with open(self._path(name), "rb") as fh:
                data = fh.read(-1 if limit is None else limit + 1)
        except (FileNotFoundError, IsADirectoryError):
            return None
        if limit is not None and len(data) > limit:
            raise ValueError(f"object {name!r} is over {limit} bytes")
        return data

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> list[str]:
        base = self.root / check_name(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not base.is_dir():
            return []
        names = [p.relative_to(self.root).as_posix() for p in base.rglob("*")
                 if p.is_file() and not p.name.startswith(".tmp-")]
        return sorted(names)


class FsspecStore(ObjectStore):
    """Any fsspec filesystem; create-if-absent through mode "xb" where the backend has it."""

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        import fsspec

        self.url = url
        try:
            self.fs, root = fsspec.core.url_to_fs(url, **dict(options))
        except (ImportError, ValueError) as exc:
            raise ObjectStoreError(f"cannot open the object store {url!r}: {exc}") from None
        self.root = str(root).rstrip("/")

    def _path(self, name: str) -> str:
        return f"{self.root}/{check_name(name)}"

    def check(self) -> None:
        try:
            if not self.fs.exists(self.root):
                self.fs.makedirs(self.root, exist_ok=True)
        except Exception as exc:  # noqa: BLE001 - every backend has its own errors
            raise ObjectStoreError(f"cannot reach the object store {self.url}: {exc}") from None

    def exists(self, name: str) -> bool:
        return bool(self.fs.exists(self._path(name)))

    def get_file(self, name: str, dest: Path) -> bool:
        dest = Path(dest)
        with _temp_beside(dest) as (tmp, out):
            out.close()
            try:
                self.fs.get_file(self._path(name), str(tmp))
            except FileNotFoundError:
                return False
            os.replace(tmp, dest)
        return True

    def _put(self, name: str, if_absent: bool, write: Any) -> bool:
        path = self._path(name)
        if if_absent:
            try:
                with self.fs.open(path, "xb") as out:
                    write(out)
                return True
            except FileExistsError:
                return False
            except (ValueError, NotImplementedError, TypeError):
                pass  # no "xb" here: a check then a write (racy, at worst a same-content overwrite)
            except OSError as exc:
                if _precondition_failed(exc):
                    return False
                raise
            if self.fs.exists(path):
                return False
        parent = path.rsplit("/", 1)[0]
        with contextlib.suppress(Exception):
            self.fs.makedirs(parent, exist_ok=True)  # (a no-op for object stores)
        with self.fs.open(path, "wb") as out:
            write(out)
        return True

    def put_file(self, src: Path, name: str, *, if_absent: bool = True) -> bool:
        def write(out: Any) -> None:
            with open(src, "rb") as fh:
                while chunk := fh.read(8 << 20):
                    out.write(chunk)
        return self._put(name, if_absent, write)

    def put_bytes(self, data: bytes, name: str, *, if_absent: bool = True) -> bool:
        return self._put(name, if_absent, lambda out: out.write(data))

    def read_bytes(self, name: str, *, limit: int | None = None) -> bytes | None:
        try:
            with self.fs.open(self._path(name), "rb") as fh:
                data = fh.read(-1 if limit is None else limit + 1)
        except FileNotFoundError:
            return None
        if limit is not None and len(data) > limit:
            raise ValueError(f"object {name!r} is over {limit} bytes")
        return bytes(data)

    def sign(self, name: str, expires: int) -> str | None:
        try:
            return str(self.fs.sign(self._path(name), expiration=int(expires)))
        except NotImplementedError:
            return None

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(name))

    def list(self, prefix: str = "") -> list[str]:
        base = f"{self.root}/{check_name(prefix.rstrip('/'))}" if prefix.strip("/") else self.root
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        cut = len(self.root.rstrip("/")) + 1
        return sorted(str(p)[cut:] for p in found if str(p).startswith(self.root))


class S3Store(FsspecStore):
    """S3 or an S3-compatible server through s3fs; If-None-Match for create-if-absent."""

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        import s3fs

        self.url = url
        rest = url.split("://", 1)[1].strip("/")
        if not rest:
            raise ObjectStoreError(f"{url!r} names no bucket", hint="s3://bucket or s3://bucket/prefix")
        self.bucket = rest.split("/", 1)[0]
        self.root = rest
        opts = dict(options)
        env = os.environ
        client = dict(opts.pop("client_kwargs", {}))
        endpoint = opts.pop("endpoint_url", None) or env.get("AWS_ENDPOINT_URL") or env.get("AWS_ENDPOINT_URL_S3")
        if endpoint:
            client.setdefault("endpoint_url", endpoint)
        region = opts.pop("region", None) or env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION")
        if region:
            client.setdefault("region_name", region)
        for ours, theirs in (("key", "AWS_ACCESS_KEY_ID"), ("secret", "AWS_SECRET_ACCESS_KEY")):
            if ours not in opts and env.get(theirs):
                opts[ours] = env[theirs]
        config = {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 2},
                  **dict(opts.pop("config_kwargs", {}))}
        try:
            self.fs = s3fs.S3FileSystem(client_kwargs=client, config_kwargs=config, **opts)
        except (TypeError, ValueError) as exc:
            raise ObjectStoreError(f"cannot open {url}: {exc}") from None

    def check(self) -> None:
        try:
            self.fs.call_s3("head_bucket", Bucket=self.bucket)
        except FileNotFoundError:
            raise ObjectStoreError(f"no bucket {self.bucket!r} at {self._endpoint()}",
                                   hint="create it, or check the URL") from None
        except Exception as exc:  # noqa: BLE001 - botocore's and aiohttp's errors are many
            raise ObjectStoreError(f"cannot reach {self.url} at {self._endpoint()}: {exc}",
                                   hint="check AWS_ENDPOINT_URL and the credentials") from None

    def _endpoint(self) -> str:
        return str(self.fs.client_kwargs.get("endpoint_url") or "AWS")


def _precondition_failed(exc: BaseException) -> bool:
    """An S3 412 (If-None-Match: * on an existing key), which s3fs reports as an OSError."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = response.get("Error", {}).get("Code")
            if status == 412 or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return True
        seen = seen.__cause__ or seen.__context__
    return "pre-condition" in str(exc).lower() or "precondition" in str(exc).lower()


@contextlib.contextmanager
def _temp_beside(dest: Path) -> Any:
    """(path, open file) of a temp file in dest's folder; removed unless it was moved away."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".tmp-{dest.name[:80]}-{uuid.uuid4().hex[:12]}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    out = os.fdopen(fd, "wb")
    try:
        yield tmp, out
    finally:
        out.close()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


__all__ = ["FolderStore", "FsspecStore", "ObjectStore", "ObjectStoreError", "S3Store", "check_name", "open_store"]
