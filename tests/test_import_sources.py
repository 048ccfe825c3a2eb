"""Public corpora as they are published: columns kept as typed metadata,
pairs with many answers, ESConv-style dialogues, JSON rows, frames,
Hugging Face datasets, and their labels ready for ``learn.fit``."""

import orjson
import polars as pl
import pytest
from click.testing import CliRunner

from pe_toolkit.cli import cli
from pe_toolkit.errors import InputError, RecordError
from pe_toolkit.exports import export
from pe_toolkit.ingest import ColumnMap, detect_format, import_dataset, import_file, import_frame
from pe_toolkit.learn.labels import from_metadata
from pe_toolkit.store import Store

# counsel-chat's shape: several answers to one question; a quoted newline,
# an empty answer, non-ASCII, numbers written as strings, a leading zero.
COUNSEL = (
    "questionID,questionTitle,questionText,answerText,topic,upvotes,views,therapistInfo,zip\n"
    '1,Low,"I feel low,\nreally","That sounds hard.",depression,"3",100,"Jo, LPC",007\n'
    '1,Low,"I feel low,\nreally",Tell me more,depression,0,100,Ann,010\n'
    '2,Sleep,Je ne dors pas — aide,"",sleep,12,5,Zoë,\n'
)


def _meta(store, cid):
    (meta,) = store.sql("SELECT metadata FROM conversations WHERE id = ?", [cid]).row(0)
    return orjson.loads(meta or "{}")


@pytest.fixture
def counsel(tmp_path):
    path = tmp_path / "counsel.csv"
    path.write_text(COUNSEL, encoding="utf-8")
    return path


def test_pairs_one_conversation_per_row_with_typed_metadata(store, counsel):
    cmap = ColumnMap.parse(["user=questionText", "assistant=answerText", "id=questionID"], "pairs", drop=["views"])
    report = import_file(store, counsel, columns=cmap, progress=False)
    assert report.inserted == 3
    assert sorted(store.conversations()["id"]) == ["1-1", "1-2", "2"]
    first = store.conversation("1-1")
    assert [(m["role"], m["content"]) for m in first["messages"]] == [("user", "I feel low,\nreally"), ("assistant", "That sounds hard.")]
    meta = _meta(store, "1-1")
    assert meta == {"questionID": 1, "questionTitle": "Low", "topic": "depression", "upvotes": 3, "therapistInfo": "Jo, LPC", "zip": "007"}
    assert _meta(store, "1-2")["upvotes"] == 0
    second = _meta(store, "2")
    assert second["therapistInfo"] == "Zoë" and "zip" not in second  # empty cell: no key
    assert store.conversation("2")["messages"][1]["content"] == ""
    assert any(line == "upvotes -> metadata.upvotes (integer)" for line in report.mapping)
    assert "not kept: views (dropped)" in report.mapping
    assert import_file(store, counsel, columns=cmap, progress=False).unchanged == 3


def test_pairs_without_id_and_with_group_by(store, tmp_path, counsel):
    cmap = ColumnMap.parse(["user=questionText", "assistant=answerText"], "pairs")
    assert import_file(store, counsel, columns=cmap, progress=False).inserted == 3
    with Store(tmp_path / "threads.duckdb") as threads:
        cmap = ColumnMap.parse(["user=questionText", "assistant=answerText"], "pairs", group_by="questionID")
        report = import_file(threads, counsel, columns=cmap, progress=False)
        assert report.inserted == 2
        assert [m["content"] for m in threads.conversation("1")["messages"]] == ["I feel low,\nreally", "That sounds hard.", "I feel low,\nreally", "Tell me more"]
        meta = _meta(threads, "1")
        # Constant within the thread: the conversation's; varying: each answer's.
        assert meta["topic"] == "depression"
        assert meta["message_metadata"] == [None, {"upvotes": 3, "therapistInfo": "Jo, LPC", "zip": "007"}, None, {"upvotes": 0, "therapistInfo": "Ann", "zip": "010"}]
        assert "layout: pairs (one row per user/assistant pair), threaded by 'questionID'" in report.mapping


