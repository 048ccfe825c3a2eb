"""The learned layer: features, fit, evaluate, save/load (unit checks on
small frames written here; figures on human labels live in the cards and
tests/test_learn_devdata.py)."""

from __future__ import annotations

import zipfile

import numpy as np
import orjson
import polars as pl
import pytest

from pe_toolkit.analysis.text import tokenize
from pe_toolkit.errors import InputError, ModelError
from pe_toolkit.learn import cross_validate, evaluate, fit, load, save
from pe_toolkit.learn.features import FeatureSpec, Featurizer
from pe_toolkit.learn.validity import auroc_interval, folds_of, report

SAD = ["I feel so sad today", "everything is sad and grey", "so sad and tired", "sad again, sad all day",
       "I am sad", "the sad news hit me", "why am I this sad?", "sad sad sad"]  # fmt: skip
GLAD = ["what a great day", "I feel great and happy", "so happy for you!", "great news, happy now",
        "happy to hear", "that is great", "great, great", "a happy, great week"]  # fmt: skip


def toy() -> pl.DataFrame:
    texts = SAD + GLAD
    return pl.DataFrame({"text": texts, "label": ["sad"] * len(SAD) + ["glad"] * len(GLAD), "group": list(range(len(texts)))})


def test_word_block_equals_scikit_learn_tfidf():
    """Without sentence features the word block is TfidfVectorizer's matrix
    (sublinear tf, smoothed idf, l2), column for column."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = ["Have you tried talking to her?", "I went through the same, it's hard.", "You're doing great! Keep going.",
             "have you talked to her", "the same thing happened to me", "it's hard to keep going"]  # fmt: skip
    tokens = tokenize(pl.Series(texts))
    f = Featurizer.fit(FeatureSpec(word_ngrams=2, sentences=False, min_df=1), tokens, np.arange(len(texts)))
    mine = f.transform(tokens, np.arange(len(texts))).matrix.toarray()
    ref = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"[a-z0-9]+(?:'[a-z]+)*|[?!]")
    theirs = ref.fit_transform(texts).toarray()
    names = f.feature_names()
    assert sorted(names) == sorted(ref.get_feature_names_out())
    order = [names.index(n) for n in ref.get_feature_names_out()]
    np.testing.assert_allclose(mine[:, order], theirs, atol=1e-12)


def test_sentence_features_and_words_split_on_punctuation():
    texts = ["Hmm. How are you feeling? Maybe rest/sleep more.", "ok"]
    tokens = tokenize(pl.Series(texts))
    f = Featurizer.fit(FeatureSpec(min_df=1), tokens, np.arange(2))
    names = set(f.feature_names())
    # "rest/sleep" is two words; sentences start at "hmm", "how", "maybe"
    assert {"rest", "sleep", "rest sleep", "s1:hmm", "s1:how", "s1:maybe", "s2:how are", "q:how", "q:are", "q:you",
            "q2:how are", "<question>", "?"} <= names  # fmt: skip
    assert "q:maybe" not in names and "<ends with question>" not in names  # the last sentence is not a question


def test_unknown_words_are_ignored_and_batches_do_not_change_scores():
    model = fit(toy(), spec=FeatureSpec(min_df=1))
    p = model.predict(["completely unseen words", "sad", *SAD[:3]])
    assert p.height == 5 and p["label"][1] == "sad"
    one_by_one = pl.concat([model.predict([t]) for t in ["completely unseen words", "sad", *SAD[:3]]])
    assert one_by_one.equals(p)  # bit for bit, whatever the batch holds


def test_a_missing_text_gets_no_score():
    """predict([None]) scored the missing text as an empty one (the model's
    prior, shown as a prediction); it gets a row of nulls, as fit and
    evaluate leave such rows out, and its neighbours score as alone."""
    model = fit(toy(), spec=FeatureSpec(min_df=1))
    out = model.predict(["so sad", None, "great"])
    assert out.height == 3 and out.row(1) == (None, None, None, None)
    assert out[[0, 2]].equals(model.predict(["so sad", "great"]))
    column = pl.DataFrame({"text": ["so sad", None]})["text"]
    assert model.predict(column).row(1) == (None, None, None, None)
    # evaluate leaves out a row without a text (it had no prediction to score)
    labelled = pl.concat([toy(), pl.DataFrame({"text": [None], "label": ["sad"], "group": [99]},
                                              schema=toy().schema)])  # fmt: skip
    assert evaluate(model, labelled, boot=0).n == toy().height


def test_fit_learns_a_separable_task_and_probabilities_sum_to_one():
    model = fit(toy(), spec=FeatureSpec(min_df=1), name="mood")
    pred = model.predict(["such a sad day", "a great and happy day"])
    assert pred["label"].to_list() == ["sad", "glad"]
    probs = pred.select("p_glad", "p_sad").to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert model.card["training"]["n"] == 16 and model.card["training"]["classes"] == ["glad", "sad"]


def test_multilabel_fit_with_thresholds():
    frame = toy().with_columns(
        pl.when(pl.col("text").str.contains("\\?|!")).then(pl.concat_list(pl.col("label"), pl.lit("punct")))
        .otherwise(pl.concat_list(pl.col("label"))).alias("labels")
    )
    model = fit(frame, label="labels", spec=FeatureSpec(min_df=1), thresholds={"punct": 0.4})
    assert model.task == "multilabel" and set(model.classes) == {"glad", "punct", "sad"}
    out = model.predict(["so sad?", "great"])
    assert "sad" in out["labels"][0].to_list() and out["labels"][1].to_list() == ["glad"]


def test_multilabel_report_matches_scikit_learn():
    from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, roc_auc_score

    from pe_toolkit.learn import multilabel_report

    rng = np.random.default_rng(5)
    classes = ["a", "b", "c"]
    y = rng.random((240, 3)) < [0.5, 0.3, 0.1]
    proba = np.clip(y * 0.35 + rng.random((240, 3)) * 0.65, 0, 1)
    gold = [[c for c, hit in zip(classes, row, strict=True) if hit] for row in y]
    cut = np.array([0.5, 0.45, 0.6])
    r = multilabel_report(gold, proba, classes, thresholds=cut, groups=np.repeat(np.arange(80), 3), boot=200)
    pred = proba >= cut
    assert r.metric("macro_f1") == pytest.approx(f1_score(y, pred, average="macro"))
    assert r.metric("micro_f1") == pytest.approx(f1_score(y, pred, average="micro"))
    assert r.metric("subset_accuracy") == pytest.approx(accuracy_score(y, pred))
    assert r.metric("kappa") == pytest.approx(np.mean([cohen_kappa_score(y[:, j], pred[:, j]) for j in range(3)]))
    assert r.metric("auroc") == pytest.approx(roc_auc_score(y, proba, average="macro"))
    for j, c in enumerate(classes):
        assert r.f1(c) == pytest.approx(f1_score(y[:, j], pred[:, j]))
    for metric, value, low, high in r.overall.iter_rows():
        assert low <= value <= high, metric
    assert r.confusion.filter(pl.col("class") == "b")["tp"].item() == int((y[:, 1] & pred[:, 1]).sum())
    assert r.predictions["gold"].to_list() == gold and set(r.calibration["class"]) == set(classes)


def test_a_multilabel_model_is_evaluated_and_cross_validated():
    frame = toy().with_columns(
        pl.when(pl.col("text").str.contains("\\?|!")).then(pl.concat_list(pl.col("label"), pl.lit("punct")))
        .otherwise(pl.concat_list(pl.col("label"))).alias("labels")
    )
    model = fit(frame, label="labels", spec=FeatureSpec(min_df=1))
    r = evaluate(model, frame, label="labels", boot=50)
    assert r.n == frame.height and set(r.per_class["class"]) == {"glad", "punct", "sad"}
    assert r.f1("sad") == pytest.approx(1.0) and r.metric("micro_f1") > 0.8
    # Each label set often enough for stratified folds.
    many = pl.concat([frame.with_columns(pl.col("text") + f" {k}") for k in range(4)])
    cv = cross_validate(many, label="labels", folds=4, spec=FeatureSpec(min_df=1), boot=50, workers=1)
    assert cv.predictions.height == many.height and cv.metric("macro_f1") is not None
    with pytest.raises(InputError, match="multilabel model cannot be scored on multiclass labels"):
        evaluate(model, frame, label="label")


def test_evidence_points_at_the_words_that_weighed_most():
    model = fit(toy(), spec=FeatureSpec(min_df=1))
    from pe_toolkit.learn.model import _batch_of

    texts = ["Honestly, I feel sad.", "What a happy moment"]
    batch = _batch_of(model, texts, None, None)
    ev = model.evidence(batch, model.predict_proba(batch), top=2, spans_only=True)
    assert ev.height == 4
    for row, start, end, feature in ev.select("row", "start", "end", "feature").iter_rows():
        span = texts[row][start:end].lower()
        # the span is the whitespace token(s) holding the feature's words
        assert all(word in span for word in feature.split(":")[-1].split())
    assert ev.filter(pl.col("row") == 0)["class"].unique().to_list() == ["sad"]
    assert "sad" in ev.filter(pl.col("row") == 0)["feature"].to_list()


def test_context_and_lexicon_blocks():
    frame = toy().with_columns(context=pl.lit("how was your day?"))
    lexicon = pl.DataFrame({"construct": ["Sadness", "Sadness", "Joy"], "phrase": ["sad", "so sad", "happy"]})
    model = fit(frame, context="context", lexicon=lexicon, spec=FeatureSpec(min_df=1, context=True))
    assert {"lexicon", "context"} <= set(model.featurizer.block_sizes)
    assert "#Sadness" in model.featurizer.feature_names() and "ctx:day" in model.featurizer.feature_names()
    with pytest.raises(InputError, match="preceding turn"):
        fit(toy(), spec=FeatureSpec(context=True))


def test_lexicon_phrases_are_found_where_a_plain_walk_finds_them():
    """Every window of 1 to 4 words that is a phrase, against a walk over
    every window of every text: through the model's place tables and hash
    index, and through the sorted keys with the tables computed on the spot.
    Phrases share words in different places ("so sad", "sad so", "so so
    sad") so a word fitting some place is not enough; windows never cross
    texts."""
    from pe_toolkit.learn import features as F

    vocabulary = ["so", "sad", "i", "feel", "alone", "not", "ok", "tired", "of", "it", "x", "y"]
    phrases = ["sad", "alone", "so sad", "sad so", "so so sad", "feel so alone", "tired of it", "i feel not ok", "not ok",
               "it"]  # fmt: skip
    lexicon = pl.DataFrame({"construct": ["a"] * len(phrases), "phrase": phrases})
    rng = np.random.default_rng(11)
    texts = [" ".join([*rng.choice(vocabulary, size=rng.integers(0, 8)), *str(rng.choice(phrases)).split(),
                       *rng.choice(vocabulary, size=rng.integers(0, 8))]) if k % 5 else ""
             for k in range(400)]  # fmt: skip
    train = pl.DataFrame({"text": [*texts[:40], "i feel so alone", "tired of it"], "label": ["a", "b"] * 21})
    model = fit(train, lexicon=lexicon, spec=FeatureSpec(min_df=1))
    f = model.featurizer
    tokens = tokenize(pl.Series(texts))
    w = F.words_of(tokens, np.arange(len(texts)), f._table)
    words = f.words.tolist()
    key_of = {}
    for p in phrases:
        k = 0
        for x in p.split():
            k = k * f.base + words.index(x) + 1
        key_of[tuple(p.split())] = k
    expected = {n: [] for n in range(1, 5)}
    start = 0
    for text in texts:
        ws = text.split()
        for i in range(len(ws)):
            for n in range(1, 5):
                if tuple(ws[i : i + n]) in key_of and i + n <= len(ws):
                    expected[n].append((start + i, key_of[tuple(ws[i : i + n])]))
        start += len(ws)
    for slots, index in ((f._lexicon_slots, f._lexicon_index), (None, None)):
        parts = F.lexicon_grams(w, f.lexicon_keys, f.base, slots, index)
        assert [n for _, _, n in parts] == [1, 2, 3, 4]
        for keys, positions, n in parts:
            assert list(zip(positions.tolist(), keys.tolist(), strict=True)) == expected[n]
    assert all(len(expected[n]) > 5 for n in range(1, 5))


def test_bad_training_data_fails_clearly():
    with pytest.raises(InputError, match="lacks column"):
        fit(toy(), label="nope")
    with pytest.raises(InputError, match="at least two classes"):
        fit(toy().with_columns(label=pl.lit("one")))
    with pytest.raises(InputError, match="not among the classes"):
        fit(toy(), classes=["sad"])
    with pytest.raises(InputError, match="polars DataFrame"):
        fit([{"text": "x", "label": "y"}])


def test_save_load_round_trip_is_exact_and_bit_for_bit(tmp_path):
    model = fit(toy(), spec=FeatureSpec(min_df=1, char_ngrams=(2, 3)), card={"data": "toy"})
    a = save(model, tmp_path / "a")
    b = save(fit(toy(), spec=FeatureSpec(min_df=1, char_ngrams=(2, 3)), card={"data": "toy"}), tmp_path / "b.pemodel")
    assert a.name == "a.pemodel" and a.read_bytes() == b.read_bytes()
    loaded = load(a)
    texts = ["sad and grey", "happy great"]
    assert loaded.predict(texts).equals(model.predict(texts))
    assert loaded.card["data"] == "toy" and len(loaded.card["content_hash"]) == 64


def _rewrite(src, dst, change):
    with zipfile.ZipFile(src) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    change(parts)
    with zipfile.ZipFile(dst, "w") as z:
        for n, data in parts.items():
            z.writestr(n, data)


def test_altered_old_or_foreign_files_are_refused(tmp_path):
    path = save(fit(toy(), spec=FeatureSpec(min_df=1)), tmp_path / "m")

    def bump_intercept(parts):
        arr = np.lib.format.read_array(__import__("io").BytesIO(parts["intercept.npy"]))
        buf = __import__("io").BytesIO()
        np.lib.format.write_array(buf, arr + 1.0)
        parts["intercept.npy"] = buf.getvalue()

    _rewrite(path, tmp_path / "altered.pemodel", bump_intercept)
    with pytest.raises(ModelError, match="content hash"):
        load(tmp_path / "altered.pemodel")

    def old_format(parts):
        card = orjson.loads(parts["card.json"])
        card["format"] = 0
        parts["card.json"] = orjson.dumps(card)

    _rewrite(path, tmp_path / "old.pemodel", old_format)
    with pytest.raises(ModelError, match=r"format 0.*retrain"):
        load(tmp_path / "old.pemodel")
    (tmp_path / "junk.pemodel").write_text("not a model")
    with pytest.raises(ModelError, match="not a pe_toolkit model"):
        load(tmp_path / "junk.pemodel")
    with pytest.raises(ModelError, match="no such model"):
        load(tmp_path / "missing.pemodel")


def test_a_damaged_byte_anywhere_is_refused_or_harmless(tmp_path):
    # Every offset of a small model file, one byte inverted: load() either
    # refuses with ModelError or (a byte the zip never reads, such as a
    # header's timestamp) returns the same model; never another exception.
    model = fit(toy(), spec=FeatureSpec(min_df=1))
    data = save(model, tmp_path / "m").read_bytes()
    target = tmp_path / "damaged.pemodel"
    texts = ["sad and grey", "happy great"]
    refused = 0
    for offset in range(0, len(data), max(1, len(data) // 400)):
        target.write_bytes(data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1 :])
        try:
            loaded = load(target)
        except ModelError:
            refused += 1
            continue
        assert loaded.predict(texts).equals(model.predict(texts))
    assert refused > 0


def test_report_matches_scikit_learn_and_intervals_hold_the_point():
    from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, roc_auc_score

    rng = np.random.default_rng(3)
    classes = ["a", "b", "c"]
    gold = rng.choice(classes, 300).tolist()
    proba = rng.dirichlet([1, 1, 1], 300)
    proba[np.arange(300), [classes.index(g) for g in gold]] += rng.random(300)  # some signal
    proba /= proba.sum(axis=1, keepdims=True)
    groups = np.repeat(np.arange(100), 3)
    r = report(gold, proba, classes, groups=groups, boot=300)
    pred = np.asarray(classes)[proba.argmax(1)]
    assert r.metric("accuracy") == pytest.approx(accuracy_score(gold, pred))
    assert r.metric("kappa") == pytest.approx(cohen_kappa_score(gold, pred))
    assert r.metric("macro_f1") == pytest.approx(f1_score(gold, pred, average="macro"))
    assert r.metric("auroc") == pytest.approx(roc_auc_score(gold, proba, multi_class="ovr", average="macro"))
    for row in r.overall.iter_rows(named=True):
        assert row["low"] <= row["value"] <= row["high"]
    for row in r.per_class.iter_rows(named=True):
        assert row["f1_low"] <= row["f1"] <= row["f1_high"]
    again = report(gold, proba, classes, groups=groups, boot=300)
    assert again.overall.equals(r.overall)  # seeded
    merged = report(gold, proba, classes, merge={"b": "bc", "c": "bc"}, boot=50)
    assert merged.classes == ("a", "bc") and merged.per_class["support"].sum() == 300
    assert r.calibration["n"].sum() == 300 * 3


def test_printed_report_lines_up_with_long_class_names():
    """A class name longer than the class column pushed its row's figures
    out from under their headers (and the interval's header was one wider
    than the interval, so auroc and n were off by one on every row)."""
    import re

    long = "a_class_name_much_longer_than_the_column_was"
    gold = [long, "b"] * 10
    proba = np.tile([[0.8, 0.2], [0.3, 0.7]], (10, 1))
    text = str(report(gold, proba, [long, "b"], boot=0))
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.lstrip().startswith("class"))

    def spans(line):
        found = [(m.start(), m.end()) for m in re.finditer(r"\S+", line)]
        # prec, recall, f1 and auroc, n end under their headers; the interval starts under its header
        return [e for _, e in found[1:4]], [e for _, e in found[-2:]], found[4][0]

    want = spans(lines[at])
    for row in lines[at + 1 : at + 3]:
        assert spans(row) == want, text


def test_auroc_interval_and_group_folds():
    y = np.array([0, 0, 1, 1, 0, 1] * 20, dtype=bool)
    s = np.where(y, 0.7, 0.3) + np.linspace(0, 0.5, len(y))
    point, low, high = auroc_interval(s, y, boot=200)
    from sklearn.metrics import roc_auc_score

    assert point == pytest.approx(roc_auc_score(y, s)) and low <= point <= high
    assert auroc_interval(s, np.ones(len(y), dtype=bool)) == (None, None, None)
    groups = np.repeat(np.arange(30), 4)
    fold = folds_of(groups, ["x", "y"] * 60, 5)
    for g in range(30):
        assert len(set(fold[groups == g])) == 1  # a group never straddles folds
    with pytest.raises(InputError, match="at least 5 groups"):
        folds_of(np.zeros(10), ["x"] * 10, 5)


def test_cross_validation_and_evaluate_on_a_toy_task():
    frame = pl.concat([toy()] * 3).with_columns(group=pl.int_range(pl.len()) // 2)
    r = cross_validate(frame, group="group", folds=4, boot=50, spec=FeatureSpec(min_df=1))
    assert r.n == 48 and r.groups == 24 and r.metric("accuracy") > 0.8
    model = fit(frame, spec=FeatureSpec(min_df=1))
    e = evaluate(model, frame, boot=50)
    assert e.metric("accuracy") == 1.0 and "glad" in str(e)


@pytest.mark.parametrize("pair_tables", [True, False], ids=["dense pair tables", "hashed pairs"])
def test_the_fast_word_block_equals_the_plain_one(pair_tables, monkeypatch):
    """The word block looked up kind by kind (dense tables, hash lookups)
    equals every candidate key looked up one by one, matrix and spans; word
    pairs through the dense rank tables and through the hash a model with a
    large vocabulary falls back to."""
    from pe_toolkit.learn import features as F

    if not pair_tables:
        monkeypatch.setattr(F, "_PAIR_TABLE_MAX", 0)

    rng = np.random.default_rng(5)
    vocabulary = ["how", "are", "you?", "i", "feel", "sad.", "have", "you", "tried", "it!", "so", "what", "happened?",
                  "hurt/kill", "don't", "know.", "...", "-", "maybe", "talk", "to", "her", "ok"]  # fmt: skip
    texts = [" ".join(rng.choice(vocabulary, size=rng.integers(0, 14))) for _ in range(300)]
    tokens = tokenize(pl.Series(texts))
    for spec in (FeatureSpec(min_df=1), FeatureSpec(min_df=2, word_ngrams=3), FeatureSpec(min_df=1, sentences=False)):
        f = Featurizer.fit(spec, tokens, np.arange(150))  # fitted on half: the rest has unknown n-grams
        assert bool(f._pair_tables) == pair_tables and f._pairs
        w = F.words_of(tokens, np.arange(300), f._table)
        fast, occ = f._word_block(w)
        plain, ref = f._word_block_reference(w)
        assert (fast != plain).nnz == 0
        first, last = occ.tokens(np.arange(len(occ.col)))
        ours = sorted(zip(occ.text.tolist(), occ.col.tolist(), first.tolist(), last.tolist()))
        assert ours == sorted(zip(ref.text.tolist(), ref.key.tolist(), ref.first.tolist(), ref.last.tolist()))


def test_words_of_equals_a_plain_walk_over_tokens_and_their_words():
    """The vectorized expansion of tokens into words (gathers from
    per-vocabulary tables) against a Python walk, on texts with empty
    rows, punctuation-only tokens and multi-word tokens, any row order."""
    from pe_toolkit.learn.features import _vocab_words_of, words_of

    texts = ["", "Hi there. How are you?", "...", "it's fine!! ok", "", "a-b c?d e.", "?", "why? me. "]
    tokens = tokenize(pl.Series(texts))
    table = pl.DataFrame({"word": ["hi", "how", "you", "?", "ok", "why", "me", "it"], "id": np.arange(8)})
    lookup = dict(zip(table["word"].to_list(), table["id"].to_list(), strict=True))
    per_vocab = _vocab_words_of(tokens)
    vocab_words, ends, question = per_vocab["words"].to_list(), per_vocab["ends"].to_list(), per_vocab["question"].to_list()
    for rows in (np.arange(len(texts)), np.array([7, 0, 3, 3, 4]), np.array([0, 4]), np.array([], dtype=np.int64)):
        w = words_of(tokens, rows, table)
        expected = []
        for i, row in enumerate(rows.tolist()):
            for t in range(int(tokens.offsets[row]), int(tokens.offsets[row + 1])):
                code = int(tokens.codes[t])
                words = vocab_words[code] or []
                for j, word in enumerate(words):
                    last = j == len(words) - 1
                    expected.append((lookup.get(word, -1), i, t, bool(ends[code]) and last, bool(question[code]) and last,
                                     w.words_of_batch.to_list().index(word)))  # fmt: skip
        got = list(zip(w.ids.tolist(), w.text.tolist(), w.token.tolist(), w.ends_sentence.tolist(), w.ends_question.tolist(),
                       w.batch_ids.tolist(), strict=True))  # fmt: skip
        assert got == expected and w.n_texts == len(rows)
        assert w.per_text.tolist() == [sum(1 for e in expected if e[1] == i) for i in range(len(rows))]
    assert len(words_of(tokens, np.arange(len(texts)), table).ids) > 10


def test_words_of_reads_the_vocabularys_shared_words_as_a_fresh_tokenization_would():
    """The vocabulary's flat words are computed once per Tokens and shared by
    the models of a pass (each with its own word ids and texts): a second
    model's words equal those of a tokenization that no model read before,
    and the first model's ids do not leak into the second's."""
    from pe_toolkit.learn.features import _vocab_flat_of, words_of

    texts = ["Hi there. How are you?", "it's fine!! ok", "", "why? me. ", "how are you", "ok ok"]
    first = pl.DataFrame({"word": ["hi", "how", "you", "?"], "id": np.arange(4)})
    second = pl.DataFrame({"word": ["ok", "why", "me", "you", "fine"], "id": np.arange(5)})
    shared = tokenize(pl.Series(texts))
    words_of(shared, np.array([0, 4]), first)
    assert _vocab_flat_of(shared) is _vocab_flat_of(shared)
    for rows, table in ((np.array([1, 3, 5, 2]), second), (np.array([0, 4]), first), (np.arange(6), None)):
        ours, fresh = words_of(shared, rows, table), words_of(tokenize(pl.Series(texts)), rows, table)
        for name in ("ids", "text", "token", "ends_sentence", "ends_question", "batch_ids"):
            assert np.array_equal(getattr(ours, name), getattr(fresh, name)), name
        assert ours.words_of_batch.equals(fresh.words_of_batch)
    assert words_of(shared, np.array([1, 5]), second).ids.tolist() == [-1, 4, -1, -1, 0, 0, 0]  # it's fine ! ! ok, ok ok


def test_evidence_counts_a_negative_value_under_a_negative_weight_and_skips_any_negative_class():
    """A rule column may hold negative values: a negative value under a
    negative weight raises the class and is evidence (against a brute-force
    ranking of every contribution); any negative class index skips a text."""
    from pe_toolkit.learn.model import _batch_of

    frame = toy().with_columns(mood=pl.Series([-1.0] * len(SAD) + [1.0] * len(GLAD)))
    model = fit(frame, rules=["mood"], spec=FeatureSpec(min_df=1))
    texts, mood = ["sad and grey", "a great week"], np.array([[-1.0], [1.0]])
    batch = _batch_of(model, texts, None, mood)
    proba = model.predict_proba(batch)
    target = proba.argmax(axis=1)
    ev = model.evidence(batch, proba, top=3)
    dense = batch.matrix.toarray()
    names = model.featurizer.feature_names()
    for row in range(2):
        contrib = dense[row] * model.coef[:, target[row]]
        order = [j for j in np.argsort(-contrib, kind="stable")[:3] if contrib[j] > 0]
        assert ev.filter(pl.col("row") == row)["feature"].to_list() == [names[j] for j in order]
    assert "rule:mood" in ev["feature"].to_list()
    skipped = model.evidence(batch, proba, top=3, classes=np.array([-10**9, target[1]]))
    assert skipped["row"].unique().to_list() == [1]


@pytest.mark.parametrize("n_wanted", [16, 13, 12, 3, 0])
def test_evidence_is_each_wanted_texts_heaviest_contributions_whatever_share_is_explained(n_wanted):
    """Evidence against a brute-force ranking of every contribution, with all,
    most and few of the texts explained (the texts left out skipped with a
    negative class): the few are read from their own nonzeros only, the
    rest from all of them with the skipped masked; the same rows either way."""
    from pe_toolkit.learn.model import _batch_of

    model = fit(toy(), spec=FeatureSpec(min_df=1))
    texts = [*SAD, *GLAD]
    batch = _batch_of(model, texts, None, None)
    proba = model.predict_proba(batch)
    rng = np.random.default_rng(n_wanted)
    target = rng.integers(0, 2, len(texts))  # some texts explained for the class they are not
    wanted = np.zeros(len(texts), dtype=bool)
    wanted[rng.permutation(len(texts))[:n_wanted]] = True
    ev = model.evidence(batch, proba, top=3, classes=np.where(wanted, target, -1 - rng.integers(0, 5, len(texts))))
    dense = batch.matrix.toarray()
    names = model.featurizer.feature_names()
    expected = []
    for row in np.flatnonzero(wanted).tolist():
        contrib = dense[row] * model.coef[:, target[row]]
        expected += [(row, names[j], contrib[j]) for j in np.argsort(-contrib, kind="stable")[:3] if contrib[j] > 0]
    got = list(zip(ev["row"].to_list(), ev["feature"].to_list(), ev["weight"].to_list(), strict=True))
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    np.testing.assert_allclose([g[2] for g in got], [e[2] for e in expected], rtol=1e-12)
    assert (len(got) > 0) == (n_wanted > 0)
    # The spans: matched among the explained texts' occurrences only when
    # they are few, among all when every text is explained; the same spans.
    every = model.evidence(batch, proba, top=3, classes=target)
    spans = ev.join(every, on=["row", "feature"], how="left", suffix="_every")
    assert spans["start"].equals(spans["start_every"], check_names=False) and spans["end"].equals(spans["end_every"], check_names=False)
    assert spans["start"].null_count() < max(spans.height, 1)


def test_evidence_follows_weights_replaced_after_a_first_call():
    """Evidence reads the weights through a table kept per weights array (as
    float64, with the columns without a span at 0 for spans_only): a model
    given new weights explains with them, not with the table of the old."""
    from pe_toolkit.learn.model import _batch_of

    model = fit(toy(), spec=FeatureSpec(min_df=1))
    batch = _batch_of(model, [*SAD, *GLAD], None, None)
    proba = model.predict_proba(batch)
    target = proba.argmax(axis=1)
    before = model.evidence(batch, proba, top=2, classes=target, spans_only=True)
    model.coef = -model.coef  # a new array: what the positive contributions were are now the negative ones
    after = model.evidence(batch, proba, top=2, classes=target, spans_only=True)
    dense = batch.matrix.toarray()
    names = model.featurizer.feature_names()
    has_span = model.featurizer.has_span
    expected = []
    for row in range(len(target)):
        contrib = np.where(has_span, dense[row] * model.coef[:, target[row]], 0.0)
        expected += [(row, names[j]) for j in np.argsort(-contrib, kind="stable")[:2] if contrib[j] > 0]
    assert list(zip(after["row"].to_list(), after["feature"].to_list(), strict=True)) == expected
    assert not set(after["feature"].to_list()) & set(before["feature"].to_list())


def test_ranges_concatenates_each_run_in_order():
    from pe_toolkit.analysis.text import ranges

    starts, lengths = np.array([5, 0, 9, 2, 7]), np.array([3, 0, 1, 2, 0])
    assert ranges(starts, lengths).tolist() == [s + j for s, n in zip(starts, lengths, strict=True) for j in range(n)]
    assert ranges(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)).tolist() == []
    # Long runs on average (a cumulative sum of steps): empty runs, starts going down and repeating.
    rng = np.random.default_rng(2)
    for n in (1, 3, 50):
        starts, lengths = rng.integers(0, 1000, n), rng.integers(0, 12, n) * 2
        lengths[rng.random(n) < 0.3] = 0
        lengths[0] = 4 * n + 1  # at least four per run on average
        assert len(lengths) * 4 <= lengths.sum()
        assert ranges(starts, lengths).tolist() == [s + j for s, n in zip(starts, lengths, strict=True) for j in range(n)]


def test_counts_matrix_is_scipys_canonical_csr_array_for_array():
    """The count matrix built by two counting transposes is scipy's
    COO -> CSR with its repeats summed, array for array (sorted columns in
    each row, same dtypes): the tf-idf norms, the scores and the evidence's
    tie order read the nonzeros in that order. Input as the featurizer
    gives it: parts each in text order, not in order together, with repeats
    and empty rows."""
    import scipy.sparse as sp

    from pe_toolkit.learn.features import _csr

    rng = np.random.default_rng(7)
    parts = [(np.sort(rng.integers(0, 40, n)), rng.integers(0, 25, n)) for n in (300, 120, 0, 45)]
    rows = np.concatenate([p[0] for p in parts])
    cols = np.concatenate([p[1] for p in parts]).astype(np.int32)
    for n_rows, n_cols in ((50, 25), (40, 30)):
        ours = _csr(rows, cols, n_rows, n_cols)
        ref = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_rows, n_cols))
        ref.sum_duplicates()
        assert ours.shape == ref.shape and ours.has_canonical_format and ours.has_sorted_indices
        for name in ("indptr", "indices", "data"):
            a, b = getattr(ours, name), getattr(ref, name)
            assert a.dtype == b.dtype and np.array_equal(a, b), name
        assert ours.data.max() > 1  # repeats were summed
    empty = _csr(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 3, 4)
    assert empty.shape == (3, 4) and empty.nnz == 0 and np.array_equal(empty.indptr, [0, 0, 0, 0])


def _with_folds(labels: list[str], proba: np.ndarray, classes: list[str], fold: np.ndarray):
    r = report(labels, proba, classes, groups=np.arange(len(labels)), boot=0)
    return r.__class__(**{**r.__dict__, "predictions": r.predictions.with_columns(fold=pl.Series(fold, dtype=pl.Int32))})


def _best_threshold_by_hand(p: np.ndarray, y: np.ndarray) -> float:
    """Every candidate threshold tried as the rule p >= t (no ties in p here);
    the highest of the best, as the tuning keeps the first in descending order."""
    best, best_f1 = 1.0, -1.0
    for t in sorted(set(p.tolist()), reverse=True):
        tp = int((p >= t)[y].sum())
        f1 = 2 * tp / ((p >= t).sum() + y.sum())
        if f1 > best_f1:
            best, best_f1 = t, f1
    return round(best, 4)


def test_the_multi_code_decision_is_scored_with_thresholds_from_the_other_folds():
    from pe_toolkit.learn.recipes import multi_code_report

    rng = np.random.default_rng(3)
    classes = ["a", "b", "c"]
    labels = rng.choice(classes, 240).tolist()
    raw = rng.random((240, 3)) + 0.6 * (np.asarray(labels)[:, None] == np.asarray(classes)[None, :])
    proba = raw / raw.sum(axis=1, keepdims=True)
    fold = np.arange(240) % 4
    rep = _with_folds(labels, proba, classes, fold)
    nested = multi_code_report(rep, boot=0)
    y = np.asarray(labels)[:, None] == np.asarray(classes)[None, :]
    for k in range(4):
        rest = fold != k
        cut = [_best_threshold_by_hand(proba[rest, j], y[rest, j]) for j in range(3)]
        expected = [[c for j, c in enumerate(classes) if proba[i, j] >= cut[j]] for i in np.flatnonzero(fold == k)]
        assert nested.predictions.filter(pl.Series(fold == k))["predicted"].to_list() == expected
    # In-sample: one set of thresholds for all, tuned on all of them.
    whole = multi_code_report(rep, nested=False, boot=0)
    cut = [_best_threshold_by_hand(proba[:, j], y[:, j]) for j in range(3)]
    assert whole.predictions["predicted"].to_list() == [[c for j, c in enumerate(classes) if row[j] >= cut[j]] for row in proba]
    # A fold's own labels never move its thresholds: relabel fold 0 and its decisions stay.
    relabelled = [("a" if f == 0 else g) for g, f in zip(labels, fold, strict=True)]
    again = multi_code_report(_with_folds(relabelled, proba, classes, fold), boot=0)
    first = pl.Series(fold == 0)
    assert again.predictions.filter(first)["predicted"].to_list() == nested.predictions.filter(first)["predicted"].to_list()


def test_cross_validation_keeps_each_items_fold_and_nested_thresholds_need_it():
    from pe_toolkit.learn.recipes import multi_code_report

    frame = pl.concat([toy()] * 3).with_columns(group=pl.int_range(pl.len()) // 2)
    r = cross_validate(frame, group="group", folds=4, boot=20, spec=FeatureSpec(min_df=1), workers=1)
    assert r.predictions["fold"].to_list() == folds_of(frame["group"].to_numpy(), frame["label"].to_list(), 4, 0).tolist()
    assert multi_code_report(r, boot=20).n == frame.height
    without = report(frame["label"].to_list(), r.predictions.select("p_glad", "p_sad").to_numpy(), ["glad", "sad"], boot=0)
    with pytest.raises(InputError, match="each item's fold"):
        multi_code_report(without)
    with pytest.raises(InputError, match="one per class"):
        from pe_toolkit.learn.validity import multilabel_report

        multilabel_report([["a"], ["b"]], np.full((2, 2), 0.5), ["a", "b"], thresholds=np.full(3, 0.5))
    # One threshold for all classes, or a row of them, as before per-item thresholds.
    from pe_toolkit.learn.validity import multilabel_report

    p = np.array([[0.2, 0.6], [0.4, 0.1]])
    same = [multilabel_report([["a"], ["b"]], p, ["a", "b"], thresholds=t, boot=0).predictions["predicted"].to_list()
            for t in (0.3, np.array([0.3, 0.3]), np.array([[0.3, 0.3]]), np.full((2, 2), 0.3))]  # fmt: skip
    assert same == [[["b"], ["a"]]] * 4
