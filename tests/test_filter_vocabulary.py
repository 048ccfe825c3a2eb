"""One filter vocabulary (pe_toolkit.store.filters) across every entry point:
the Store accessors, export, features, the CLI, the warehouse and sync take
the same names and select the same conversations on one real store, and an
unknown name fails with the same message everywhere."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from click.testing import CliRunner

from pe_toolkit import ConversationFilter, synth
from pe_toolkit.analysis import analyze
from pe_toolkit.apisync import sync
from pe_toolkit.cli import cli
from pe_toolkit.errors import InputError
from pe_toolkit.exports import export, features
from pe_toolkit.exports.warehouse import load
from pe_toolkit.ingest import import_file
from pe_toolkit.store import Store
from pe_toolkit.store.filters import FILTERS

from .client_support import make_client
from .server_support import start_mirror

UNKNOWN = (
    "unknown filter colour; expected some of dataset, tier, min_quality, max_quality, ids, created_after, "
    "created_before, min_risk, max_risk, crisis_categories, labels, alert"
)

# (case name, filters, the same selection as a polars predicate over
# conversations LEFT JOIN current_conversation_scores).
CASES: list[tuple[str, dict[str, Any], pl.Expr]] = [
    ("tier", {"tier": "research"}, pl.col("tier") == "research"),
    (
        "datasets and quality",
        {"dataset": ["wellbeing_chat", "peer_support"], "min_quality": 0.5, "max_quality": 0.9},
        pl.col("dataset").is_in(["wellbeing_chat", "peer_support"]) & pl.col("overall_quality").is_between(0.5, 0.9),
    ),
    (
        "dates",
        {"created_after": datetime(2025, 1, 1, tzinfo=UTC), "created_before": datetime(2026, 6, 1, tzinfo=UTC)},
        (pl.col("created_at") >= datetime(2025, 1, 1, tzinfo=UTC)) & (pl.col("created_at") < datetime(2026, 6, 1, tzinfo=UTC)),
    ),
    ("min_risk", {"min_risk": 0.15}, pl.col("risk_score") >= 0.15),
    (
        "risk range and tier",
        {"min_risk": 0.05, "max_risk": 0.3, "tier": ["standard", "professional"]},
        pl.col("risk_score").is_between(0.05, 0.3) & pl.col("tier").is_in(["standard", "professional"]),
    ),
    ("alert", {"alert": True}, pl.col("alert").fill_null(False)),
    ("no alert", {"alert": False, "tier": "clinical"}, (pl.col("alert") == False) & (pl.col("tier") == "clinical")),  # noqa: E712
    (
        "crisis",
        {"crisis_categories": ["self_harm", "intent"]},
        pl.col("crisis_categories").list.eval(pl.element().is_in(["self_harm", "intent"])).list.any().fill_null(False),
    ),
]


@pytest.fixture(scope="module")
def analyzed_store(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("vocabulary")
    synth.write(folder / "corpus.jsonl", 160, seed=7, progress=False)
    path = folder / "store.duckdb"
    with Store(path) as store:
        import_file(store, folder / "corpus.jsonl", progress=False)
        analyze(store, progress=False)
    return path


def _expected(store: Store, predicate: pl.Expr) -> list[str]:
    joined = store.sql(
        "SELECT c.id, c.dataset, c.tier, c.overall_quality, c.created_at, s.risk_score, s.alert, s.crisis_categories "
        "FROM conversations c LEFT JOIN current_conversation_scores s ON s.conversation_id = c.id"
    )
    return sorted(joined.filter(predicate)["id"].to_list())


def _cli_args(filters: dict[str, Any]) -> list[str]:
    """The CLI spelling of the vocabulary: --name-with-dashes, a list as the
    option repeated (ids, labels and crisis_categories in the singular)."""
    singular = {"ids": "id", "labels": "label", "crisis_categories": "crisis-category"}
    args: list[str] = []
    for name, value in filters.items():
        if name == "alert":
            args.append("--alert" if value else "--no-alert")
            continue
        flag = "--" + singular.get(name, name.replace("_", "-"))
        for v in value if isinstance(value, list) else [value]:
            args += [flag, v.strftime("%Y-%m-%dT%H:%M:%S") if isinstance(v, datetime) else str(v)]
    return args


def _jsonl_ids(path: Path) -> list[str]:
    return sorted(orjson.loads(line)["id"] for line in path.read_bytes().splitlines())


def _via_cli(store: Store, filters: dict[str, Any], out: Path) -> list[str]:
    result = CliRunner().invoke(cli, ["--db", str(store.path), "export", str(out), "--no-progress", *_cli_args(filters)])
    assert result.exit_code == 0, result.output
    return _jsonl_ids(out)


ENTRY_POINTS: dict[str, Callable[[Store, dict[str, Any], Path], list[str]]] = {
    "Store.conversations": lambda s, f, _: s.conversations(**f)["id"].to_list(),
    "Store.conversations(filter)": lambda s, f, _: s.conversations(ConversationFilter(**f))["id"].to_list(),
    "Store.messages": lambda s, f, _: s.messages(**f)["conversation_id"].unique().to_list(),
    "Store.scores": lambda s, f, _: s.scores(**f)["conversation_id"].to_list(),
    "export": lambda s, f, tmp: (export(s, tmp / "x.jsonl", format="jsonl", progress=False, **f), _jsonl_ids(tmp / "x.jsonl"))[1],
    "export(filter)": lambda s, f, tmp: (
        export(s, tmp / "y.jsonl", format="jsonl", progress=False, filter=ConversationFilter(**f)),
        _jsonl_ids(tmp / "y.jsonl"),
    )[1],
    "features": lambda s, f, _: features(s, **f)["conversation_id"].to_list(),
    "cli export": lambda s, f, tmp: _via_cli(s, f, tmp / "cli.jsonl"),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize(("case", "filters", "predicate"), CASES, ids=[c[0] for c in CASES])
def test_every_entry_point_selects_the_same_conversations(analyzed_store, tmp_path, entry, case, filters, predicate):
    with Store(analyzed_store, read_only=True) as store:
        want = _expected(store, predicate)
        assert want, f"case {case!r} selects nothing on this corpus: the comparison would prove little"
        assert len(want) < store.count(), f"case {case!r} selects everything"
        assert store.count(**filters) == len(want)
        assert sorted(ENTRY_POINTS[entry](store, dict(filters), tmp_path)) == want


def test_labels_and_ids_select_alike(analyzed_store, tmp_path):
    import shutil

    copy = shutil.copyfile(analyzed_store, tmp_path / "labelled.duckdb")
    with Store(copy) as store:
        ids = sorted(store.conversations(limit=3)["id"].to_list())
        now = datetime.now(UTC)
        store.connection.execute(
            "INSERT INTO annotations (task, reviewer, conversation_id, message_idx, label, note, created_at, updated_at) "
            "VALUES ('review', 'ana', ?, NULL, 'good_example', NULL, ?, ?)",
            [ids[1], now, now],
        )
    with Store(copy, read_only=True) as store:
        for entry, select in ENTRY_POINTS.items():
            assert sorted(select(store, {"ids": ids}, tmp_path)) == ids, entry
            assert sorted(select(store, {"labels": ["good_example"], "ids": ids}, tmp_path)) == ids[1:2], entry


def test_an_unknown_name_fails_alike_everywhere(analyzed_store, tmp_path):
    assert FILTERS == tuple(UNKNOWN.split("expected some of ")[1].split(", "))
    with Store(analyzed_store, read_only=True) as store:
        calls = {
            "conversations": lambda: store.conversations(colour="red"),
            "count": lambda: store.count(colour="red"),
            "messages": lambda: store.messages(colour="red"),
            "scores": lambda: store.scores("message", colour="red"),
            "export": lambda: export(store, tmp_path / "x.jsonl", format="jsonl", colour="red"),
            "features": lambda: features(store, colour="red"),
            "features(frame)": lambda: features(store.messages(), colour="red"),
            "warehouse": lambda: load(store, "postgresql://nobody@127.0.0.1:1/none", colour="red"),
            "sync": lambda: sync(store, make_client("http://127.0.0.1:1"), colour="red"),
            "ConversationFilter.build": lambda: ConversationFilter.build(colour="red"),
        }
        for name, call in calls.items():
            with pytest.raises(InputError) as info:
                call()
            assert str(info.value) == UNKNOWN, name
    assert not (tmp_path / "x.jsonl").exists()


def test_score_filters_on_a_store_never_analyzed_say_so(tmp_path):
    synth.write(tmp_path / "c.jsonl", 5, seed=1, progress=False)
    with Store(tmp_path / "raw.duckdb") as store:
        import_file(store, tmp_path / "c.jsonl", progress=False)
        for filters in ({"min_risk": 0.1}, {"alert": True}, {"crisis_categories": "self_harm"}):
            with pytest.raises(InputError, match="run `pe-toolkit analyze` first"):
                store.conversations(**filters)
        with pytest.raises(InputError, match="alert must be"):
            store.count(alert="yes")


def test_deprecated_spellings_warn_and_still_work(analyzed_store, tmp_path):
    from pe_toolkit.exports import ExportFilter

    with pytest.warns(DeprecationWarning, match="use pe_toolkit.ConversationFilter"):
        old = ExportFilter(tier="research", min_risk=0.1)
    assert old.where("c") == ConversationFilter(tier="research", min_risk=0.1).where("c")
    with pytest.warns(DeprecationWarning, match="use ConversationFilter.build"):
        assert ConversationFilter.of(tier="research") == ConversationFilter(tier="research")
    with Store(analyzed_store, read_only=True) as store:
        want = store.conversations(crisis_categories="self_harm")["id"].to_list()
        result = CliRunner().invoke(
            cli, ["--db", str(store.path), "export", str(tmp_path / "c.jsonl"), "--no-progress", "--crisis", "self_harm"]
        )
    assert result.exit_code == 0, result.output
    assert "--crisis is deprecated; use --crisis-category" in result.output
    assert _jsonl_ids(tmp_path / "c.jsonl") == sorted(want)


# -- sync: only what the API applies server-side ------------------------------------


@pytest.fixture
def served(analyzed_store, tmp_path):
    import shutil

    source = tmp_path / "served" / "source.duckdb"
    source.parent.mkdir()
    shutil.copyfile(analyzed_store, source)
    with start_mirror(source) as server:
        yield server


@pytest.mark.parametrize(
    "filters",
    [{"tier": "research"}, {"dataset": "wellbeing_chat", "min_quality": 0.6}, {"tier": ["professional"], "min_quality": 0.5}],
    ids=["tier", "dataset and quality", "one tier as a list"],
)
def test_sync_takes_the_vocabulary_the_api_applies(served, analyzed_store, tmp_path, filters):
    with Store(analyzed_store, read_only=True) as source:
        want = sorted(source.conversations(**filters)["id"].to_list())
    assert want
    with Store(tmp_path / "synced.duckdb") as store, make_client(served.url) as client:
        sync(store, client, progress=False, filter=ConversationFilter(**filters))
        assert sorted(store.conversations()["id"].to_list()) == want


def test_sync_refuses_filters_the_api_cannot_apply(tmp_path):
    with Store(tmp_path / "s.duckdb") as store, make_client("http://127.0.0.1:1") as client:
        for filters, message in (
            (
                {"max_quality": 0.5},
                "sync cannot apply max_quality: the API filters conversations by dataset, tier, min_quality only",
            ),
            ({"min_risk": 0.5, "ids": ["a"]}, "sync cannot apply ids, min_risk"),
            ({"tier": ["basic", "research"]}, "sync applies one tier"),
        ):
            with pytest.raises(InputError, match=message):
                sync(store, client, progress=False, **filters)
            with pytest.raises(InputError, match=message):
                sync(store, client, progress=False, filter=ConversationFilter(**filters))


# -- the warehouse ------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize(("case", "filters", "predicate"), CASES[:1] + CASES[3:6], ids=[c[0] for c in CASES[:1] + CASES[3:6]])
def test_the_warehouse_loads_the_same_selection(analyzed_store, case, filters, predicate):
    from .test_warehouse import PG_DSN, pg_connect, query

    try:
        pg_connect().close()
    except Exception:  # noqa: BLE001 - any failure means "no server here"
        pytest.skip("no PostgreSQL for the warehouse comparison")
    schema = "pe_vocab_" + case.replace(" ", "_")
    with Store(analyzed_store, read_only=True) as store:
        want = _expected(store, predicate)
        load(store, PG_DSN, schema=schema, progress=False, include_features=False, **filters)
    try:
        assert sorted(query(f"SELECT id FROM {schema}.conversations")["id"].to_list()) == want
    finally:
        with pg_connect() as con, con.cursor() as cur:
            cur.execute(f"DROP SCHEMA {schema} CASCADE")
            con.commit()
