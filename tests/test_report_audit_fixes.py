"""`pe-toolkit report` as a researcher who shares reports uses it: what the
report audit found. A timeout or a dead kernel becomes a report marked
failed and one error line (not a traceback, with the run's other reports
still written and listed as they finish); bad input (a malformed or
mistyped -p, a reserved parameter, an unusable --out, a cache file that
does not exist, a timeout of 0) is refused in one line before anything runs
or is created; --redact pseudonymises ids that hold personal data
everywhere on the page. Notebooks here are tiny ones written by the tests
(a kernel start each), the curated ones only where refused before running."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import orjson
import pytest

import pe_toolkit.report as report_module
from pe_toolkit.ingest import import_file
from pe_toolkit.report import build_reports, declared_parameters, find_notebooks
from pe_toolkit.store import Store

from .conftest import ROOT

pytestmark = pytest.mark.slow  # kernels: out of `make test-fast`

KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


def notebook(path: Path, *cells: str, params: str = "cache = None\nstatic_report = False") -> Path:
    parameters = nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]})
    nb = nbformat.v4.new_notebook(metadata=KERNEL, cells=[parameters, *(nbformat.v4.new_code_cell(c) for c in cells)])
    nbformat.write(nb, path)
    return path


def cli(*args: str, env_cache: Path) -> subprocess.CompletedProcess:
    """The real command in its own process: what reaches its stderr
    includes what the kernel's process writes there."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(env_cache.parent), "PE_CACHE": str(env_cache), "PE_NO_PROGRESS": "1",
           **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "pe_toolkit", *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)  # fmt: skip


def test_a_timeout_and_a_dead_kernel_are_marked_reports_and_one_error_line(tmp_path):
    ok = notebook(tmp_path / "10_ok.ipynb", "print('all good')")
    slow = notebook(tmp_path / "11_slow.ipynb", "print('before the wait')", "import time; time.sleep(60)")
    dies = notebook(tmp_path / "12_dies.ipynb", "print('before the crash')", "import os; os._exit(3)")
    out = tmp_path / "out"
    result = cli("report", "--out", str(out), "--timeout", "2", *(a for p in (ok, slow, dies) for a in ("--notebook", str(p))),
                 env_cache=tmp_path / "cache.duckdb")  # fmt: skip
    assert result.returncode == 1, result.stderr
    # One line on stderr, naming both failures; no traceback, no kernel noise.
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("pe-toolkit: error:"), result.stderr
    assert "11_slow.ipynb failed at the timeout: a cell ran longer than 2 s" in result.stderr
    assert "12_dies.ipynb failed at a kernel crash" in result.stderr
    # Every report was written, and listed as it was (the good one before the failure line).
    assert f"{out / '10_ok.html'} (" in result.stdout and ", ok)" in result.stdout
    assert result.stdout.count("FAILED") == 2
    good = (out / "10_ok.html").read_text()
    assert "all good" in good and "incomplete" not in good and "written 20" in good
    for name, before in (("11_slow", "before the wait"), ("12_dies", "before the crash")):
        page = (out / f"{name}.html").read_text()
        assert "This report is incomplete" in page and before in page  # what ran, under a banner saying it stopped


@pytest.fixture
def typed(tmp_path):
    return notebook(tmp_path / "13_typed.ipynb",
                    params="cache = None\nstatic_report = False\nsource = 'sample'\nexamples = 10\nratio = 0.5\nflag = True\nlabel = 'x'")  # fmt: skip


