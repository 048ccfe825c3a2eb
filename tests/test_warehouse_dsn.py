"""Connection strings reach libpq as given (real PostgreSQL; see test_warehouse)."""

from __future__ import annotations

import pytest

from pe_toolkit.exports.dsn import Dsn

pytestmark = pytest.mark.postgres


def _with_query(dsn: str, query: str) -> str:
    return dsn + ("&" if "?" in dsn else "?") + query


def test_percent_encoded_options_reach_the_server(pg_dsn):
    from pe_toolkit.exports.warehouse import connect

    target = Dsn.parse(_with_query(pg_dsn, "options=-c%20statement_timeout%3D4321"))
    assert "options=-c%20statement_timeout%3D4321" in target.uri
    assert "options=-c%20statement_timeout%3D4321" in target.masked
    con = connect(target)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT current_setting('statement_timeout'), current_setting('application_name')")
            assert cur.fetchone() == ("4321ms", "pe_toolkit")
    finally:
        con.close()


def test_the_defaults_are_added_once_and_a_query_password_is_masked():
    d = Dsn.parse("postgresql://me@db/x?sslmode=require&password=se%20cret&connect_timeout=3")
    assert d.uri == "postgresql://me@db/x?sslmode=require&password=se%20cret&connect_timeout=3&application_name=pe_toolkit"
    assert d.masked == "postgresql://me@db/x?sslmode=require&password=***&connect_timeout=3"
    assert d.password == "se cret"
    assert Dsn.parse("postgresql://me@db/x").uri == "postgresql://me@db/x?connect_timeout=10&application_name=pe_toolkit"


def test_a_uri_without_a_host_keeps_its_slashes_and_connects(pg_dsn):
    # postgresql:///db (libpq's local default, the host in the query string)
    # lost its "//" on the way to libpq: "postgresql:/db", which it rejects.
    from urllib.parse import urlsplit

    from pe_toolkit.exports.warehouse import connect

    d = Dsn.parse("postgresql:///research?host=/var/run/postgresql")
    assert d.uri == "postgresql:///research?host=/var/run/postgresql&connect_timeout=10&application_name=pe_toolkit"
    assert d.masked == "postgresql:///research?host=/var/run/postgresql"
    server = urlsplit(pg_dsn)
    no_host = f"postgresql://{server.path}?host={server.hostname}&port={server.port or 5432}"
    if server.username:
        no_host += f"&user={server.username}"
    if server.password:
        no_host += f"&password={server.password}"
    con = connect(Dsn.parse(no_host))
    try:
        with con.cursor() as cur:
            cur.execute("SELECT current_setting('application_name')")
            assert cur.fetchone() == ("pe_toolkit",)
    finally:
        con.close()
