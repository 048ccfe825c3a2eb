"""A throwaway PostgreSQL for the warehouse tests (a pytest plugin).

``make test`` should test what it claims on any machine with PostgreSQL
installed, started or not. When ``PE_TEST_PG_DSN`` is unset and nothing
answers at the default DSN, this plugin makes a cluster of its own in a
temporary folder with the installed ``initdb`` and ``pg_ctl`` (as the
``postgres`` user when the tests run as root: initdb refuses root), on a
free loopback port, with password authentication over TCP (the tests check
that a wrong password is refused), and removes it when the session ends.
It then sets ``PE_TEST_PG_DSN`` and ``PE_REQUIRE_PG=1`` before the test
modules are imported: a cluster we started and cannot reach is a failure,
not a skip. With no PostgreSQL installed the warehouse tests skip, and the
run's last line says so (see ``skip_summary``).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

DEFAULT_DSN = "postgresql://pe_test:pe_test@127.0.0.1:5432/pe_test"
_cluster: dict[str, str] = {}


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _bindir() -> Path | None:
    """The newest installed server binaries (Debian keeps them off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_owner(argv: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; CI runs as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


def start() -> str | None:
    """Start a throwaway cluster; its DSN, or None when PostgreSQL is not installed."""
    bindir = _bindir()
    if bindir is None:
        return None
    root = Path(tempfile.mkdtemp(prefix="pe-test-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    pwfile = root / "pw"
    pwfile.write_text("pe_test\n")
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres", "postgres")
    port = _free_port()
    data, log = root / "data", root / "log"
    run = lambda argv: subprocess.run(_as_owner(argv), check=True, capture_output=True, text=True, timeout=120)  # noqa: E731
    try:
        run([str(bindir / "initdb"), "-D", str(data), "-U", "pe_test", f"--pwfile={pwfile}", "--auth-local=trust",
             "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"])  # fmt: skip
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"])
        _cluster.update(root=str(root), data=str(data), pg_ctl=str(bindir / "pg_ctl"))
        run([str(bindir / "createdb"), "-h", str(root), "-p", str(port), "-U", "pe_test", "pe_test"])
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        stop()
        detail = getattr(exc, "stderr", "") or str(exc)
        raise RuntimeError(f"could not start a throwaway PostgreSQL from {bindir}: {detail.strip().splitlines()[-1:]}") from exc
    return f"postgresql://pe_test:pe_test@127.0.0.1:{port}/pe_test"


def stop() -> None:
    if not _cluster:
        return
    subprocess.run(_as_owner([_cluster["pg_ctl"], "-D", _cluster["data"], "-m", "immediate", "-w", "stop"]),
                   capture_output=True, timeout=60, check=False)  # fmt: skip
    shutil.rmtree(_cluster["root"], ignore_errors=True)
    _cluster.clear()


def pytest_configure(config) -> None:
    if os.environ.get("PE_TEST_PG_DSN") or _answers("127.0.0.1", 5432):
        return
    if hasattr(config, "workerinput"):  # an xdist worker: the controller owns the cluster
        return
    dsn = start()
    if dsn is not None:
        os.environ["PE_TEST_PG_DSN"] = dsn
        os.environ["PE_REQUIRE_PG"] = "1"


def pytest_unconfigure(config) -> None:
    stop()
