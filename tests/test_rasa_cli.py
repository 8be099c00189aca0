"""The real engine path: `rasa train nlu` and `rasa test nlu` as subprocesses, then `Agent` parsing."""

import asyncio
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml
from rasa.core.agent import Agent


from tests.helpers import ENTITY_HELD_OUT, ENTITY_TRAIN, HELD_OUT, TRAIN, rasa, write_config_yaml, write_nlu_yaml

pytestmark = pytest.mark.slow


def train_project(path: Path, pipeline: List[Dict[str, Any]], data: Dict[str, List[str]] = TRAIN) -> str:
    """Write a project with `data` and `pipeline`, train it with `rasa train nlu`, return its output."""
    write_nlu_yaml(path / "data" / "nlu.yml", data)
    write_nlu_yaml(path / "tests" / "nlu.yml", HELD_OUT)
    write_config_yaml(path / "config.yml", pipeline)
    return rasa(path, "train", "nlu", "--config", "config.yml", "--nlu", "data/nlu.yml", "--out", "models", "--fixed-model-name", "nlu")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, tiny_settings: Dict[str, Any]) -> Path:
    """The component after a tokenizer and a featurizer, as in most Rasa pipelines, followed by
    bert-intent's FallbackClassifier at a threshold of the config's (the example bot's uses the recommended
    one: tests/test_example_bot.py); `entity_project` has the component alone on raw text."""
    path = tmp_path_factory.mktemp("project")
    train_project(
        path,
        [
            {"name": "JiebaTokenizer"},
            {"name": "CountVectorsFeaturizer"},
            {"name": "bert_intent.BertIntentClassifier", **tiny_settings, "ranking_length": 3},
            {"name": "bert_intent.BertFallbackClassifier", "threshold": 0.5},
        ],
    )
    return path


def load_agent(project: Path) -> Agent:
    return Agent.load(str(project / "models" / "nlu.tar.gz"))


@pytest.fixture(scope="module")
def agent(project: Path) -> Agent:
    return load_agent(project)


def parse(agent: Agent, text: str) -> Dict[str, Any]:
    return asyncio.run(agent.parse_message(text))


def test_the_archive_is_self_contained_onnx_and_json(project: Path) -> None:
    with tarfile.open(project / "models" / "nlu.tar.gz") as archive:
        names: List[str] = archive.getnames()
    component_files = {Path(name).name for name in names if "BertIntentClassifier" in name}
    assert {"model.onnx", "config.json", "tokenizer.json", "bert_intent.json"} <= component_files
    assert not [name for name in component_files if Path(name).suffix in (".bin", ".pkl", ".pt", ".pth")]


def test_parse_returns_intent_and_ranking(agent: Agent) -> None:
    result = parse(agent, "明天会下雨吗")
    assert result["intent"]["name"] == "weather"
    assert isinstance(result["intent"]["confidence"], float) and result["intent"]["confidence"] > 0.5
    ranking = result["intent_ranking"]
    assert len(ranking) == 3 and ranking[0]["name"] == "weather"
    assert [entry["confidence"] for entry in ranking] == sorted((entry["confidence"] for entry in ranking), reverse=True)
    json.dumps(result)  # what the HTTP API returns must serialise


def test_fallback_classifier_turns_empty_and_unsure_messages_into_nlu_fallback(agent: Agent) -> None:
    assert parse(agent, "")["intent"]["name"] == "nlu_fallback"
    for text in ["嗯", "asdfgh", "😀😀😀", "帮我订一张机票"]:
        intent = parse(agent, text)["intent"]
        assert intent["name"] == "nlu_fallback" or intent["confidence"] >= 0.5  # never kept below threshold
    assert parse(agent, "帮我订一张机票")["intent"]["name"] == "book_ticket"