def test_posts_without_replies_are_one_user_message_each(store, tmp_path):
    # Reddit-style posts (a text and its subreddit, no answer): --map user=COL
    # alone; each row is a conversation of one user message that analyze scores.
    path = tmp_path / "posts.csv"
    path.write_text('subreddit,post\nSuicideWatch,"I want to end it, tonight"\nteaching,Any tips for a first class?\n')
    r = CliRunner().invoke(cli, ["--db", str(store.path), "import", str(path), "--map", "user=post", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "layout: pairs (one conversation per row: a user message alone; --map assistant=COL if the rows hold answers)" in r.output
    ids = store.conversations()["id"].to_list()
    assert len(ids) == 2
    convs = [store.conversation(i) for i in ids]
    assert sorted((c["messages"][0]["content"], len(c["messages"]), c["messages"][0]["role"]) for c in convs) == [
        ("Any tips for a first class?", 1, "user"), ("I want to end it, tonight", 1, "user")]
    assert sorted(_meta(store, i)["subreddit"] for i in ids) == ["SuicideWatch", "teaching"]
    with pytest.raises(InputError, match="no column for 'user'"):
        import_file(store, path, columns=ColumnMap.parse(["assistant=post"], "pairs"), progress=False)
    threaded = ColumnMap.parse(["user=post"], "pairs", group_by="subreddit")
    with Store(tmp_path / "threads.duckdb") as threads:
        report = import_file(threads, path, columns=threaded, progress=False)
        assert "layout: pairs (one row per user message (no assistant column)), threaded by 'subreddit'" in report.mapping


def test_identical_rows_without_an_id_are_stored_once_and_reported(store, tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("user,assistant\nhi,hello\nhi,hello\nI feel sad,I am sorry\n")
    report = import_file(store, path, progress=False)
    assert (report.inserted, report.repeated, store.count()) == (2, 1, 2)
    assert "1 row(s) repeated another row's id in the import and were stored once" in str(report)
    again = import_file(store, path, progress=False)
    assert (again.unchanged, again.repeated) == (2, 1)


def test_messages_layout_message_columns_and_renames(store, tmp_path):
    path = tmp_path / "turns.csv"
    path.write_text(
        "dialog_id,turn,speaker,text,strategy,emotion,score,rate\n"
        "d1,0,seeker,I am anxious,,anxiety,4,0.5\n"
        "d1,1,supporter,What happened?,Question,anxiety,4,0.5\n"
        "d1,2,supporter,That is hard.,Reflection,anxiety,4,1e-3\n"
        "d2,0,seeker,ok,,sadness,x,2\n"
    )
    report = import_file(store, path, columns=ColumnMap.parse(["metadata.feeling=emotion"]), progress=False)
    assert report.inserted == 2
    meta = _meta(store, "d1")
    assert meta["feeling"] == "anxiety" and "emotion" not in meta
    assert meta["score"] == "4"  # one value in the column is not a number: the column is text
    # Columns varying within a conversation belong to its messages.
    assert meta["message_metadata"] == [{"rate": 0.5}, {"strategy": "Question", "rate": 0.5}, {"strategy": "Reflection", "rate": 0.001}]
    assert _meta(store, "d2") == {"feeling": "sadness", "score": "x", "message_metadata": [{"rate": 2.0}]}
    assert "strategy -> message metadata.strategy (string)" in report.mapping
    labels = from_metadata(store, "strategy", role="assistant")
    assert labels.select("group", "message_idx", "text", "context", "label").rows() == [
        ("d1", 1, "What happened?", "I am anxious", "Question"),
        ("d1", 2, "That is hard.", "What happened?", "Reflection"),
    ]


def test_mapping_errors_name_the_column(store, counsel):
    with pytest.raises(InputError, match="no column 'nope' for --drop"):
        import_file(store, counsel, columns=ColumnMap.parse(["user=questionText", "assistant=answerText"], drop=["nope"]), progress=False)
    with pytest.raises(InputError, match=r"metadata.KEY"):
        ColumnMap.parse(["metadata.=topic"])
    with pytest.raises(InputError, match=r"no column 'x' for metadata.k"):
        import_file(store, counsel, columns=ColumnMap.parse(["user=questionText", "assistant=answerText", "metadata.k=x"]), progress=False)


def test_cli_prints_the_mapping(tmp_path, counsel):
    db = str(tmp_path / "cli.duckdb")
    result = CliRunner().invoke(cli, ["--db", db, "import", str(counsel), "--layout", "pairs", "--map", "user=questionText",
                                      "--map", "assistant=answerText", "--map", "metadata.votes=upvotes", "--drop", "views",
                                      "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].endswith("(csv): 3 new, 0 updated, 0 unchanged")
    assert "  upvotes -> metadata.votes (integer)" in lines
    assert "  questionText -> user message" in lines
    assert "  not kept: views (dropped)" in lines


# ESConv's shape, written here (the real corpus is not copied into the repo).
def _dialogue(emotion="anxiety", first="seeker", extra=None):
    return {
        "experience_type": "Previous Experience", "emotion_type": emotion, "problem_type": "job crisis",
        "situation": "I might lose my job — again",
        "survey_score": {"seeker": {"initial_emotion_intensity": "5", "empathy": "4"}, "supporter": {"relevance": "5"}},
        "dialog": [
            {"speaker": first, "annotation": {}, "content": "hello\nthere"},
            {"speaker": "supporter", "annotation": {"strategy": "Question"}, "content": f"How are you feeling about {emotion}?"},
            {"speaker": "supporter", "annotation": {"strategy": "Affirmation and Reassurance"}, "content": "You are not alone."},
            {"speaker": "seeker", "annotation": {"feedback": "4"}, "content": "Merci, ça va mieux"},
            *(extra or []),
        ],
    }  # fmt: skip


def test_esconv_array_and_lines(store, tmp_path):
    array = tmp_path / "esconv.json"
    array.write_bytes(orjson.dumps([_dialogue(), _dialogue("sadness")], option=orjson.OPT_INDENT_2))
    lines = tmp_path / "esconv_lines.jsonl"
    lines.write_bytes(b"\n".join(orjson.dumps({**_dialogue(emotion), "id": "x1"}) for emotion in ("anger", "fear")))
    assert detect_format(array) == detect_format(lines) == "esconv"
    report = import_file(store, array, progress=False)
    assert (report.inserted, report.format) == (2, "esconv")
    assert "dialog[].annotation (strategy, feedback, ...) -> message metadata" in report.mapping
    conv = store.conversations().sort("id").row(0, named=True)
    messages = store.conversation(conv["id"])["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "assistant", "user"]  # consecutive turns kept apart
    meta = orjson.loads(conv["metadata"])
    assert meta["survey_score"]["seeker"] == {"initial_emotion_intensity": 5, "empathy": 4}
    assert meta["message_metadata"] == [None, {"strategy": "Question"}, {"strategy": "Affirmation and Reassurance"}, {"feedback": 4}]
    assert meta["situation"] == "I might lose my job — again"
    assert import_file(store, array, progress=False).unchanged == 2
    assert import_file(store, lines, progress=False).inserted == 1  # same id twice: the last wins
    assert store.conversations().filter(pl.col("id") == "x1")["dataset"].to_list() == ["esconv_lines"]
    assert _meta(store, "x1")["emotion_type"] == "fear"


def test_esconv_errors_name_record_and_field(store, tmp_path):
    path = tmp_path / "bad.json"
    bad = _dialogue(extra=[{"speaker": "helper", "content": "?"}])
    path.write_bytes(orjson.dumps([_dialogue(), bad]))
    with pytest.raises(RecordError) as err:
        import_file(store, path, progress=False)
    assert str(err.value) == f"{path}:2: dialog[4].speaker: unknown speaker 'helper' (expected seeker or supporter)"
    assert store.conversations().height == 0
    numbers = tmp_path / "numbers.jsonl"
    numbers.write_bytes(orjson.dumps(_dialogue(extra=[{"speaker": "seeker", "content": 7}])) + b"\n" + orjson.dumps({"dialog": "no"}))
    report = import_file(store, numbers, format="esconv", skip_invalid=True, progress=False)
    assert (report.inserted, report.invalid) == (0, 2)
    reasons = store.sql("SELECT locator, reason FROM dead_letters ORDER BY locator").rows()
    assert reasons == [("1", "dialog[4].content must be a string, got number"), ("2", '"dialog" must be an array, got string')]


def test_json_rows_in_context_response_shape(store, tmp_path):
    path = tmp_path / "mental_health_counseling.jsonl"
    rows = [{"Context": "I can't sleep.", "Response": "How long has this been going on?", "source": "forum", "rating": 4},
            {"Context": "Ça ne va pas", "Response": "", "source": "forum", "rating": 5}]  # fmt: skip
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows))
    assert detect_format(path) == "rows"
    report = import_file(store, path, progress=False)
    assert report.inserted == 2
    assert sorted(store.conversations()["metadata"].map_elements(lambda m: orjson.loads(m)["rating"], return_dtype=pl.Int64)) == [4, 5]
    other = tmp_path / "alpaca.jsonl"
    other.write_bytes(orjson.dumps({"instruction": "Be kind", "input": "hi", "output": "hello", "n": "7"}))
    report = import_file(store, other, progress=False)
    conv = store.conversations().filter(pl.col("dataset") == "alpaca").row(0, named=True)
    assert [m["role"] for m in store.conversation(conv["id"])["messages"]] == ["system", "user", "assistant"]
    assert orjson.loads(conv["metadata"]) == {"n": "7"}  # typed JSON: a string stays a string
    mapped = tmp_path / "qa.jsonl"
    mapped.write_bytes(orjson.dumps({"q": "hi", "a": "hello"}))
    with pytest.raises(InputError, match="cannot tell which columns"):
        import_file(store, mapped, format="rows", progress=False)
    assert import_file(store, mapped, format="rows", columns=ColumnMap.parse(["user=q", "assistant=a"]), progress=False).inserted == 1


def test_import_frame_polars_and_pandas(store):
    frame = pl.DataFrame({"conversation_id": ["a", "a", "b"], "role": ["user", "assistant", "user"], "content": ["hi", "hello", "yo"],
                          "topic": ["t1", "t1", "t2"], "label": [None, "greeting", None]})  # fmt: skip
    report = import_frame(store, frame, dataset="mine")
    assert report.inserted == 2
    assert _meta(store, "a") == {"topic": "t1", "message_metadata": [None, {"label": "greeting"}]}
    pandas = pytest.importorskip("pandas")
    pairs = pandas.DataFrame({"prompt": ["p1", "p2"], "response": ["r1", None], "votes": [1, 2]})
    with pytest.raises(RecordError, match="row 2: empty assistant text in column response"):
        import_frame(store, pairs, dataset="pd")
    report = import_frame(store, pairs, dataset="pd", skip_invalid=True)
    assert (report.inserted, report.invalid) == (1, 1)
    chats = pl.DataFrame({"messages": [[{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]], "id": ["c9"], "lang": ["en"]})
    report = import_frame(store, chats)
    assert report.mapping[0] == "messages -> messages (openai shape)"
    assert _meta(store, "c9") == {"lang": "en"}


def test_hugging_face_saved_shards_and_objects(store, tmp_path):
    datasets = pytest.importorskip("datasets")
    chats = datasets.Dataset.from_dict({
        "messages": [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}] for i in range(4)],
        "source": ["s"] * 4,
    })  # fmt: skip
    pairs = datasets.Dataset.from_dict({"Context": ["c1", "c2"], "Response": ["r1", "r2"], "topic": ["x", "y"]})
    dd = datasets.DatasetDict({"train": chats.select([0, 1, 2]), "test": chats.select([3])})
    saved = tmp_path / "saved"
    dd.save_to_disk(str(saved))
    assert detect_format(saved) == "hf"
    report = import_file(store, saved, progress=False)
    assert (report.inserted, report.format) == (4, "hf (save_to_disk)")
    splits = store.sql("SELECT metadata ->> 'split' AS split, count(*) AS n FROM conversations GROUP BY 1 ORDER BY 1").rows()
    assert splits == [("test", 1), ("train", 3)]
    shards = tmp_path / "shards" / "data"
    shards.mkdir(parents=True)
    pairs.select([0]).to_parquet(str(shards / "train-00000-of-00002.parquet"))
    pairs.select([1]).to_parquet(str(shards / "train-00001-of-00002.parquet"))
    report = import_file(store, tmp_path / "shards", progress=False)
    assert (report.inserted, report.format) == (2, "hf (2 parquet shards)")
    # Splits of other shapes: each split's mapping is in the report.
    mixed = datasets.DatasetDict({"chats": chats.select([0]), "pairs": pairs.select([1])})
    report = import_dataset(store, mixed, dataset="mixed")
    assert report.inserted == 2 and "messages -> messages (openai shape)" in report.mapping
    assert any(line.startswith("[pairs] ") and "Context" in line for line in report.mapping), report.mapping
    shuffled = pairs.shuffle(seed=1).select([0])
    report = import_dataset(store, shuffled, dataset="picked")
    assert report.inserted == 1
    assert store.conversations().filter(pl.col("dataset") == "picked").height == 1
    with pytest.raises(InputError, match="download it first"):
        import_file(store, "hf://datasets/nbertagnolli/counsel-chat", progress=False)
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "c.duckdb"), "import", "hf://datasets/x/y"])
    assert result.exit_code == 1 and "download it first" in result.stderr


