"""Audit of the CLI as a new user meets it (2026-12-07): what it got wrong,
through the real CLI on real DuckDB files."""

from __future__ import annotations

import gzip
import os
import signal
import socket
import subprocess
import sys
import time

import orjson
import pytest
from click.testing import CliRunner

from pe_toolkit import synth
from pe_toolkit.cli import cli
from pe_toolkit.store import Store

from .cli_support import one_error_line
from .conftest import child_env


@pytest.fixture
def cache(tmp_path):
    path = tmp_path / "c.duckdb"
    data = tmp_path / "s.jsonl"
    synth.write(data, 6, seed=3, progress=False)
    assert CliRunner().invoke(cli, ["--db", str(path), "import", str(data)]).exit_code == 0
    return path


def _ids(cache):
    with Store(cache, read_only=True) as store:
        return store.conversations()["id"].to_list()


def _exported_ids(path):
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


def test_export_empty_ids_file_selects_no_conversation(tmp_path, cache):
    # Before: an ids file listing no id read as "no id filter", and the
    # export held every conversation in the cache.
    empty = tmp_path / "ids.txt"
    empty.write_text("\n  \n")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(cli, ["--db", str(cache), "export", str(out), "--ids-file", str(empty)])
    assert result.exit_code == 0, result.output
    assert _exported_ids(out) == []
    # --id beside it still selects that one
    first = _ids(cache)[0]
    result = CliRunner().invoke(cli, ["--db", str(cache), "export", str(out), "--id", first, "--ids-file", str(empty)])
    assert result.exit_code == 0, result.output
    assert _exported_ids(out) == [first]


def test_export_ids_file_with_byte_order_mark_keeps_its_first_id(tmp_path, cache):
    wanted = _ids(cache)[:2]
    ids = tmp_path / "ids.txt"
    ids.write_text("\r\n".join(wanted) + "\r\n", encoding="utf-8-sig")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(cli, ["--db", str(cache), "export", str(out), "--ids-file", str(ids)])
    assert result.exit_code == 0, result.output
    assert sorted(_exported_ids(out)) == sorted(wanted)


def test_export_ids_file_not_text_is_one_line(tmp_path, cache):
    # Before: a UnicodeDecodeError traceback.
    binary = tmp_path / "ids.gz"
    binary.write_bytes(gzip.compress(b"a\nb\n"))
    out = tmp_path / "out.jsonl"
    line = one_error_line(CliRunner().invoke(cli, ["--db", str(cache), "export", str(out), "--ids-file", str(binary)]))
    assert "--ids-file" in line and "UTF-8" in line
    assert not out.exists()


# -- Ctrl-C: one line and exit 130 wherever it lands ---------------------------------

# A command registered in the real CLI's table for the test: the real
# click group, signal, asyncio and logging machinery then run as they do
# for a shipped command.
_RUN_WITH = """
import sys
import time
from pe_toolkit.cli import COMMANDS, main
COMMANDS["probe"] = ("probe_cmd", "probe_cmd", "a test command")
main(["probe"])
"""


def _run_probe(tmp_path, module_text: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "probe_cmd.py").write_text(module_text)
    env = child_env()
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env['PYTHONPATH']}"
    return subprocess.run([sys.executable, "-c", _RUN_WITH], env=env, capture_output=True, text=True, timeout=120)


def test_ctrl_c_while_the_command_loads_is_an_interrupt(tmp_path):
    # The subcommand's module is imported while the arguments are parsed
    # (polars, DuckDB: 1.2-1.5 s measured, 3 s on a busy machine): Ctrl-C
    # there printed click's "Aborted!" and exited 1, the status of an
    # expected failure.
    done = _run_probe(tmp_path, "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(30)\n")
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines() == ["pe-toolkit: interrupted"], done.stderr


