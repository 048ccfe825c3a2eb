"""Our own exports read back whole, and CSV errors that name the line and
the column a user finds in an editor.

Export -> import in every format that carries conversations (jsonl, csv,
parquet with one row per message or nested, huggingface) gives back the
same conversations: ids, messages, dataset, tier, created_at, quality
metrics and metadata, so the labels an import carried in
(``store.labels``) are the same before and after.
"""

import csv
import gzip
import sys

import orjson
import polars as pl
import pytest

from pe_toolkit.errors import RecordError
from pe_toolkit.exports import export
from pe_toolkit.ingest import ColumnMap, import_file, import_frame
from pe_toolkit.ingest.csvlines import CsvLines
from pe_toolkit.store import Store

from ._export_support import stand_in_scores

# ESConv's shape: per-turn strategies, dialogue fields, numbers as strings.
ESCONV = [
    {"emotion_type": "anxiety", "problem_type": "job crisis", "situation": "I might lose my job — again",
     "survey_score": {"seeker": {"empathy": "4"}}, "dialog": [
        {"speaker": "seeker", "content": "I lost my job\nand I can't sleep"},
        {"speaker": "supporter", "content": "How are you feeling?", "annotation": {"strategy": "Question"}},
        {"speaker": "supporter", "content": "That is a lot to carry.", "annotation": {"strategy": "Reflection of feelings"}},
        {"speaker": "seeker", "content": "thanks", "annotation": {"feedback": "5"}}]},
    {"emotion_type": "sadness", "problem_type": "breakup", "dialog": [
        {"speaker": "seeker", "content": "Ça ne va pas 😔"},
        {"speaker": "supporter", "content": "I'm here.", "annotation": {"strategy": "Affirmation and Reassurance"}}]},
]  # fmt: skip

# counsel-chat's shape: typed columns, a quoted newline, an empty answer,
# non-ASCII, a number written as a string, a leading zero.
COUNSEL = (
    "questionID,questionText,answerText,topic,upvotes,zip\n"
    '1,"I feel low,\nreally","That sounds hard.",depression,"3",007\n'
    '2,Je ne dors pas — aide,"",sleep,12,\n'
)

# What only the API format carries: tier, created_at, metrics, a null member.
API = {
    "id": "api-1",
    "messages": [{"role": "user", "content": "hi", "timestamp": "2025-01-02T03:04:05.250Z"},
                 {"role": "assistant", "content": "hello", "timestamp": "2025-01-02T03:04:09Z"}],
    "quality_metrics": {"therapeutic_accuracy": 0.5, "safety_score": 0.125, "overall_quality": 0.75},
    "metadata": {"dataset": "api", "tier": "research", "created_at": "2025-01-02T03:04:05Z",
                 "nested": {"list": [1, "two", None], "none": None}},
}  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "esconv.json").write_bytes(orjson.dumps(ESCONV))
    (folder / "counsel.csv").write_text(COUNSEL, encoding="utf-8")
    (folder / "api.jsonl").write_bytes(orjson.dumps(API) + b"\n")
    store = Store(folder / "source.duckdb")
    import_file(store, folder / "esconv.json", progress=False)
    import_file(store, folder / "counsel.csv", progress=False,
                columns=ColumnMap.parse(["user=questionText", "assistant=answerText", "id=questionID"]))  # fmt: skip
    import_file(store, folder / "api.jsonl", progress=False)
    yield store
    store.close()


def conversations(store: Store) -> pl.DataFrame:
    return store.conversations().drop("source", "fetched_at").sort("id")


def messages(store: Store) -> pl.DataFrame:
    return store.messages().sort("conversation_id", "idx")


