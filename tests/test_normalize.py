"""The JSON normalizers: every kind of bad record gets its own clear reason,
and the fast (typed) pass never accepts what the strict pass would reject."""

import duckdb
import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pe_toolkit.store.normalize import _RECHECK, _run, normalize_lines

from .conftest import conversation


@pytest.fixture(scope="module")
def con():
    c = duckdb.connect()
    c.execute("SET TimeZone = 'UTC'")
    yield c
    c.close()


def lines_of(*records):
    raws = [r if isinstance(r, str) else orjson.dumps(r).decode() for r in records]
    return pa.table({"line_no": pa.array(range(1, len(raws) + 1), pa.int64()), "raw": raws})


def one_error(con, record, fmt="api"):
    good, errors = normalize_lines(con, lines_of(record), fmt, dataset="d", source="s")
    assert good.num_rows == 0, good.to_pylist()
    assert len(errors) == 1
    return errors[0][1]


BAD = [
    ("not json", "invalid JSON"),
    ('{"id": "a", "messages": [', "invalid JSON"),
    ("[1, 2]", "expected a JSON object, got array"),
    ('"text"', "expected a JSON object, got string"),
    ({"id": "a"}, 'missing "messages"'),
    ({"id": "a", "messages": "hello"}, '"messages" must be an array, got string'),
    ({"id": "a", "messages": {"role": "user"}}, '"messages" must be an array, got object'),
    ({"id": "a", "messages": []}, '"messages" is empty'),
    ({"messages": [{"role": "user", "content": "x"}]}, 'missing "id"'),
    ({"id": 5, "messages": [{"role": "user", "content": "x"}]}, '"id" must be a string, got number'),
    ({"id": " ", "messages": [{"role": "user", "content": "x"}]}, '"id" is empty'),
    ({"id": "a", "messages": [{"role": "user", "content": 7}]}, "messages[0].content must be a string, got number"),
    ({"id": "a", "messages": [{"role": "user", "content": {"text": "x"}}]}, "messages[0].content must be a string, got object"),
    ({"id": "a", "messages": [{"role": "user", "content": ["x"]}]}, "messages[0].content must be a string, got array"),
    ({"id": "a", "messages": [{"role": "user", "content": True}]}, "messages[0].content must be a string, got boolean"),
    ({"id": "a", "messages": [{"role": "user", "content": None}]}, 'messages[0] has no "content"'),
    ({"id": "a", "messages": [{"role": "user"}]}, 'messages[0] has no "content"'),
    ({"id": "a", "messages": [{"content": "x"}]}, 'messages[0] has no "role"'),
    ({"id": "a", "messages": ["hello"]}, 'messages[0] has no "role"'),
    ({"id": "a", "messages": [{"role": 1, "content": "x"}]}, "messages[0].role must be a string, got number"),
    ({"id": "a", "messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "y"}]}, 'messages[1]: unknown role "tool"'),
    ({"id": "a", "messages": [{"role": "user", "content": "x", "timestamp": "soon"}]}, "messages[0].timestamp is not an ISO-8601 time"),
    ({"id": "a", "messages": [{"role": "user", "content": "x", "timestamp": 1700000000}]}, "messages[0].timestamp is not an ISO-8601 time"),
    ({"id": "a", "messages": [{"role": "user", "content": "x"}], "metadata": [1]}, '"metadata" must be an object, got array'),
    ({"id": "a", "messages": [{"role": "user", "content": "x"}], "metadata": {"tier": "gold"}}, 'unknown tier "gold"'),
    ({"id": "a", "messages": [{"role": "user", "content": "x"}], "metadata": {"created_at": "later"}}, "created_at is not an ISO-8601 time"),
    ({"id": "a", "messages": [{"role": "user", "content": "x"}], "quality_metrics": 0.5}, '"quality_metrics" must be an object, got number'),
    ({"id": "a", "messages": [{"role": "user", "content": "x"}], "quality_metrics": {"safety_score": 1.5}}, "quality_metrics.safety_score must be a number between 0 and 1, got 1.5"),
    ({"id": "a", "messages": [{"role": "user", "content": "x"}], "quality_metrics": {"safety_score": "high"}}, 'quality_metrics.safety_score must be a number between 0 and 1, got "high"'),
    ({"id": "a", "messages": [{"role": "user", "content": "x"}], "quality_score": "good"}, '"quality_score" must be a number'),
]


@pytest.mark.parametrize("record,reason", BAD, ids=[r for _, r in BAD])
def test_each_bad_record_has_a_clear_reason(con, record, reason):
    assert reason in one_error(con, record)


def test_good_and_bad_lines_are_told_apart_with_line_numbers(con):
    good, errors = normalize_lines(
        con, lines_of(conversation(1), "garbage", conversation(2), {"id": "x", "messages": []}), "api", dataset="d", source="s"
    )
    assert good.column("id").to_pylist() == ["conv_00001", "conv_00002"]
    assert [(line, reason.split(" (")[0]) for line, reason, _ in errors] == [(2, "invalid JSON"), (4, '"messages" is empty')]
    assert errors[0][2] == "garbage"


def test_blank_lines_are_skipped(con):
    good, errors = normalize_lines(con, lines_of(conversation(1), "", "\r", conversation(2)), "api", dataset="d", source="s")
    assert good.num_rows == 2 and not errors


def test_role_aliases_and_case(con):
    record = {"id": "a", "messages": [{"role": "Human", "content": "x"}, {"role": " GPT ", "content": "y"}, {"role": "developer", "content": "z"}]}
    good, _ = normalize_lines(con, lines_of(record), "api", dataset="d", source="s")
    assert [m["role"] for m in good.to_pylist()[0]["messages"]] == ["user", "assistant", "system"]


def test_openai_and_sharegpt_shapes(con):
    openai = {"messages": [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    good, _ = normalize_lines(con, lines_of(openai, openai), "openai", dataset="ft", source="s")
    rows = good.to_pylist()
    assert rows[0]["id"] == rows[1]["id"] and rows[0]["id"].startswith("openai_")
    assert rows[0]["dataset"] == "ft" and [m["role"] for m in rows[0]["messages"]] == ["system", "user", "assistant"]
    sharegpt = {"id": "sg1", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}
    good, _ = normalize_lines(con, lines_of(sharegpt), "sharegpt", dataset="sg", source="s")
    assert good.to_pylist()[0]["messages"][1] == {"role": "assistant", "content": "hello", "timestamp": None}
    assert "unknown role" in one_error(con, {"conversations": [{"from": "tool", "value": "x"}]}, "sharegpt")
    assert "conversations[0].value must be a string" in one_error(con, {"conversations": [{"from": "human", "value": 3}]}, "sharegpt")


def test_top_level_quality_score_fills_overall_quality(con):
    record = {"id": "a", "messages": [{"role": "user", "content": "x"}], "quality_score": 0.42, "tier": "clinical"}
    good, _ = normalize_lines(con, lines_of(record), "api", dataset="d", source="s")
    row = good.to_pylist()[0]
    assert row["overall_quality"] == 0.42 and row["tier"] == "clinical"


tricky_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
) | st.sampled_from(['"content": 5', '\\"role\\": 1', "}{", "\\n", '"', "\\"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["user", "assistant", "system", "Human"]), tricky_text), min_size=1, max_size=5), tricky_text)
def test_typed_pass_agrees_with_strict_pass(con, messages, note):
    record = {"id": "x1", "messages": [{"role": r, "content": c} for r, c in messages], "metadata": {"note": note}}
    lines = lines_of(record)
    params = {"dataset": "d", "source": "s"}
    typed = _run(con, lines, "api", True, params)
    strict = _run(con, lines, "api", False, params)
    assert strict.column("error").to_pylist() == [None]
    if typed.column("error").to_pylist() == [_RECHECK]:
        return  # sent to the strict pass: nothing to compare
    cols = [c for c in strict.column_names if c != "bad_raw"]
    assert typed.select(cols).to_pylist() == strict.select(cols).to_pylist()
    assert typed.column("messages").to_pylist()[0] == [{"role": "user" if r == "Human" else r, "content": c, "timestamp": None} for r, c in messages]


# -- issue 15, part 8: numbers that are not JSON, metadata without duplicates --
MSG = [{"role": "user", "content": "x"}]
BAD_NUMBERS = [
    ('{"id": "a", "messages": MSG, "quality_score": 7}', '"quality_score" must be a number between 0 and 1, got 7'),
    ('{"id": "a", "messages": MSG, "quality_score": -5}', '"quality_score" must be a number between 0 and 1, got -5'),
    ('{"id": "a", "messages": MSG, "quality_score": 1e308}', '"quality_score" must be a number between 0 and 1, got 1e308'),
    ('{"id": "a", "messages": MSG, "quality_score": NaN}', '"quality_score" must be a number between 0 and 1, got NaN'),
    ('{"id": "a", "messages": MSG, "quality_score": Infinity}', '"quality_score" must be a number between 0 and 1, got Infinity'),
    ('{"id": "a", "messages": MSG, "quality_metrics": {"overall_quality": 0.5}, "quality_score": 9}', '"quality_score" must be a number between 0 and 1, got 9'),
    ('{"id": "a", "messages": MSG, "quality_metrics": {"safety_score": NaN}}', "quality_metrics.safety_score must be a number between 0 and 1, got NaN"),
    ('{"id": "a", "messages": MSG, "quality_metrics": {"safety_score": -Infinity}}', "quality_metrics.safety_score must be a number between 0 and 1, got -Infinity"),
    ('{"id": "a", "messages": MSG, "metadata": {"turns": [1, NaN]}}', '"metadata" holds a number JSON cannot represent: NaN'),
    ('{"id": "a", "messages": MSG, "metadata": {"deep": {"x": 1e400}}}', '"metadata" holds a number JSON cannot represent: 1e400'),
    ('{"id": "a", "messages": MSG, "metadata": {"x": -Infinity, "note": "fine"}}', '"metadata" holds a number JSON cannot represent: -Infinity'),
]


@pytest.mark.parametrize("raw,reason", BAD_NUMBERS, ids=[r for _, r in BAD_NUMBERS])
def test_numbers_out_of_range_or_not_finite_are_refused(con, raw, reason):
    assert one_error(con, raw.replace("MSG", orjson.dumps(MSG).decode())) == reason


@pytest.mark.parametrize("fmt", ["openai", "sharegpt"])
def test_other_formats_refuse_non_finite_metadata(con, fmt):
    item = {"messages": MSG} if fmt == "openai" else {"conversations": [{"from": "human", "value": "x"}]}
    raw = orjson.dumps(item).decode()[:-1] + ', "metadata": {"score": NaN}}'
    assert one_error(con, raw, fmt) == '"metadata" holds a number JSON cannot represent: NaN'


def test_look_alikes_of_non_finite_numbers_are_kept(con):
    record = {"id": "a", "messages": MSG, "quality_score": 1, "metadata": {"note": "x: NaN, Infinity", "n": 1e300, "info": "inf"}}
    good, errors = normalize_lines(con, lines_of(record), "api", dataset="d", source="s")
    assert not errors and good.num_rows == 1
    assert orjson.loads(good.column("metadata")[0].as_py()) == record["metadata"]


@pytest.mark.parametrize("fmt", ["api", "openai"])
def test_record_without_metadata_stores_none(con, fmt):
    record = {"id": "a", "messages": MSG} if fmt == "api" else {"messages": MSG}
    good, _ = normalize_lines(con, lines_of(record), fmt, dataset="meta", source="s")
    assert good.column("metadata").to_pylist() == [None]


def test_record_too_big_for_the_parser_is_an_error_not_a_crash(monkeypatch):
    """A 50 MB message made DuckDB raise OutOfMemoryException out of the
    import; a smaller memory cap shows the same with a few MB."""
    from pe_toolkit.store import normalize

    monkeypatch.setattr(normalize, "PARSE_MEMORY_LIMIT", "8MB")
    small = normalize.parse_connection()
    big = {"id": "big", "messages": [{"role": "user", "content": "word " * 4_000_000}]}
    good, errors = normalize_lines(small, lines_of(conversation(1), big, conversation(2)), "api", dataset="d", source="s")
    assert good.column("id").to_pylist() == ["conv_00001", "conv_00002"]
    assert [(line, reason.split(" (")[0]) for line, reason, _ in errors] == [(2, "record too large to parse")]
    assert "MB" in errors[0][1] and len(errors[0][2]) < 100_000


def test_rows_built_elsewhere_are_held_to_the_numbers_rule(tmp_path, store):
    """CSV/Parquet rows reach the store through split_errors: a NaN or
    infinite float cell kept as metadata was stored as is and made the
    conversation's JSON unreadable."""
    import pyarrow.parquet as pq

    from pe_toolkit.errors import RecordError
    from pe_toolkit.ingest import import_file

    path = tmp_path / "rows.parquet"
    pq.write_table(
        pa.table({
            "conversation_id": ["a", "a", "b", "b"],
            "role": ["user", "assistant", "user", "assistant"],
            "content": ["hi", "hello", "hey", "there"],
            "rating": [1.5, 2.0, float("nan"), float("inf")],
        }),
        path,
    )
    with pytest.raises(RecordError, match="cannot represent"):
        import_file(store, path, progress=False)
    report = import_file(store, path, skip_invalid=True, progress=False)
    assert report.inserted == 1
    assert store.conversation("a")["id"] == "a"
    assert "cannot represent" in store.dead_letters()["reason"].item()


def test_split_errors_refuses_quality_out_of_range():
    from pe_toolkit.schema import CONVERSATION_SCHEMA
    from pe_toolkit.store.normalize import split_errors

    rows = []
    for i, score in enumerate([0.5, float("nan"), 7.0, None]):
        rows.append({"id": f"c{i}", "messages": [{"role": "user", "content": "x", "timestamp": None}], "overall_quality": score})
    good = pa.Table.from_pylist(rows, CONVERSATION_SCHEMA)
    out = good.append_column("line_no", pa.array(range(1, 5), pa.int64()))
    out = out.append_column("error", pa.nulls(4, pa.string())).append_column("bad_raw", pa.nulls(4, pa.string()))
    kept, errors = split_errors(out)
    assert kept.column("id").to_pylist() == ["c0", "c3"]
    assert [(line, reason) for line, reason, _ in errors] == [
        (2, "overall_quality must be a number between 0 and 1, got nan"),
        (3, "overall_quality must be a number between 0 and 1, got 7"),
    ]


# -- OpenAI and ShareGPT records: fields beyond the messages are kept --------
def _metadata(con, record, fmt):
    good, errors = normalize_lines(con, lines_of(record), fmt, dataset="d", source="s")
    assert not errors, errors
    value = good.column("metadata")[0].as_py()
    return None if value is None else orjson.loads(value)


def test_openai_and_sharegpt_extra_fields_are_kept(con):
    openai = {"messages": [{"role": "user", "content": "hi", "name": "ann"}, {"role": "assistant", "content": "hello", "weight": 0}],
              "model": "m1", "metadata": {"model": "from metadata", "topic": "sleep"}}  # fmt: skip
    assert _metadata(con, openai, "openai") == {"model": "from metadata", "topic": "sleep",
                                                 "message_metadata": [{"name": "ann"}, {"weight": 0}]}  # fmt: skip
    sharegpt = {"id": "s1", "source": "forum", "conversations": [{"from": "human", "value": "hi"},
                {"from": "gpt", "value": "hello", "markdown": {"bold": [1, 2]}}]}  # fmt: skip
    assert _metadata(con, sharegpt, "sharegpt") == {"source": "forum", "message_metadata": [None, {"markdown": {"bold": [1, 2]}}]}
    # Only top-level extras: no message_metadata; the owned keys stay in their columns.
    assert _metadata(con, {"messages": MSG, "category": "grief", "tier": "research"}, "openai") == {"category": "grief"}
    # Nothing extra: as before (no metadata); the API format is the contract's record.
    assert _metadata(con, {"messages": MSG}, "openai") is None
    assert _metadata(con, {"id": "a", "messages": MSG, "source": "x"}, "api") is None
    # Beside a line that is not JSON (the guarded query), the fields are still kept.
    good, errors = normalize_lines(con, lines_of({"messages": MSG, "source": "x"}, "not json"), "openai", dataset="d", source="s")
    assert [(e[0], e[1].startswith("invalid JSON")) for e in errors] == [(2, True)]
    assert orjson.loads(good.column("metadata")[0].as_py()) == {"source": "x"}


def test_a_non_finite_number_in_an_extra_field_is_refused(con):
    raw = '{"messages": [{"role": "user", "content": "x", "score": NaN}]}'
    assert one_error(con, raw, "openai") == '"metadata" holds a number JSON cannot represent: NaN'


extra_value = st.none() | st.booleans() | st.integers(-10**6, 10**6) | tricky_text | st.lists(st.integers(0, 9), max_size=3)
extra_fields = st.dictionaries(st.sampled_from(["name", "weight", "lang", "source", "note"]), extra_value, max_size=2)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["user", "assistant"]), tricky_text, extra_fields), min_size=1, max_size=4), extra_fields)
def test_typed_and_strict_passes_keep_the_same_extra_fields(con, messages, top):
    record = {**top, "messages": [{"role": r, "content": c, **x} for r, c, x in messages]}
    lines = lines_of(record)
    params = {"dataset": "d", "source": "s"}
    strict = _run(con, lines, "openai", False, params)
    assert strict.column("error").to_pylist() == [None]
    kept = {k: v for k, v in top.items()}
    per_message = [x or None for _, _, x in messages]
    if any(per_message):
        kept["message_metadata"] = per_message
    stored = strict.column("metadata")[0].as_py()
    assert (orjson.loads(stored) if stored is not None else None) == (kept or None)
    typed = _run(con, lines, "openai", True, params)
    if typed.column("error").to_pylist() != [_RECHECK]:
        cols = [c for c in strict.column_names if c != "bad_raw"]
        assert typed.select(cols).to_pylist() == strict.select(cols).to_pylist()
