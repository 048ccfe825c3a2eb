"""SIGTERM stops any command as Ctrl-C does (``timeout``, ``kill``, a
service manager, ``docker stop``): exit 130 with one line, not death by
signal leaving partial files and runs marked running (from a crash audit)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from pe_toolkit.store import Store

from .conftest import SAMPLE, child_env


@pytest.mark.parametrize("command", [["import", str(SAMPLE), "--no-progress"], ["analyze", "--no-progress"]], ids=["import", "analyze"])
def test_sigterm_stops_a_command_as_ctrl_c_does(tmp_path, command):
    cache = tmp_path / "cache.duckdb"
    env = child_env(PE_LOCK_WAIT="120")
    # The command waits for the cache this test holds: a moment at which it
    # is certainly running, whatever the machine's speed.
    with Store(cache):
        with subprocess.Popen([sys.executable, "-m", "pe_toolkit", "--db", str(cache), *command], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:  # fmt: skip
            try:
                assert proc.stderr is not None
                first = proc.stderr.readline()  # "waiting for ...: process N ..."
                assert "waiting for" in first, first
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
            finally:
                if proc.poll() is None:  # pragma: no cover - only when the test fails
                    proc.kill()
            rest = proc.stderr.read()
    assert proc.returncode == 130, (first, rest)
    assert rest.strip().splitlines()[-1:] == ["pe-toolkit: interrupted"], rest
    assert "Traceback" not in rest


def test_the_cli_entry_point_loads_no_heavy_module_before_it_can_catch_ctrl_c():
    # The console script imports pe_toolkit.cli before any handler runs: with
    # the store imported eagerly (DuckDB, polars: about 0.45 s), Ctrl-C in
    # that window printed a 16-55 line traceback and exited -2.
    code = "import sys, pe_toolkit.cli; print(sorted(m for m in ('duckdb', 'polars', 'pyarrow', 'numpy') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
