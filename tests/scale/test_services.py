"""The real servers the scale tests run on (afx/testing/services.py) come up and work."""

from __future__ import annotations


def test_s3_server_takes_an_object_once_with_create_if_absent(s3_server):
    import pytest
    import s3fs

    s3_server.make_bucket("afx-smoke")
    fs = s3fs.S3FileSystem(key=s3_server.key, secret=s3_server.secret,
                           client_kwargs={"endpoint_url": s3_server.endpoint})
    with fs.open("afx-smoke/a", "xb") as f:
        f.write(b"first")
    with pytest.raises(OSError), fs.open("afx-smoke/a", "xb") as f:
        f.write(b"second")
    assert fs.cat("afx-smoke/a") == b"first"


def test_postgres_gives_fresh_databases(postgres_url):
    from sqlalchemy import create_engine, text

    from afx.testing.services import new_database

    url = new_database(postgres_url, "afx_smoke")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x int)"))
    engine.dispose()
    engine = create_engine(new_database(postgres_url, "afx_smoke"))  # again: empty
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pg_tables WHERE tablename = 't'")).scalar() == 0
    engine.dispose()