def test_a_row_in_two_splits_is_a_repeat_within_the_import(store, tmp_path):
    # The same conversation (same id) in train and test: the test copy
    # overwrote the train copy within one import and was reported as
    # "1 updated"; importing the same DatasetDict again reported "2 updated"
    # (each split's copy overwrote the other's in turn).
    datasets = pytest.importorskip("datasets")
    rows = [{"id": f"c{i}", "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]} for i in range(4)]
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:3]), "test": datasets.Dataset.from_list(rows[2:])})
    first = import_dataset(store, dd, dataset="dd")
    assert (first.inserted, first.updated, first.unchanged, first.repeated) == (4, 0, 0, 1)
    assert "1 row(s) repeated another row's id in the import and were stored once" in str(first)
    # The last copy is kept, as for an id repeated in a batch (Store.upsert).
    assert _meta(store, "c2")["split"] == "test"
    again = import_dataset(store, dd, dataset="dd")
    assert (again.inserted, again.updated, again.unchanged, again.repeated) == (0, 0, 4, 1)
    saved = tmp_path / "saved"
    dd.save_to_disk(str(saved))
    from_disk = import_file(store, saved, dataset="dd", progress=False)
    assert (from_disk.updated, from_disk.unchanged, from_disk.repeated) == (0, 4, 1)
    assert store.conversations().height == 4