@pytest.mark.parametrize(
    "args, message",
    [
        (["-p", "examples"], "expected NAME=VALUE"),
        (["-p", "=3"], "expected NAME=VALUE"),
        (["-p", "examples=ten"], "13_typed expects a whole number (its default is 10)"),
        (["-p", "examples=2.5"], "expects a whole number"),
        (["-p", "examples=True"], "expects a whole number"),
        (["-p", "ratio='high'"], "expects a number"),
        (["-p", "flag=1"], "expects True or False"),
        (["-p", "label=3"], "expects text"),
        (["-p", "static_report=False"], "a report is always static"),
        (["-p", "cache='/elsewhere.duckdb'"], "the cache is --db PATH"),
        (["--timeout", "0"], "timeout must be a positive number"),
        (["--timeout", "nan"], "timeout must be a positive number"),
        (["--out", "{file}"], "it is a file, not a folder"),
        (["--out", "{file}/sub"], "cannot write reports to"),
        (["--db", "{missing}"], "no cache at"),
    ],
)
def test_bad_input_is_refused_in_one_line_before_anything_runs(tmp_path, typed, args, message):
    cache = tmp_path / "cache.duckdb"
    Store(cache).close()
    (tmp_path / "file").write_text("not a folder")
    args = [a.format(file=tmp_path / "file", missing=tmp_path / "typo.duckdb") for a in args]
    db = args[:2] if args[0] == "--db" else ["--db", str(cache)]  # the group's option, before the command
    rest = args[2:] if args[0] == "--db" else args
    result = cli(*db, "report", "--out", str(tmp_path / "out"), "--notebook", str(typed), *rest, env_cache=cache)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("pe-toolkit: error:") and message in result.stderr, result.stderr
    assert not list(tmp_path.rglob("*.html")) and not (tmp_path / "typo.duckdb").exists()


def test_a_missing_cache_is_refused_for_the_curated_notebooks_unless_a_source_is_given(tmp_path):
    missing = tmp_path / "typo.duckdb"
    with pytest.raises(report_module.InputError, match="no cache at"):
        build_reports(tmp_path / "out", notebooks=["02"], cache=missing, progress=False)
    assert not missing.exists() and not (tmp_path / "out").exists()
    # Given a source, the reader asked for the cache to be filled: not refused here.
    declared = {Path("02_quality.ipynb"): declared_parameters(find_notebooks(["02"])[0])}
    report_module._check_cache(missing, True, {"source": "sample"}, declared)
    # The default cache, not named: filled with the bundled sample, as the README says.
    report_module._check_cache(missing, False, {}, declared)


EMAIL_ID = "jo&sam/intake-jo.bloggs@example.com"  # "&" and "/" take other forms in HTML and in plotly's JSON
DATASET = "clinic sam.rivers@example.org"


@pytest.fixture
def pii_ids_cache(tmp_path) -> Path:
    convs = [
        {"id": cid, "dataset": DATASET if cid == "c1" else "clinic", "messages": [
            {"role": "user", "content": "I have been struggling to sleep."},
            {"role": "assistant", "content": "That sounds exhausting. What keeps you awake?"}]}
        for cid in (EMAIL_ID, "c1", "c2")
    ]  # fmt: skip
    return _cache_of(tmp_path, convs)


def _cache_of(tmp_path: Path, convs: list[dict]) -> Path:
    """A cache holding ``convs``, imported as a user's JSONL file would be."""
    data = tmp_path / "mine.jsonl"
    data.write_bytes(b"".join(orjson.dumps(c) + b"\n" for c in convs))
    path = tmp_path / "cache.duckdb"
    with Store(path) as store:
        import_file(store, data, progress=False)
    return path


def test_a_redacted_report_pseudonymises_ids_and_dataset_names_holding_personal_data(tmp_path, pii_ids_cache):
    shows_ids = notebook(
        tmp_path / "14_ids.ipynb",
        "from IPython.display import HTML\nfrom pe_toolkit.store import Store\nimport plotly.express as px\n"
        "with Store(cache, read_only=True) as s:\n    ids = s.sql('SELECT id, dataset FROM conversations ORDER BY id')",
        "print(ids['id'].to_list(), ids['dataset'].to_list())",
        "ids",  # a table
        # plot data, embedded as static reports embed figures (plotly's JSON in the page)
        "HTML(px.scatter(x=[1, 2, 3], y=[3, 1, 2], hover_name=ids['id'].to_list(), text=ids['dataset'].to_list())"
        ".to_html(include_plotlyjs=False, full_html=False))",
        params="cache = None\nstatic_report = False\nredact_views = False",
    )
    (plain,) = build_reports(tmp_path / "plain", notebooks=[shows_ids], cache=pii_ids_cache, progress=False)
    (shared,) = build_reports(tmp_path / "shared", notebooks=[shows_ids], cache=pii_ids_cache, progress=False, redact=True)
    forms = set()
    for raw in (EMAIL_ID, DATASET, "jo.bloggs@example.com", "sam.rivers@example.org"):
        as_json = json.dumps(raw)[1:-1]
        forms |= {raw, html.escape(raw), html.escape(raw, quote=False), as_json, as_json.replace("/", "\\u002f")}
    before, after = plain.html.read_text(), shared.html.read_text()
    assert EMAIL_ID.replace("&", "&amp;") in before and DATASET in before  # the control: shown as stored
    leaked = sorted(f for f in (*forms, "bloggs", "rivers") if f in after)  # not even in a table's cut of the id
    assert not leaked, leaked
    pseudonyms = set(re.findall(r"pseudo_[0-9a-f]{20}", after))
    assert len(pseudonyms) == 1  # one id, the same stand-in in the text, the table and the plot
    assert after.count(next(iter(pseudonyms))) == 3 and "clinic [EMAIL]" in after
    assert "c1" in after and "c2" in after  # ids without personal data stay, joinable to the cache