def test_ctrl_c_leaves_no_asyncio_traceback_after_the_interrupted_line(tmp_path):
    # `report` interrupted mid-notebook: nbclient's cell task failed with
    # DeadKernelError as the kernel was shut down, and asyncio printed
    # "Task exception was never retrieved" and its traceback after the
    # interrupted line (2 runs of 14 measured).
    module = '''
import asyncio, os, signal, time
import click

@click.command("probe")
def probe_cmd():
    async def cell():
        raise RuntimeError("Kernel died")
    loop = asyncio.new_event_loop()
    task = loop.create_task(cell())
    loop.run_until_complete(asyncio.sleep(0.01))  # the task fails; nobody reads its exception
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(30)
'''
    done = _run_probe(tmp_path, module)
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines() == ["pe-toolkit: interrupted"], done.stderr


# -- sync: an API that does not answer -----------------------------------------------


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sync_to_an_api_that_does_not_answer_names_it_and_what_to_check(tmp_path, monkeypatch):
    # Before: "GET /v1/conversations?limit=1&offset=0: ConnectError: [Errno
    # 111] Connection refused", naming neither the server nor PE_API_URL.
    port = _closed_port()
    key = "sekrit_key_0123456789"
    monkeypatch.setenv("PE_API_URL", f"http://user:pass_word@127.0.0.1:{port}")
    monkeypatch.setenv("PE_API_KEY", key)
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "c.duckdb"), "sync", "--mode", "incremental"])
    line = one_error_line(result)
    assert f"http://127.0.0.1:{port}/v1/conversations" in line and "PE_API_URL" in line, line
    assert key not in result.output and "pass_word" not in result.output


def test_sync_when_every_api_url_refuses_names_the_last_error(tmp_path, monkeypatch):
    # Before: "all 2 API endpoints: circuit open after repeated failures;
    # failing fast, next probe in 30 s": the health checks that opened the
    # circuits kept no error, so the line said nothing of what failed.
    first, second = _closed_port(), _closed_port()
    key = "sekrit_key_0123456789"
    monkeypatch.setenv("PE_API_URL", f"http://127.0.0.1:{first},http://user:pass_word@127.0.0.1:{second}")
    monkeypatch.setenv("PE_API_KEY", key)
    for mode in ("incremental", "bulk"):
        result = CliRunner().invoke(cli, ["--db", str(tmp_path / f"{mode}.duckdb"), "sync", "--mode", mode])
        line = one_error_line(result)
        assert "all 2 API endpoints" in line and "last error: http://127.0.0.1:" in line, line
        assert "Connection refused" in line or "ConnectError" in line, line
        assert key not in result.output and "pass_word" not in result.output


# -- sql: Ctrl-C stops a long query ------------------------------------------------------


def test_ctrl_c_stops_a_long_sql_query(cache):
    # Before: the main thread sat inside DuckDB, where Python's signal
    # handlers do not run: Ctrl-C on a self-join of the messages table
    # took 480 s to end the command (this query: hours), SIGTERM likewise.
    query = "SELECT count(*) FROM range(1000000000000) t(a) WHERE a % 7 = 3"
    holder = Store(cache)  # held until the command waits for it: then it is certainly past its start-up
    with subprocess.Popen([sys.executable, "-m", "pe_toolkit", "--db", str(cache), "sql", query],
                          env=child_env(PE_LOCK_WAIT="120"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:  # fmt: skip
        try:
            assert proc.stderr is not None
            first = proc.stderr.readline()
            assert "waiting for" in first, first
            holder.close()
            time.sleep(2)  # the store let go: the command opens the cache and starts the query
            proc.send_signal(signal.SIGINT)
            started = time.monotonic()
            proc.wait(60)
            stopped_in = time.monotonic() - started
        finally:
            holder.close()
            if proc.poll() is None:  # pragma: no cover - only when the test fails
                proc.kill()
        rest = proc.stderr.read()
    assert proc.returncode == 130, rest
    assert rest.strip().splitlines()[-1:] == ["pe-toolkit: interrupted"] and "Traceback" not in rest, rest
    assert stopped_in < 30