@pytest.mark.parametrize(
    ("name", "fmt", "layout"),
    [
        ("out.jsonl", "jsonl", None),
        ("out.csv", "csv", None),
        ("out.csv.gz", "csv", None),
        ("out.parquet", "parquet", "messages"),
        ("nested.parquet", "parquet", "nested"),
        ("tables", "parquet", "tables"),  # a folder of two tables, joined back on import
        ("hf", "huggingface", None),
    ],
)
def test_export_then_import_gives_the_same_conversations(tmp_path, corpus, name, fmt, layout):
    export(corpus, tmp_path / name, format=fmt, layout=layout, progress=False)
    with Store(tmp_path / "back.duckdb") as back:
        report = import_file(back, tmp_path / name, progress=False)
        assert report.inserted == corpus.count() == 5
        assert conversations(back).equals(conversations(corpus))  # metrics, tier, created_at, metadata, content hash
        assert messages(back).equals(messages(corpus))
        assert back.labels("strategy").equals(corpus.labels("strategy"))
        assert back.labels("strategy").height == 3
        assert back.labels("topic", level="conversation").equals(corpus.labels("topic", level="conversation"))
        meta = orjson.loads(back.sql("SELECT metadata FROM conversations WHERE id = '1'").item())
        assert meta == {"questionID": 1, "topic": "depression", "upvotes": 3, "zip": "007"}  # typed as imported
        assert import_file(back, tmp_path / name, progress=False).unchanged == 5


def test_flat_exports_carry_metadata_once_per_conversation(tmp_path, corpus):
    export(corpus, tmp_path / "out.csv", format="csv", progress=False)
    frame = pl.read_csv(tmp_path / "out.csv", infer_schema=False)
    assert frame.columns[-1] == "metadata"
    first = frame.group_by("conversation_id", maintain_order=True).head(1)
    assert first["metadata"].null_count() == 0
    assert frame.height - first.height == frame["metadata"].null_count()  # only the first row of each
    want = dict(corpus.sql("SELECT id, metadata FROM conversations").rows())
    assert {r[0]: orjson.loads(r[1]) for r in first.select("conversation_id", "metadata").rows()} == {
        k: orjson.loads(v) for k, v in want.items()
    }


def test_a_metadata_column_of_free_text_stays_an_ordinary_column(store, tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text('conversation_id,role,content,metadata\nc1,user,hi,"{""a"": 1}"\nc1,assistant,hello,see notes\n')
    report = import_file(store, path, progress=False)
    meta = orjson.loads(store.sql("SELECT metadata FROM conversations").item())
    assert meta == {"message_metadata": [{"metadata": '{"a": 1}'}, {"metadata": "see notes"}]}
    assert "metadata -> message metadata.metadata (string)" in report.mapping
    objects = tmp_path / "objects.csv"
    objects.write_text('conversation_id,role,content,metadata,overall_quality\nc2,user,hi,"{""a"": 1, ""tier"": ""x""}",0.5\nc2,assistant,yo,,\n')
    report = import_file(store, objects, progress=False)
    assert report.mapping[-2:] == ["metadata -> metadata (JSON objects: the other columns are added to them)",
                                   "overall_quality -> overall_quality (quality metric)"]  # fmt: skip
    row = store.sql("SELECT metadata, overall_quality, tier FROM conversations WHERE id = 'c2'").row(0)
    assert (orjson.loads(row[0]), row[1], row[2]) == ({"a": 1}, 0.5, None)  # a key the columns own is not metadata


def _bad_csv(tmp_path, name="bad2.csv"):
    # Line 1: the header; 2-3 and 4-5: one record each (quoted newlines);
    # 6: a bad role; 7: a good conversation; 8-9: one record; 10: a bad role.
    text = (
        "conversation_id,speaker,text,strategy\n"
        'c1,user,"I lost my job\nyesterday",\n'
        'c1,assistant,"That is hard.\nHow are you?",Question\n'
        "c1,robot,beep,\n"
        "c2,user,hi,\n"
        'c3,user,"a\nb",\n'
        "c3,alien,zap,\n"
    )
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["bad2.csv", "bad2.csv.gz"])
def test_csv_errors_name_the_physical_line_and_the_column(store, tmp_path, name):
    path = _bad_csv(tmp_path, name)
    with pytest.raises(RecordError) as err:
        import_file(store, path, progress=False)
    assert str(err.value) == (
        f"{path}:6: column speaker: unknown role 'robot' (expected user, assistant or system) (and 1 more in this batch)"
    )
    # Several bad rows, in batches of one conversation: each its own line.
    report = import_file(store, path, skip_invalid=True, progress=False, batch_rows=1)
    assert (report.inserted, report.invalid) == (1, 2)
    assert store.sql("SELECT locator, reason FROM dead_letters ORDER BY locator::INTEGER").rows() == [
        ("6", "column speaker: unknown role 'robot' (expected user, assistant or system)"),
        ("10", "column speaker: unknown role 'alien' (expected user, assistant or system)"),
    ]