def test_the_documented_examples_name_parameters_the_notebooks_declare():
    # The module's own example named a parameter 04_safety does not have (min_risk).
    for text in (report_module.__doc__ or "", report_module.build_reports.__doc__ or ""):
        for name, params in re.findall(r'notebooks=\["(\w+)"\], parameters=\{([^}]*)\}', text):
            (path,) = find_notebooks([name])
            assert set(re.findall(r'"(\w+)":', params)) <= set(declared_parameters(path)), (name, params)


def test_a_redacted_report_redacts_a_failing_cells_error_too(tmp_path):
    """A cell's error may quote conversation text: under --redact the page's
    traceback, its banner and the error line showed it as written (a review)."""
    email, phone = "sam.rivers@example.org", "07700 900123"
    failing = notebook(tmp_path / "13_fails.ipynb", f"raise ValueError('no score for: mail {email} or call {phone}')",
                       params="cache = None\nstatic_report = False\nredact_views = False")  # fmt: skip
    cache = tmp_path / "c.duckdb"
    Store(cache).close()
    with pytest.raises(report_module.ReportError) as raised:
        build_reports(tmp_path / "out", notebooks=[str(failing)], cache=cache, progress=False, redact=True)
    page = (tmp_path / "out" / "13_fails.html").read_text()
    for shown in (page, str(raised.value)):
        assert email not in shown and phone not in shown and "[EMAIL]" in shown, shown[:300]
    assert "This report is incomplete" in page and "ValueError" in page


def test_a_redacted_report_pseudonymises_an_id_holding_a_name_said_in_its_conversation(tmp_path):
    # Before, the report scanned ids alone, where "priya" is no name to the
    # scan: the id showed on a page its reader believed redacted (export
    # --redact already read an id with its conversation).
    named, plain_word = "session-priya-raman-01", "session-blue-sky-02"
    convs = [
        {"id": named, "dataset": "clinic", "messages": [
            {"role": "user", "content": "Hi, my name is Priya Raman and I cannot sleep."},
            {"role": "assistant", "content": "Thank you for telling me, Priya. What keeps you awake?"}]},
        {"id": plain_word, "dataset": "clinic", "messages": [
            {"role": "user", "content": "I looked at the blue sky today and felt nothing."},
            {"role": "assistant", "content": "That sounds heavy. When did the numbness start?"}]},
        # The name only in the metadata, as export --redact reads it too.
        {"id": "intake-amara-okafor", "dataset": "clinic", "metadata": {"author": "Amara Okafor"}, "messages": [
            {"role": "user", "content": "Everything feels heavy lately."},
            {"role": "assistant", "content": "I'm glad you wrote. What has been weighing on you?"}]},
    ]  # fmt: skip
    cache = _cache_of(tmp_path, convs)
    shows_ids = notebook(
        tmp_path / "15_ids.ipynb",
        "from pe_toolkit.store import Store\n"
        "with Store(cache, read_only=True) as s:\n    ids = s.sql('SELECT id FROM conversations ORDER BY id')",
        "print(ids['id'].to_list())",
        "ids",
        params="cache = None\nstatic_report = False\nredact_views = False",
    )
    (shared,) = build_reports(tmp_path / "shared", notebooks=[shows_ids], cache=cache, progress=False, redact=True)
    after = shared.html.read_text()
    assert "priya" not in after.lower() and "raman" not in after.lower() and "okafor" not in after.lower()
    assert len(set(re.findall(r"pseudo_[0-9a-f]{20}", after))) == 2
    assert plain_word in after  # words that are no name stay: the id still joins to the cache