def test_the_parts_command_reports_each_part_of_a_trained_archive(project: Path) -> None:
    with (project / "tests" / "nlu.yml").open("a", encoding="utf-8") as nlu:
        nlu.write("- intent: unknown_to_the_model\n  examples: |\n    - 今天股市怎么样\n")
    result = subprocess.run(
        [sys.executable, "-m", "bert_intent.parts", "models/nlu.tar.gz", "tests/nlu.yml"],
        cwd=project, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "encoder head alone" in result.stdout and "Weights chosen in training" in result.stdout
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    parts = {"encoder", "ngrams", "combined", "served"}
    assert parts <= set(summary) and set(summary["per_intent_mean"]) == parts
    assert summary["skipped"] == 1 and summary["messages"] == sum(map(len, HELD_OUT.values()))
    assert summary["served"] >= 0.8
    missing = subprocess.run([sys.executable, "-m", "bert_intent.parts", "nothing.tar.gz", "tests/nlu.yml"],
                             cwd=project, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "nothing.tar.gz is not a file" in missing.stderr


@pytest.fixture(scope="module")
def entity_project(tmp_path_factory: pytest.TempPathFactory, tiny_settings: Dict[str, Any]) -> Path:
    """Annotated entities (roles included), with a synonym and a regex, and Rasa's own extractors beside ours."""
    path = tmp_path_factory.mktemp("entity-project")
    write_nlu_yaml(path / "data" / "nlu.yml", ENTITY_TRAIN)
    with (path / "data" / "nlu.yml").open("a", encoding="utf-8") as nlu:
        nlu.write(  # RegexEntityExtractor uses the regexes named after an annotated entity
            "- intent: greet\n  examples: |\n    - 你好，我的电话是[13912345678](phone)\n"
            "- synonym: Beijing\n  examples: |\n    - 北京\n- regex: phone\n  examples: |\n    - 1[0-9]{10}\n"
        )
    write_nlu_yaml(path / "tests" / "nlu.yml", ENTITY_HELD_OUT)
    pipeline = [
        {"name": "bert_intent.BertIntentClassifier", **tiny_settings, "epochs": 60},
        {"name": "RegexEntityExtractor", "use_regexes": True},
        {"name": "EntitySynonymMapper"},
    ]
    write_config_yaml(path / "config.yml", pipeline)
    rasa(path, "train", "nlu", "--config", "config.yml", "--nlu", "data/nlu.yml", "--out", "models", "--fixed-model-name", "nlu")
    return path


def test_parse_returns_entities_beside_other_extractors_with_synonyms_mapped(entity_project: Path) -> None:
    result = parse(load_agent(entity_project), "查一下北京明天的天气，电话13800138000")
    city = next(entity for entity in result["entities"] if entity["entity"] == "city")
    assert (city["extractor"], city["start"], city["end"], city["value"]) == ("BertIntentClassifier", 3, 5, "Beijing")
    assert 0.5 < city["confidence_entity"] <= 1 and isinstance(city["confidence_entity"], float)
    assert {"entity": "phone", "start": 13, "end": 24, "value": "13800138000", "extractor": "RegexEntityExtractor"}.items() <= next(
        entity for entity in result["entities"] if entity["extractor"] == "RegexEntityExtractor"
    ).items()
    booking = parse(load_agent(entity_project), "从深圳到杭州")["entities"]  # a training example: roles come out
    assert [(entity["value"], entity["role"]) for entity in booking] == [("深圳", "departure"), ("杭州", "destination")]
    json.dumps(result)


def test_rasa_test_nlu_reports_our_intents_and_entities_without_a_tokenizer(entity_project: Path) -> None:
    rasa(entity_project, "test", "nlu", "--model", "models/nlu.tar.gz", "--nlu", "tests/nlu.yml", "--out", "results")
    results = entity_project / "results"
    intents = json.loads((results / "intent_report.json").read_text(encoding="utf-8"))
    assert set(ENTITY_HELD_OUT) <= set(intents)
    assert intents["accuracy"] >= 0.8
    assert (results / "intent_confusion_matrix.png").is_file()
    report = json.loads((results / "BertIntentClassifier_report.json").read_text(encoding="utf-8"))
    assert {"city", "time"} <= set(report)
    assert report["micro avg"]["f1-score"] >= 0.5  # wiring, not quality: a tiny random BERT (benchmarks/entities.py measures quality)


def test_awkward_data_trains_and_the_warnings_name_the_intents(tmp_path: Path, tiny_settings: Dict[str, Any]) -> None:
    awkward = {
        "greet": TRAIN["greet"] + ["放首歌"],  # also a music example
        "music": TRAIN["music"],
        "weather": [f"{text}{number}" for number in range(4) for text in TRAIN["weather"]],  # 60 examples
        "alarm": ["设一个早上七点的闹钟"],  # a single example
    }
    output = train_project(tmp_path, [{"name": "bert_intent.BertIntentClassifier", **tiny_settings, "epochs": 2}], awkward)
    assert "appear under more than one intent: '放首歌' (greet, music)" in output
    assert "fewer than 5 examples: 'alarm' (1)" in output
    assert "Intent 'weather' has 60 examples, at least 10x as many as 'alarm' (1)" in output
    assert (tmp_path / "models" / "nlu.tar.gz").is_file()


def test_a_failed_rasa_train_leaves_the_previous_model_as_it_was(project: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(project, tmp_path / "project", ignore=shutil.ignore_patterns("results")))
    archive = copy / "models" / "nlu.tar.gz"
    before = archive.read_bytes()
    config = yaml.safe_load((copy / "config.yml").read_text(encoding="utf-8"))
    broken = {"model_name": "./no-such-checkpoint"}
    write_config_yaml(copy / "config.yml", [
        {**component, **broken} if component["name"] == "bert_intent.BertIntentClassifier" else component
        for component in config["pipeline"]
    ])
    output = rasa(copy, "train", "nlu", "--config", "config.yml", "--nlu", "data/nlu.yml", "--out", "models",
                  "--fixed-model-name", "nlu", expect_success=False)
    assert "model_name './no-such-checkpoint' is neither an existing checkpoint directory" in output
    assert "Traceback" not in output
    assert archive.read_bytes() == before
    assert [path.name for path in (copy / "models").iterdir()] == ["nlu.tar.gz"]