def test_csv_errors_in_other_columns_name_them(store, tmp_path):
    path = tmp_path / "cols.csv"
    path.write_text(
        'id,role,content,turn,tier,overall_quality\na,user,"x\ny",1,basic,0.5\na,assistant,z,two,basic,0.5\n'
        "b,user,q,1,gold,\nc,user,q,1,basic,high\n"
    )
    report = import_file(store, path, skip_invalid=True, progress=False)
    assert report.invalid == 3
    assert store.sql("SELECT locator, reason FROM dead_letters ORDER BY locator::INTEGER").rows() == [
        ("4", "column turn: not an integer: 'two'"),
        ("5", "column tier: unknown tier 'gold' (expected one of basic, standard, professional, clinical, research)"),
        ("6", "column overall_quality: not a number: 'high'"),
    ]


def test_a_table_of_chats_keeps_renamed_and_struct_metadata(store):
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    chats = pl.DataFrame({"id": ["c1", "c2"], "messages": [messages, messages], "lang": ["en", "fr"],
                          "metadata": [{"source": "forum", "n": 1}, {"source": "chat", "n": None}], "overall_quality": [0.5, None]})  # fmt: skip
    report = import_frame(store, chats, columns=ColumnMap.parse(["metadata.language=lang"]))
    assert report.mapping == ["messages -> messages (openai shape)", "id -> conversation id",
                              "metadata -> metadata (JSON objects: the other columns are added to them)",
                              "overall_quality -> overall_quality (quality metric)", "lang -> metadata.language"]  # fmt: skip
    rows = store.sql("SELECT id, metadata, overall_quality FROM conversations ORDER BY id").rows()
    assert [(i, orjson.loads(m), q) for i, m, q in rows] == [
        ("c1", {"source": "forum", "n": 1, "language": "en"}, 0.5),
        ("c2", {"source": "chat", "n": None, "language": "fr"}, None),
    ]


@pytest.mark.parametrize(("name", "fmt", "layout"), [("scored.csv", "csv", None), ("scored.parquet", "parquet", "messages"),
                                                     ("nested.parquet", "parquet", "nested"), ("tables", "parquet", "tables")])  # fmt: skip
def test_an_export_with_scores_imports_back_without_them(tmp_path, corpus, name, fmt, layout):
    stand_in_scores(corpus)
    report = export(corpus, tmp_path / name, format=fmt, layout=layout, progress=False, include_scores=True)
    assert report.scores
    first = tmp_path / name / "conversations.parquet" if layout == "tables" else tmp_path / name
    columns = pl.read_csv(first, n_rows=1).columns if fmt == "csv" else pl.read_parquet_schema(first)
    assert "score_risk_score" in columns and ("message_score_sentiment" in columns or layout in ("nested", "tables"))
    with Store(tmp_path / "back.duckdb") as back:
        report = import_file(back, tmp_path / name, progress=False)
        assert report.inserted == 5
        assert conversations(back).equals(conversations(corpus))  # no score_* key in metadata
        assert back.labels("strategy").equals(corpus.labels("strategy"))
        assert back.labels("strategy").height == 3
        left = next(line for line in report.mapping if line.startswith("not kept: "))
        assert "score_" in left and left.endswith(" more (scores: analyze computes them again)")
        assert not any("score_" in line for line in report.mapping if line != left)

