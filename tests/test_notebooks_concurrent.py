"""Several notebooks, or a notebook and a script, on one cache at once
(issue 15, part 9).

Two real Jupyter kernels (what JupyterLab runs, one process per notebook)
and the real CLI, on one DuckDB file. Before, the second kernel's setup
cell stopped with ``StoreLockedError ... locked by process N (ipykernel)``
while the first notebook was open, the CLI failed the same way, and a
ReviewQueue held a writable connection for the whole session.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pe_toolkit import synth

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
jupyter_client = pytest.importorskip("jupyter_client")


def _run(kc, code: str, timeout: float = 300) -> str:
    """Execute ``code`` in the kernel; return what it printed (stdout and
    stderr); fail the test with the traceback if the cell raised."""
    out: list[str] = []
    errors: list[str] = []

    def hook(msg) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out.append(content["text"])
        elif kind == "error":
            errors.append("\n".join(content["traceback"]))

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    if reply["content"]["status"] != "ok":
        pytest.fail(f"cell failed:\n{code}\n{''.join(errors)}")
    return "".join(out)


def _wait_for_status(kc, msg_id: str, state: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status" and msg["content"]["execution_state"] == state:
            return
    pytest.fail(f"the kernel never became {state}")


def _collect(kc, msg_id: str, timeout: float = 600) -> str:
    """What a cell started with ``kc.execute`` printed, once it has finished."""
    out: list[str] = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            pytest.fail("cell failed:\n" + "\n".join(msg["content"]["traceback"]))
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(out)


def _wait_until_written_elsewhere(cache: Path, timeout: float = 120) -> None:
    """Until another process holds the cache for writing (a probe that
    fails at once: a read-only open is refused only by a writer)."""
    from pe_toolkit.errors import StoreLockedError
    from pe_toolkit.store import Store

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            Store(cache, read_only=True, lock_wait=0).close()
        except StoreLockedError:
            return
        time.sleep(0.02)
    pytest.fail("no other process took the cache for writing")


@pytest.fixture
def kernels(tmp_path):
    from jupyter_client.manager import start_new_kernel

    # In the project folder, as JupyterLab starts them (the settings find the bundled sample there).
    started = [start_new_kernel(kernel_name="python3", cwd=str(ROOT)) for _ in range(2)]
    try:
        yield [kc for _, kc in started]
    finally:
        for km, kc in started:
            kc.stop_channels()
            km.shutdown_kernel(now=True)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("pe-toolkit")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300)


SETUP = """
import pe_toolkit as pe
from pe_toolkit import widgets as pw
from pe_toolkit.widgets.explorer_query import ExplorerQuery
CACHE = {cache!r}
store = pw.open_for_notebook(CACHE, source="sample", progress=False)
print("conversations", store.count())
"""


def test_two_notebooks_and_the_cli_share_one_cache(kernels, tmp_path):
    cache = tmp_path / "cache.duckdb"
    first, second = kernels
    assert "conversations 2000" in _run(first, SETUP.format(cache=str(cache)))
    # The second notebook opens while the first is open (it stopped here before).
    assert "conversations 2000" in _run(second, SETUP.format(cache=str(cache)))
    explored = _run(second, "q = ExplorerQuery(store)\nq.set(text='anxious')\nprint('matches', q.count())")
    assert int(explored.split()[-1]) > 0
    # A CLI import while both notebooks are open.
    extra = tmp_path / "extra.jsonl"
    synth.write(extra, 25, seed=99, progress=False)
    done = _cli("import", str(extra), "--db", str(cache), "--dataset", "extra")
    assert done.returncode == 0, done.stderr
    # Both notebooks see it, and their widgets' state survives.
    assert "conversations 2025" in _run(first, "print('conversations', store.count())")
    assert "conversations 2025" in _run(second, "q.reload()\nprint('conversations', store.count(), q.count() > 0)")
    # ... and the CLI can analyze beside them too.
    done = _cli("analyze", "--db", str(cache))
    assert done.returncode == 0, done.stderr


def test_review_queue_labels_while_another_notebook_analyzes(kernels, tmp_path):
    cache = tmp_path / "cache.duckdb"
    labeller, analyst = kernels
    _run(labeller, SETUP.format(cache=str(cache)))
    _run(
        labeller,
        "from pe_toolkit.widgets import ReviewQueue\n"
        "wstore = pw.open_for_notebook(CACHE, source='cache', analyze=False, writable=True, progress=False)\n"
        "ids = wstore.sql('SELECT id FROM conversations ORDER BY id LIMIT 3')['id'].to_list()\n"
        "queue = ReviewQueue(wstore, ids=ids, reviewer='ana', task='quality', labels=('good', 'bad'))",
    )
    _run(analyst, f"import pe_toolkit as pe\nastore = pe.open_store({str(cache)!r}, hold=False)")
    # The analyst re-scores everything (holding the cache for seconds) while
    # the labeller clicks three labels: the clicks wait, nothing fails.
    msg_id = analyst.execute("print(pe.analyze(astore, incremental=False, progress=False))")
    # Wait until the analysis holds the cache, then click.
    _wait_for_status(analyst, msg_id, "busy")
    _wait_until_written_elsewhere(cache)
    printed = _run(labeller, "for _ in range(3):\n    queue.label('good')\nprint(queue.labels().height)")
    analysed = _collect(analyst, msg_id)
    assert printed.strip().splitlines()[-1] == "3"
    assert "waiting for" in printed and "free again" in printed  # the clicks met the analysis, and waited
    assert "scored 2,000 conversations" in analysed
    # Both wrote: the labels and the analysis run are in the cache.
    from pe_toolkit.store import open_store

    # A script beside both kernels: it waits at most for the notebooks' linger.
    started = time.monotonic()
    with open_store(cache, read_only=True, lock_wait=30) as store:
        assert time.monotonic() - started < 10
        assert store.scalar("SELECT count(*) FROM annotations WHERE reviewer = 'ana'") == 3
        assert store.scalar("SELECT count(*) FROM analysis_runs WHERE status = 'completed'") >= 2
