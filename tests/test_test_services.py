"""The test run's own services: the throwaway PostgreSQL and the skip line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from . import pg_cluster

ROOT = Path(__file__).resolve().parent.parent


def test_the_last_line_names_each_skipped_group_and_why(tmp_path):
    (tmp_path / "test_alpha.py").write_text(
        "import pytest\n"
        "def test_runs(): pass\n"
        "@pytest.mark.skip(reason='no browser here')\n"
        "def test_a(): pass\n"
        "@pytest.mark.skip(reason='no browser here')\n"
        "def test_b(): pass\n"
    )
    (tmp_path / "test_beta.py").write_text("import pytest\npytest.skip('no server', allow_module_level=True)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.skip_summary", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    lines = [line for line in out.stdout.splitlines() if line.startswith("skipped groups:")]
    assert lines == ["skipped groups: test_alpha (2: no browser here); test_beta (1: no server)"], out.stdout


@pytest.mark.skipif(pg_cluster._bindir() is None, reason="PostgreSQL is not installed")
def test_a_throwaway_cluster_answers_with_a_password_and_is_removed():
    import adbc_driver_postgresql.dbapi as pg

    dsn = pg_cluster.start()
    root = Path(pg_cluster._cluster["root"])
    try:
        with pg.connect(dsn) as con, con.cursor() as cur:
            cur.execute("SELECT current_user, current_database()")
            assert cur.fetchone() == ("pe_test", "pe_test")
        with pytest.raises(Exception, match="password authentication failed"):
            pg.connect(dsn.replace("pe_test:pe_test@", "pe_test:wrong@")).close()
    finally:
        pg_cluster.stop()
    assert not root.exists()