def test_per_message_columns_beside_a_metadata_object_merge_into_its_message_metadata(store, tmp_path):
    path = tmp_path / "merged.csv"
    meta = orjson.dumps({"topic": "x", "message_metadata": [None, {"strategy": "Question"}]}).decode().replace('"', '""')
    path.write_text(f'conversation_id,role,content,metadata,rating\nc1,user,hi,"{meta}",1\nc1,assistant,yo,,5\n')
    import_file(store, path, progress=False)
    assert orjson.loads(store.sql("SELECT metadata FROM conversations").item()) == {
        "topic": "x", "message_metadata": [{"rating": 1}, {"strategy": "Question", "rating": 5}]
    }


def test_a_metadata_column_of_objects_on_every_row_stays_per_message(store, tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text('conversation_id,role,content,metadata\nc1,user,hi,"{""rating"":1}"\nc1,assistant,yo,"{""rating"":5}"\n'
                    'c2,user,hey,"{""rating"":2}"\nc2,assistant,hi,"{""rating"":2}"\n')  # fmt: skip
    report = import_file(store, path, progress=False)
    assert "metadata -> message metadata.metadata (string)" in report.mapping
    rows = store.sql("SELECT id, metadata FROM conversations ORDER BY id").rows()
    assert [(i, orjson.loads(m)) for i, m in rows] == [
        ("c1", {"message_metadata": [{"metadata": '{"rating":1}'}, {"metadata": '{"rating":5}'}]}),
        ("c2", {"message_metadata": [{"metadata": '{"rating":2}'}, {"metadata": '{"rating":2}'}]}),
    ]
    # One object per conversation (what our exports write) is its metadata.
    once = tmp_path / "once.csv"
    once.write_text('conversation_id,role,content,metadata\nc3,user,hi,"{""rating"":1}"\nc3,assistant,yo,"{""rating"":1}"\n'
                    'c4,user,hey,""\nc4,assistant,hi,"{""rating"":2}"\n')  # fmt: skip
    report = import_file(store, once, progress=False)
    assert "metadata -> metadata (JSON objects: the other columns are added to them)" in report.mapping
    rows = store.sql("SELECT id, metadata FROM conversations WHERE id IN ('c3', 'c4') ORDER BY id").rows()
    assert [(i, orjson.loads(m)) for i, m in rows] == [("c3", {"rating": 1}), ("c4", {"rating": 2})]
    # A struct column (Parquet, frames) likewise.
    frame = pl.DataFrame({"conversation_id": ["f1", "f1"], "role": ["user", "assistant"], "content": ["a", "b"],
                          "metadata": [{"rating": 1}, {"rating": 5}]})  # fmt: skip
    import_frame(store, frame)
    assert orjson.loads(store.sql("SELECT metadata FROM conversations WHERE id = 'f1'").item()) == {
        "message_metadata": [{"metadata": {"rating": 1}}, {"metadata": {"rating": 5}}]
    }


def test_an_out_of_range_quality_value_names_its_line_and_column(store, tmp_path):
    path = tmp_path / "range.csv"
    path.write_text("id,role,content,overall_quality\na,user,hi,0.5\na,assistant,yo,\na,user,again,85\nb,user,x,1\n")
    report = import_file(store, path, skip_invalid=True, progress=False)
    assert (report.inserted, report.invalid) == (1, 1)
    assert store.sql("SELECT locator, reason FROM dead_letters").rows() == [
        ("4", "column overall_quality: not a number between 0 and 1: '85'")
    ]


def test_csv_lines_raise_the_field_limit_within_what_every_platform_takes(tmp_path):
    path = _bad_csv(tmp_path)
    before = csv.field_size_limit()
    try:
        csv.field_size_limit(131072)
        lines = CsvLines(str(path))
        assert lines(3) == 6
        assert csv.field_size_limit() == min(sys.maxsize, 2**31 - 1)
        lines.close()
        assert lines(1) == 2  # read again from the start after close
        lines.close()
    finally:
        csv.field_size_limit(before)
