"""Personal data in what the views show: the viewer, the review queue and
the explorer redact on request or by the kernel's setting (pw.redact_views),
and `pe-toolkit report --redact` makes every notebook's views do so."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pe_toolkit import widgets as pw
from pe_toolkit.ingest import import_file
from pe_toolkit.report import build_reports
from pe_toolkit.store import Store

EMAIL, PHONE, ID = "sam.rivers@example.org", "07700 900123", "intake-jo.bloggs@example.com"


def _cache(folder: Path) -> Path:
    """Three conversations; each user message carries an e-mail and a phone,
    and one conversation's id is an e-mail (ids come from the source)."""
    data = folder / "mine.jsonl"
    lines = []
    for i, cid in enumerate((ID, "c1", "c2")):
        messages = [
            {"role": "user", "content": f"I feel so low lately ({i}). Reach me at {EMAIL} or on {PHONE}."},
            {"role": "assistant", "content": "That sounds really hard. What has been weighing on you most?"},
            {"role": "user", "content": "My name is Priya, by the way."},
            {"role": "assistant", "content": "Thank you for telling me, Priya."},
        ]
        lines.append(orjson.dumps({"id": cid, "dataset": "clinic", "messages": messages}))
    data.write_bytes(b"\n".join(lines) + b"\n")
    path = folder / "cache.duckdb"
    with Store(path) as store:
        import_file(store, data, progress=False)
    return path


@pytest.fixture
def kernel_setting():
    yield
    pw.redact_views(False)  # the setting is kernel-wide: never leak it into other tests


def test_the_viewer_redacts_text_and_header_by_request_or_kernel_setting(tmp_path, kernel_setting):
    with Store(_cache(tmp_path), read_only=True) as store:
        plain = pw.ConversationViewer(store, ID, reveal=True).to_html()
        assert EMAIL in plain and PHONE in plain and ID in plain  # the control: shown as stored
        asked = pw.ConversationViewer(store, ID, reveal=True, redact=True).to_html()
        pw.redact_views(True)
        by_setting = pw.ConversationViewer(store, ID, reveal=True).to_html()
        explicit = pw.ConversationViewer(store, ID, reveal=True, redact=False).to_html()
    assert "Priya" in plain
    for html in (asked, by_setting):
        assert EMAIL not in html and PHONE not in html and ID not in html
        assert "[EMAIL]" in html and "[PHONE]" in html
        assert "Priya" not in html  # the reply's "Priya" too: the conversation is redacted as one
    assert EMAIL in explicit  # a view's own argument wins over the kernel's setting


def test_the_review_queue_and_the_explorer_pass_redact_to_their_viewer(tmp_path, kernel_setting):
    with Store(_cache(tmp_path)) as store:
        queue = pw.ReviewQueue(store, ids=[ID, "c1"], reviewer="r1", redact=True)
        assert EMAIL not in queue.viewer.to_html() and "[EMAIL]" in queue.viewer.to_html()
        explorer = pw.Explorer(store, redact=True)
        assert "[PHONE]" in explorer.open("c1").to_html()
        pw.redact_views(True)
        assert "[EMAIL]" in pw.ReviewQueue(store, ids=["c2"], reviewer="r1").viewer.to_html()


def test_a_redacted_report_shows_no_personal_data(tmp_path):
    cache = _cache(tmp_path)
    (built,) = build_reports(tmp_path / "out", notebooks=["01_getting_started"], cache=cache,
                             parameters={"source": "cache"}, progress=False, redact=True)  # fmt: skip
    html = built.html.read_text()
    assert built.error is None, built.error
    assert "[EMAIL]" in html  # a conversation is shown, redacted
    # An id holding an e-mail is pseudonymised on the page too, as exports do.
    assert EMAIL not in html and PHONE not in html and ID not in html
    assert "redact_views=True" in html  # the footer says how it was made


def test_the_live_analyzer_redacts_under_the_kernel_setting(kernel_setting):
    analyzer = pw.LiveAnalyzer(user=f"I'm Priya. Mail me at {EMAIL}.", reply="Thanks for reaching out, Priya.")
    assert EMAIL in analyzer.to_html() and "Priya" in analyzer.to_html()
    pw.redact_views(True)
    analyzer = pw.LiveAnalyzer(user=f"I'm Priya. Mail me at {EMAIL}.", reply="Thanks for reaching out, Priya.")
    html = analyzer.to_html()
    assert EMAIL not in html and "Priya" not in html and "[EMAIL]" in html


def test_every_curated_notebook_can_redact_and_others_are_refused(tmp_path):
    from pe_toolkit.errors import InputError
    from pe_toolkit.report import declared_parameters, find_notebooks

    assert all("redact_views" in declared_parameters(p) for p in find_notebooks(None))
    mine = tmp_path / "mine.ipynb"
    import nbformat

    cell = nbformat.v4.new_code_cell("cache = None", metadata={"tags": ["parameters"]})
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    nbformat.write(nbformat.v4.new_notebook(cells=[cell], metadata=kernel), mine)
    with pytest.raises(InputError, match="no redact_views parameter"):
        build_reports(tmp_path / "out", notebooks=[mine], cache=_cache(tmp_path), progress=False, redact=True)


def test_quoted_texts_behind_a_warning_are_redacted_under_the_kernel_setting(kernel_setting):
    """07_validity's tables of confident errors quote the labelled texts: a
    report --redact showed them as written (a review of the report audit)."""
    import polars as pl

    from pe_toolkit.widgets.html import warned_table

    frame = pl.DataFrame({"gold": ["other"], "text": [f"Write to me at {EMAIL} or call {PHONE}."]})
    plain = warned_table("errors", frame)
    assert EMAIL in plain and "content warning" in plain and "<details" in plain  # the control
    pw.redact_views(True)
    html = warned_table("errors", frame)
    assert EMAIL not in html and PHONE not in html and "[EMAIL]" in html and "[PHONE]" in html
    # Redacted before it is cut: an e-mail across the cut was half shown (a review).
    long = pl.DataFrame({"text": ["a" * 280 + f" mail {EMAIL} now"]})
    cut = warned_table("errors", long, max_chars=300)
    assert EMAIL.split("@")[0] not in cut and "[EMAIL]" in cut and "a" * 280 in cut
