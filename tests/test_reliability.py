"""Round trips of arbitrary text and an import killed with SIGKILL."""

import os
import signal
import subprocess
import sys
import textwrap

import orjson
from hypothesis import HealthCheck, example, given, settings, strategies as st

from pe_toolkit.ingest import import_file
from pe_toolkit.store import Store

from .conftest import conversation

# Any Unicode text but NUL and lone surrogates (which are not valid UTF-8).
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=300)
BIG = "é🙂ש" * 34_000  # ~100 KB of multi-byte text, RTL included


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.lists(text, min_size=1, max_size=6), min_size=1, max_size=5))
@example([[BIG, "", "\u202eRTL override", "tab\tand\r\ncontrol\x01\x1f chars", "👩‍👩‍👧 zwj emoji"]])
def test_any_text_round_trips_unchanged(tmp_path_factory, conversations):
    folder = tmp_path_factory.mktemp("rt")
    records = [
        {"id": f"c{i}", "messages": [{"role": ("user", "assistant")[k % 2], "content": t} for k, t in enumerate(texts)]}
        for i, texts in enumerate(conversations)
    ]
    path = folder / "rt.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    with Store(folder / "rt.duckdb") as store:
        report = import_file(store, path, progress=False)
        assert report.inserted == len(records)
        for record in records:
            back = store.conversation(record["id"])
            assert [(m["role"], m["content"]) for m in back["messages"]] == [(m["role"], m["content"]) for m in record["messages"]]
        assert import_file(store, path, progress=False).unchanged == len(records)


KILLER = textwrap.dedent("""
    import sys
    from pe_toolkit.events import EventBus
    from pe_toolkit.ingest import import_file
    from pe_toolkit.store import Store
    bus = EventBus()
    bus.subscribe("conversation.created", lambda e: print("batch", flush=True))
    with Store(sys.argv[1]) as store:
        import_file(store, sys.argv[2], progress=False, chunk_bytes=64 * 1024, events=bus)
    print("finished", flush=True)
""")


def test_sigkill_mid_import_then_rerun_gives_exactly_the_source(tmp_path, write_jsonl):
    records = [conversation(i, n_messages=2 + i % 9) for i in range(6000)]
    path = write_jsonl(records, "big.jsonl")
    db = tmp_path / "killed.duckdb"
    proc = subprocess.Popen([sys.executable, "-c", KILLER, str(db), str(path)], stdout=subprocess.PIPE, text=True)
    try:
        batches = 0
        for line in proc.stdout:
            batches += line.startswith("batch")
            if batches == 3:
                os.kill(proc.pid, signal.SIGKILL)
                break
        assert batches == 3, "the import finished before it could be killed"
    finally:
        proc.wait(timeout=60)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    with Store(db) as store:
        partial = store.count()
        assert 0 < partial < len(records)
        # Whatever survived is whole: every conversation has all its messages.
        assert store.scalar(
            "SELECT count(*) FROM conversations c WHERE message_count <> "
            "(SELECT count(*) FROM messages m WHERE m.conversation_id = c.id)"
        ) == 0
        report = import_file(store, path, progress=False)
        assert report.inserted == len(records) - partial
        assert report.unchanged == partial
        assert store.scalar("SELECT count(*) - count(DISTINCT id) FROM conversations") == 0
        assert store.scalar("SELECT count(*) FROM (SELECT conversation_id, idx FROM messages GROUP BY ALL HAVING count(*) > 1)") == 0
        got = store.sql("SELECT id, content_hash FROM conversations ORDER BY id")
    with Store(tmp_path / "clean.duckdb") as clean:
        import_file(clean, path, progress=False)
        assert clean.sql("SELECT id, content_hash FROM conversations ORDER BY id").equals(got)
        assert clean.scalar("SELECT count(*) FROM messages") == sum(len(r["messages"]) for r in records)


def test_a_dsn_passed_to_a_report_is_masked_in_the_html_and_the_error(tmp_path):
    """A warehouse DSN given as a report parameter never reaches the page in
    clear: not in the footer, not in the injected parameters cell, not in a
    cell's output, not in the failure message (issue 15, part 8)."""
    import nbformat
    import pytest

    from pe_toolkit.errors import ReportError
    from pe_toolkit.report import build_reports

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    params = nbformat.v4.new_code_cell("cache = None\nstatic_report = False\nwarehouse_dsn = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell("print('loading into', warehouse_dsn)"),
        nbformat.v4.new_code_cell("raise RuntimeError('cannot reach ' + warehouse_dsn)"),
    ]
    path = tmp_path / "09_dsn.ipynb"
    nbformat.write(nb, path)
    secret = "Sup3r-s3cret&pw"
    dsn = "postgresql://analyst:Sup3r-s3cret%26pw@db.example:5432/research"
    with pytest.raises(ReportError) as info:
        build_reports(tmp_path / "out", notebooks=[path], parameters={"warehouse_dsn": dsn}, include_code=True, progress=False)
    html = (tmp_path / "out" / "09_dsn.html").read_text()
    for form in (secret, "Sup3r-s3cret%26pw", "Sup3r-s3cret&amp;pw", "Sup3r-s3cret"):
        assert form not in html and form not in str(info.value)
    assert "warehouse_dsn='postgresql://analyst:***@db.example:5432/research'" in html  # the footer, masked
    assert "loading into postgresql://analyst:***@db.example:5432/research" in html  # the output, masked