def test_parquet_with_a_chat_column(store, tmp_path):
    path = tmp_path / "chat.parquet"
    pl.DataFrame({"conversations": [[{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]], "score": [0.5]}).write_parquet(path)
    report = import_file(store, path, progress=False)
    assert report.inserted == 1
    conv = store.conversations().row(0, named=True)
    assert orjson.loads(conv["metadata"]) == {"score": 0.5}


def test_round_trip_through_export(store, tmp_path, counsel):
    esconv = tmp_path / "esconv.json"
    esconv.write_bytes(orjson.dumps([_dialogue(), _dialogue("sadness", first="Seeker")]))
    import_file(store, esconv, progress=False)
    import_file(store, counsel, columns=ColumnMap.parse(["user=questionText", "assistant=answerText", "id=questionID"]), progress=False)
    out = tmp_path / "out.jsonl"
    export(store, out, format="jsonl", progress=False)
    with Store(tmp_path / "again.duckdb") as again:
        assert import_file(again, out, progress=False).inserted == 5
        cols = ["id", "dataset", "metadata", "content_hash"]
        assert again.conversations().sort("id").select(cols).equals(store.conversations().sort("id").select(cols))
        assert from_metadata(again, "strategy").equals(from_metadata(store, "strategy"))


def test_labels_of_an_imported_corpus_train_and_evaluate(store, tmp_path):
    from pe_toolkit.learn import evaluate, fit

    questions = ["How do you feel about {}?", "What happened with {}?", "When did {} start?"]
    comfort = ["You are not alone with {}.", "It makes sense to feel {}.", "You did well to talk about {}."]
    topics = ["work", "your sister", "exams", "money", "sleep", "the move", "your friend", "school"]
    dialogues = []
    for i, topic in enumerate(topics * 2):
        dialogues.append({"id": f"d{i}", "emotion_type": "anxiety" if i % 2 else "sadness", "dialog": [
            {"speaker": "seeker", "content": f"I keep worrying about {topic}"},
            {"speaker": "supporter", "annotation": {"strategy": "Question"}, "content": questions[i % 3].format(topic)},
            {"speaker": "seeker", "content": "yes"},
            {"speaker": "supporter", "annotation": {"strategy": "Affirmation"}, "content": comfort[i % 3].format(topic)},
        ]})  # fmt: skip
    path = tmp_path / "support.json"
    path.write_bytes(orjson.dumps(dialogues))
    import_file(store, path, progress=False)
    frame = from_metadata(store, "strategy", role="assistant", dataset="support")
    assert frame.columns == ["group", "message_idx", "role", "text", "context", "label"] and frame.height == 32
    assert store.labels("strategy", role="assistant", dataset="support").equals(frame)
    train = frame.filter(pl.col("group").str.slice(1).cast(pl.Int64) < 12)
    test = frame.filter(pl.col("group").str.slice(1).cast(pl.Int64) >= 12)
    model = fit(train, text="text", label="label", context="context")
    report = evaluate(model, test, text="text", label="label", context="context", group="group", boot=50)
    assert set(model.classes) == {"Affirmation", "Question"}
    assert report.n == 8 and report.metric("accuracy") == 1.0
    topics_frame = from_metadata(store, "emotion_type", level="conversation", role="user")
    assert topics_frame.height == 16 and set(topics_frame["label"]) == {"anxiety", "sadness"}
    with pytest.raises(InputError, match="no message carries a 'nope' label"):
        from_metadata(store, "nope")