def test_a_redacted_run_builds_the_id_scrubber_again_only_after_a_notebook_changed_the_conversations(tmp_path, pii_ids_cache, monkeypatch):
    # The build scans the whole cache (about 6 s of CPU per 200k
    # conversations); it was done after every notebook, though most only read.
    builds = []
    real = report_module._id_scrubber

    def counted(*args):
        builds.append(args[0])
        return real(*args)

    monkeypatch.setattr(report_module, "_id_scrubber", counted)
    params = "cache = None\nstatic_report = False\nredact_views = False"
    show = "from pe_toolkit.store import Store\nwith Store(cache, read_only=True) as s:\n    print(s.sql('SELECT id FROM conversations ORDER BY id')['id'].to_list())"
    added = "jo&sam/late-amara.okafor@example.com"
    first, second = (notebook(tmp_path / f"1{n}_show.ipynb", show, params=params) for n in (1, 3))
    writes = notebook(
        tmp_path / "12_adds.ipynb",
        "import json\nfrom pe_toolkit.ingest import import_file\nfrom pe_toolkit.store import Store\n"
        f"conv = {{'id': {added!r}, 'messages': [{{'role': 'user', 'content': 'I cannot sleep.'}}]}}\n"
        "open('late.jsonl', 'w').write(json.dumps(conv) + '\\n')\n"
        "with Store(cache) as s:\n    import_file(s, 'late.jsonl', progress=False)",
        params=params,
    )
    shown = build_reports(tmp_path / "out", notebooks=[first, writes, second], cache=pii_ids_cache, progress=False, redact=True)
    assert len(builds) == 2  # after the first notebook, and after the one that wrote; not after the third
    last = shown[-1].html.read_text()
    assert "okafor" not in last and EMAIL_ID not in last and "c1" in last  # the scrubber knew the added id


def test_a_redacted_report_pseudonymises_an_id_with_both_quotes_in_an_attribute(tmp_path):
    # nbconvert re-serialises the page with BeautifulSoup, which writes an
    # attribute holding both quotes with &quot; and the ' raw: a form neither
    # html.escape table matched, so a tooltip built with html.escape showed
    # the id on a page its reader believed redacted.
    quoted = 'o\'brien "jo" rivers@example.org'
    convs = [
        {"id": cid, "dataset": "clinic", "messages": [
            {"role": "user", "content": "I have been struggling to sleep."},
            {"role": "assistant", "content": "That sounds exhausting. What keeps you awake?"}]}
        for cid in (quoted, "c1")
    ]  # fmt: skip
    cache = _cache_of(tmp_path, convs)
    shows_ids = notebook(
        tmp_path / "16_ids.ipynb",
        "import html\nfrom IPython.display import HTML\nfrom pe_toolkit.store import Store\n"
        "with Store(cache, read_only=True) as s:\n    ids = s.sql('SELECT id FROM conversations ORDER BY id')['id'].to_list()",
        "print(ids)",
        "HTML(''.join(f'<span title=\"{html.escape(i)}\">conversation</span>' for i in ids))",
        params="cache = None\nstatic_report = False\nredact_views = False",
    )
    (plain,) = build_reports(tmp_path / "plain", notebooks=[shows_ids], cache=cache, progress=False)
    (shared,) = build_reports(tmp_path / "shared", notebooks=[shows_ids], cache=cache, progress=False, redact=True)
    assert """title="o'brien &quot;jo&quot; rivers""" in plain.html.read_text()  # the control: the form under test
    after = shared.html.read_text()
    assert "brien" not in after and "rivers" not in after, re.findall(r".{40}brien.{20}", after)
    assert len(set(re.findall(r"pseudo_[0-9a-f]{20}", after))) == 1 and "c1" in after
