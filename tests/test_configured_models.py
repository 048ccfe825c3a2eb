"""A project's own models in pe_toolkit.toml run in every pass: the CLI's, a
script's and a notebook's, so one does not undo the other's scores."""

from __future__ import annotations

import polars as pl
import pytest
from click.testing import CliRunner

import pe_toolkit as pe
from pe_toolkit.analysis import register, unregister
from pe_toolkit.analysis.learned import ModelAnalyzer
from pe_toolkit.analysis.registry import load
from pe_toolkit.cli import cli
from pe_toolkit.errors import ConfigError
from pe_toolkit.learn import FeatureSpec, fit, save


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with a cache of two conversations and a model file;
    returns a function writing its config."""
    train = pl.DataFrame({"text": ["thank you so much", "thanks a lot", "what happened next?", "how did it feel?"] * 3,
                          "label": ["thanks", "thanks", "ask", "ask"] * 3})  # fmt: skip
    (tmp_path / "models").mkdir()
    save(fit(train, spec=FeatureSpec(min_df=1)), tmp_path / "models" / "codes.pemodel")
    with pe.Store(tmp_path / "cache.duckdb") as store:
        pe.import_frame(store, pl.DataFrame({"user": ["I lost my job.", "My dog died."],
                                             "assistant": ["What happened next?", "Thank you for telling me."]}))  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PE_CACHE")

    def configure(models: str) -> None:
        (tmp_path / "pe_toolkit.toml").write_text(f'[cache]\npath = "cache.duckdb"\n\n{models}\n', encoding="utf-8")
        monkeypatch.setenv("PE_CONFIG", str(tmp_path / "pe_toolkit.toml"))

    return configure


MODEL = '[[analysis.models]]\npath = "models/codes.pemodel"\nname = "my_codes"\nprefix = "code"\n'


def test_the_cli_and_a_script_run_the_configured_model_and_agree_on_its_version(project, tmp_path):
    project(MODEL)
    r = CliRunner().invoke(cli, ["analyze"])
    assert r.exit_code == 0, r.output
    with pe.Store(tmp_path / "cache.duckdb") as store:
        scored = store.scores("message").filter(pl.col("role") == "assistant").sort("conversation_id")
        assert sorted(scored["code"].to_list()) == ["ask", "thanks"]
        assert scored["code_p_thanks"].null_count() == 0
        evidence = store.scores("evidence").filter(pl.col("analyzer") == "my_codes")
        assert evidence.height > 0
        # A script in the same project runs the same analyzers: nothing to re-score.
        assert pe.analyze(store, progress=False).scored == 0
    # ... and so does the CLI after it.
    assert "scored 0" in CliRunner().invoke(cli, ["analyze"]).output


def test_a_replaced_model_file_is_read_again(project, tmp_path):
    project(MODEL)
    first = next(a for a in load().analyzers if a.name == "my_codes")
    version = first.version
    assert next(a for a in load().analyzers if a.name == "my_codes") is first  # read once
    other = pl.DataFrame({"text": ["yes", "no", "maybe so", "never again"] * 3, "label": ["a", "b", "a", "b"] * 3})
    save(fit(other, spec=FeatureSpec(min_df=1)), tmp_path / "models" / "codes.pemodel")
    again = next(a for a in load().analyzers if a.name == "my_codes")
    assert again is not first and again.version != version


def test_a_registered_analyzer_replaces_the_configured_one_of_its_name(project):
    project(MODEL)
    mine = ModelAnalyzer(fit(pl.DataFrame({"text": ["a b", "c d"] * 4, "label": ["x", "y"] * 4}), spec=FeatureSpec(min_df=1)),
                         name="my_codes")  # fmt: skip
    register(mine)
    try:
        assert [a for a in load().analyzers if a.name == "my_codes"] == [mine]
    finally:
        unregister("my_codes")


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ('[[analysis.models]]\npath = "models/none.pemodel"\nname = "gone"\n', "no model file at"),
        ('[[analysis.models]]\npath = "models/codes.pemodel"\nname = "skills_model"\n', "shipped analyzer's name"),
        ('[[analysis.models]]\npath = "models/codes.pemodel"\nname = "x"\ncolour = "red"\n', "unknown key"),
        ('[[analysis.models]]\npath = "models/codes.pemodel"\n', "needs name"),
        ('[[analysis.models]]\npath = "models/codes.pemodel"\nname = "x"\nrole = "bot"\n', "role must be"),
        ('[analysis]\nmodels = "models/codes.pemodel"\n', "must be a list of tables"),
        (MODEL + MODEL, "names must differ"),
    ],
)
def test_a_bad_entry_is_one_clear_error(project, models, message):
    project(models)
    with pytest.raises(ConfigError, match=message):
        load()
    r = CliRunner().invoke(cli, ["analyze"])
    assert r.exit_code == 1 and r.output.startswith("pe-toolkit: error:") and message in r.output, r.output
    assert "Traceback" not in r.output


def test_doctor_loads_the_configured_models(project, tmp_path):
    project(MODEL)
    r = CliRunner().invoke(cli, ["doctor"])
    assert "my_codes: 2 classes, hash" in r.output and "model scores" not in r.output, r.output  # nothing analyzed yet
    assert CliRunner().invoke(cli, ["analyze"]).exit_code == 0
    r = CliRunner().invoke(cli, ["doctor"])
    assert r.exit_code == 0 and "the latest analysis ran with the configured models" in r.output, r.output
    # A model replaced since the latest analysis: its old scores are still in force.
    other = pl.DataFrame({"text": ["yes", "no", "maybe so", "never again"] * 3, "label": ["a", "b", "a", "b"] * 3})
    save(fit(other, spec=FeatureSpec(min_df=1)), tmp_path / "models" / "codes.pemodel")
    r = CliRunner().invoke(cli, ["doctor"])
    assert r.exit_code == 1 and "my_codes: not what the latest analysis ran with" in r.output, r.output
    # An analysis that stopped partway (here a column clash) is in force only for what it finished.
    project('[[analysis.models]]\npath = "models/codes.pemodel"\nname = "my_codes"\nprefix = "skill"\n')
    assert CliRunner().invoke(cli, ["analyze"]).exit_code == 1
    r = CliRunner().invoke(cli, ["doctor"])
    assert r.exit_code == 1 and "the latest analysis is failed, not completed" in r.output, r.output
    project(MODEL)
    (tmp_path / "models" / "codes.pemodel").write_bytes(b"not a model")
    r = CliRunner().invoke(cli, ["doctor"])
    assert r.exit_code == 1 and "models" in r.output and "not a pe_toolkit model file" in r.output, r.output


def test_a_model_of_whole_conversations_is_refused_for_message_scoring(project, tmp_path):
    project(MODEL)
    model = fit(pl.DataFrame({"text": ["a b", "c d"] * 4, "label": ["x", "y"] * 4}), spec=FeatureSpec(min_df=1))
    model.card["data"] = {"review_task": "review", "level": "conversation"}
    save(model, tmp_path / "models" / "codes.pemodel")
    with pytest.raises(ConfigError, match="trained on whole conversations"):
        load()
    # Fitted in Python on labels of conversations (as the review widget gives
    # them), the card records the level itself.
    from pe_toolkit import learn
    from pe_toolkit.store.annotations import annotate

    with pe.Store(tmp_path / "cache.duckdb") as store:
        ids = store.sql("SELECT id FROM conversations ORDER BY id")["id"].to_list()
        for cid, code in zip(ids, ["x", "y"], strict=True):
            annotate(store, cid, code, reviewer="ana", task="t")
        frame = learn.from_store(store, task="t")
    save(fit(frame, spec=FeatureSpec(min_df=1)), tmp_path / "models" / "codes.pemodel")
    with pytest.raises(ConfigError, match="trained on whole conversations"):
        load()


def test_the_api_answer_runs_the_shipped_analyzers_only(project):
    # A configured model's missing file must not fail the mirror's validation
    # route (a 500 naming a server path), nor add columns to its answer.
    from pe_toolkit.analysis import validate_conversation

    project('[[analysis.models]]\npath = "models/none.pemodel"\nname = "gone"\n')
    conversation = {"id": "c1", "messages": [{"role": "user", "content": "I lost my job."},
                                              {"role": "assistant", "content": "What happened next?"}]}  # fmt: skip
    answer = validate_conversation(conversation, include_messages=True)
    assert answer["conversation_id"] == "c1" and not any(k.startswith("code") for k in answer["message_scores"][1])


def test_a_ray_worker_scores_with_the_shipped_analyzers_its_manifest_names(project, tmp_path, write_jsonl):
    # The worker's task, run here without Ray: a configured model in the
    # worker's folder must not add columns that the manifest's version
    # (the shipped analyzers') does not name.
    import pyarrow.parquet as pq

    from pe_toolkit.scale.partition import analyze_file, partition_dir

    from .conftest import conversation

    project(MODEL)
    source = write_jsonl([conversation(i) for i in range(3)], name="in.jsonl")
    row = analyze_file(str(source), "k0", str(tmp_path / "out"), "fp")
    assert row["conversations"] == 3
    columns = pq.read_table(partition_dir(tmp_path / "out", "message_scores", "k0")).column_names
    assert "skill" in columns and not any(c.startswith("code") for c in columns)


def test_a_prefix_that_takes_a_shipped_column_is_one_error_naming_both(project):
    project('[[analysis.models]]\npath = "models/codes.pemodel"\nname = "my_codes"\nprefix = "skill"\n')
    r = CliRunner().invoke(cli, ["analyze"])
    assert r.exit_code == 1 and "analyzer 'my_codes' returns message column(s) already set: skill (set by analyzer 'skills_model')" in r.output, r.output
    project('[[analysis.models]]\npath = "models/codes.pemodel"\nname = "my_codes"\nprefix = "role"\n')
    r = CliRunner().invoke(cli, ["analyze"])
    assert r.exit_code == 1 and "role (set by the messages themselves)" in r.output, r.output


def test_learn_list_shows_the_project_models_beside_the_shipped_ones(project):
    project(MODEL)
    r = CliRunner().invoke(cli, ["learn", "list"])
    assert r.exit_code == 0 and "skills.pemodel" in r.output and "codes.pemodel" in r.output, r.output


def test_a_clash_names_the_analyzer_that_set_the_column_at_that_level():
    from pe_toolkit.analysis import analyze_frame
    from pe_toolkit.analysis.custom import analyzer
    from pe_toolkit.errors import AnalysisError

    frame = pl.DataFrame({"conversation_id": ["c"], "idx": [0], "role": ["user"], "content": ["hi"]})

    @analyzer("first", register_it=False)
    def first(messages):
        return messages.select(score=pl.lit(1.0))

    @analyzer("second", register_it=False)
    def second(messages):
        return {"conversations": messages.select("conversation_id").unique().with_columns(score=pl.lit(2.0))}

    @analyzer("third", register_it=False)
    def third(messages):
        return messages.select(score=pl.lit(3.0))

    with pytest.raises(AnalysisError, match=r"message column\(s\) already set: score \(set by analyzer 'first'\)"):
        analyze_frame(frame, analyzers=[first, second, third])
