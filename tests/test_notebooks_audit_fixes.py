"""The notebooks on the caches and parameters the audit found them failing
on: an empty cache, one conversation, a never-analysed import, parameters
out of range (refused by name, before anything is created) and notebook 07
without bootstrap, run from outside notebooks/."""

from __future__ import annotations

from pathlib import Path

import nbformat
import orjson
import pytest

from pe_toolkit.ingest import import_file
from pe_toolkit.store import Store

from ._widgets_support import add_posts, build_store

pytestmark = pytest.mark.slow  # kernels: out of `make test-fast`

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def run(name: str, out: Path, cwd: Path | None = None, **parameters) -> str:
    """Execute a notebook with papermill; the text of its outputs."""
    import papermill

    papermill.execute_notebook(
        str(NOTEBOOKS / name), str(out), cwd=str(cwd or NOTEBOOKS), progress_bar=False, execution_timeout=600,
        parameters={"progress": False, **parameters},
    )
    outputs = [o for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", [])]
    # printed lines, and what figures and views display (a skipped figure says why in its HTML)
    return "".join(o.get("text", "") + "".join(str(v) for v in o.get("data", {}).values()) for o in outputs)


def fails(name: str, out: Path, **parameters) -> str:
    import papermill

    with pytest.raises(papermill.PapermillExecutionError) as caught:
        run(name, out, **parameters)
    return f"{caught.value.ename}: {caught.value.evalue}"


@pytest.fixture(scope="module")
def empty_cache(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("empty") / "cache.duckdb"
    Store(path).close()
    return path


def test_01_and_04_on_an_empty_cache_say_there_is_nothing(empty_cache, tmp_path):
    assert "nothing to show" in run("01_getting_started.ipynb", tmp_path / "01.ipynb", cache=str(empty_cache),
                                    source="cache", analyze=False)
    text = run("04_safety.ipynb", tmp_path / "04.ipynb", cache=str(empty_cache), source="cache")
    assert "nothing to review" in text and "nothing to export" in text


def test_01_does_not_call_an_unanalysed_conversation_the_riskiest(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_bytes(orjson.dumps({"id": "c1", "messages": [{"role": "user", "content": "I want to die"},
                                                            {"role": "assistant", "content": "I'm here."}]}) + b"\n")
    cache = tmp_path / "cache.duckdb"
    with Store(cache) as s:
        import_file(s, data, progress=False)
    text = run("01_getting_started.ipynb", tmp_path / "01.ipynb", cache=str(cache), source="cache", analyze=False)
    assert "no risk scores in this cache" in text and "the riskiest" not in text


@pytest.fixture(scope="module")
def one_conversation(tmp_path_factory) -> Path:
    return build_store(tmp_path_factory.mktemp("one"), n=1, seed=4, analyze=True)


def test_02_03_05_on_one_conversation(one_conversation, tmp_path):
    cache = {"cache": str(one_conversation), "source": "cache"}
    text = run("02_quality.ipynb", tmp_path / "02.ipynb", **cache)
    assert "Cohen's kappa undefined" in text and "kappa 1.00" not in text
    text = run("03_empathy.ipynb", tmp_path / "03.ipynb", **cache)
    assert "none left to show" in text or "of 0 conversations" in text
    text = run("05_pipelines.ipynb", tmp_path / "05.ipynb", **cache, incoming_n=5)
    assert "a correlation needs at least 2 conversations" in text


@pytest.mark.parametrize(
    "name, parameters, message",
    [
        ("04_safety.ipynb", {"alert_threshold": -0.1}, "alert_threshold must be a number between 0 and 1"),
        ("02_quality.ipynb", {"examples": -1}, "examples must be a whole number of at least 0"),
        ("03_empathy.ipynb", {"examples": -1}, "examples must be a whole number of at least 0"),
        ("06_live.ipynb", {"window": 0.2}, "window must be a number at least 0.5"),
    ],
)
def test_a_parameter_out_of_range_is_refused_by_name(empty_cache, tmp_path, name, parameters, message):
    error = fails(name, tmp_path / name, cache=str(empty_cache), source="cache", **parameters)
    assert "InputError" in error and message in error


def test_06_cleanup_runs_after_a_failed_setup(tmp_path):
    # What a reader does after an error: run the last cells anyway. The cleanup
    # must not raise NameError and must leave no scratch store behind.
    import papermill

    nb = nbformat.read(NOTEBOOKS / "06_live.ipynb", as_version=4)
    cleanup = next(c for c in nb.cells if c.cell_type == "code" and "rmtree(arrivals_dir" in c.source)
    setup = next(c for c in nb.cells if c.cell_type == "code" and "arrivals_dir = Path(tempfile.mkdtemp" in c.source)
    imports = next(c for c in nb.cells if c.cell_type == "code" and "import shutil" in c.source)
    probe = nbformat.v4.new_notebook(metadata=nb.metadata)
    probe.cells = [nbformat.v4.new_code_cell("import shutil\nfrom pathlib import Path\nlive_source = 'bus'\nmirror_url = None\n"
                                             + "import tempfile, secrets\nimport pe_toolkit as pe\nfrom pe_toolkit import widgets as pw"),
                   nbformat.v4.new_code_cell(setup.source),
                   nbformat.v4.new_code_cell("monitor_failed = True  # cells 5-10 failed: no `monitor`"),
                   nbformat.v4.new_code_cell(cleanup.source),
                   nbformat.v4.new_code_cell("print('left behind:', arrivals_dir.exists(), len(events_source._unsubscribe))")]
    assert imports is not None
    src, out = tmp_path / "probe.ipynb", tmp_path / "probe_out.ipynb"
    nbformat.write(probe, src)
    papermill.execute_notebook(str(src), str(out), progress_bar=False, execution_timeout=120)
    text = "".join(o.get("text", "") for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", []))
    assert "left behind: False 0" in text


def test_07_without_bootstrap_from_another_directory(tmp_path):
    text = run("07_validity.ipynb", tmp_path / "07.ipynb", cwd=tmp_path, boot=0, data_dir=str(tmp_path / "no-data"))
    assert "rule crisis severity, r/SuicideWatch against the others: AUROC" in text


def test_02_says_what_its_local_metrics_cover(tmp_path):
    # Posts have no reply to rate (null metrics since quality v3): the local
    # heatmaps and boxes left them out without a word, and a dataset of posts
    # vanished from "Local metrics by dataset"; a cache of posts alone said
    # "no rows to show".
    mixed = build_store(tmp_path / "mixed", n=12, seed=4, analyze=True)
    add_posts(mixed, 5)
    text = run("02_quality.ipynb", tmp_path / "02.ipynb", cache=str(mixed), source="cache")
    assert "local metrics: 12 of 17 analysed conversations rated; 5 without a reply to rate" in text
    posts = tmp_path / "posts" / "cache.duckdb"
    posts.parent.mkdir()
    Store(posts).close()
    add_posts(posts, 4)
    text = run("02_quality.ipynb", tmp_path / "02p.ipynb", cache=str(posts), source="cache")
    assert "local metrics: 0 of 4 analysed conversations rated" in text
    assert "Local metrics by dataset (mean): skipped, 4 analysed conversations, none with a reply to rate" in text
    assert "Local overall quality by dataset: skipped, 4 analysed conversations, none with a reply to rate" in text


def test_02_measures_the_replies_of_conversations_that_have_one(tmp_path):
    # A post's length ratio was 0 (no assistant words; null since quality v4):
    # the box of a cache of posts was "every value is 0", and a dataset of posts
    # drew a box at 0, as if its replies were very short rather than absent.
    posts = tmp_path / "cache.duckdb"
    Store(posts).close()
    add_posts(posts, 4)
    text = run("02_quality.ipynb", tmp_path / "02.ipynb", cache=str(posts), source="cache")
    assert "Assistant words per user word by dataset: skipped, no conversation has a reply" in text


def test_02_disagreements_need_both_scores(tmp_path):
    # A post the API rated has no local quality (no reply to rate): with fewer
    # rated conversations than examples, posts filled the disagreements with
    # a null local score, and their viewers followed.
    cache = build_store(tmp_path, n=3, seed=4, analyze=True)
    posts = add_posts(cache, 6, api_quality=0.4)
    with Store(cache, read_only=True) as s:
        rated = s.sql("SELECT count(*) AS n FROM current_conversation_scores WHERE overall_quality IS NOT NULL")["n"][0]
    assert rated == 3
    text = run("02_quality.ipynb", tmp_path / "02.ipynb", cache=str(cache), source="cache", examples=10)
    assert not any(p in text for p in posts)


@pytest.fixture(scope="module")
def tiers_and_posts(tmp_path_factory) -> Path:
    """12 synthetic conversations with API tiers and scores, and 5 posts
    without either (no reply: null local quality, empathy and question share)."""
    path = build_store(tmp_path_factory.mktemp("mixed"), n=12, seed=4, analyze=True)
    add_posts(path, 5)
    return path


def test_03_names_and_counts_the_conversations_without_a_tier(tiers_and_posts, tmp_path):
    # The skill-mix table grouped by tier had a row whose tier was blank (null),
    # and averages over the posts it held (none: no reply), without a word.
    text = run("03_empathy.ipynb", tmp_path / "03.ipynb", cache=str(tiers_and_posts), source="cache")
    assert "'no tier' row: 5 conversations without an API tier, 0 with a reply" in text


def test_05_says_how_many_conversations_its_correlation_covers(tiers_and_posts, tmp_path):
    # drop_nulls() left the posts (no API quality, no empathy) out of the
    # correlation and the figure still read as one over every conversation.
    text = run("05_pipelines.ipynb", tmp_path / "05.ipynb", cache=str(tiers_and_posts), source="cache", incoming_n=5)
    assert "correlation over 12 of 17 conversations; 5 left out, missing a feature (conversations without it: " in text
    assert "overall_quality 5" in text
