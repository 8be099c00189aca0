"""Shared test helpers: a small Chinese intent dataset and writers for a Rasa project's files, the
component as Rasa's engine hands it over, and the rasa CLI run as a user runs it."""

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Tuple

import numpy as np
import requests
import torch
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bert_intent import BertIntentClassifier, encoding
from bert_intent.model import IntentModel


TRAIN: Dict[str, List[str]] = {
    "greet": [
        "你好", "您好", "嗨", "早上好", "下午好", "晚上好", "你好呀", "哈喽",
        "嗨你好", "您好啊", "早啊", "你好你好", "大家好", "喂你好", "嗨嗨",
    ],
    "weather": [
        "今天天气怎么样", "明天会下雨吗", "北京天气", "上海明天天气如何", "后天气温多少度",
        "今天热不热", "这周天气预报", "外面下雨了吗", "明天要带伞吗", "广州今天多少度",
        "周末天气好吗", "今晚会下雪吗", "天气预报说什么", "杭州天气怎样", "明天刮风吗",
    ],
    "alarm": [
        "设一个早上七点的闹钟", "明天六点叫我起床", "定个闹钟", "帮我设闹钟", "八点提醒我起床",
        "取消明天的闹钟", "闹钟改到七点半", "设置一个十分钟后的闹钟", "每天早上六点闹钟",
        "关掉闹钟", "五点半叫醒我", "定一个下午三点的闹钟", "把闹钟设在九点", "明早叫我", "闹钟响了吗",
    ],
    "music": [
        "放首歌", "播放周杰伦的歌", "来点音乐", "我想听歌", "播放音乐", "放一首轻音乐",
        "换一首歌", "来首周杰伦的晴天", "播放流行歌曲", "听听音乐", "放点摇滚乐",
        "下一首歌", "来一首情歌", "播放邓紫棋的歌", "我要听音乐",
    ],
    "book_ticket": [
        "订一张去上海的机票", "帮我买火车票", "预订明天去北京的高铁票", "买两张电影票",
        "订机票", "我要买票去广州", "帮我订一张车票", "订一张下午的火车票", "买一张飞深圳的机票",
        "订两张今晚的电影票", "我想订票", "预订后天的机票", "买去杭州的高铁票", "订一张票", "帮我订火车票",
    ],
}

HELD_OUT: Dict[str, List[str]] = {
    "greet": ["你好啊", "早上好呀", "嗨大家好", "晚上好啊"],
    "weather": ["今天会下雨吗", "深圳天气怎么样", "明天天气预报", "后天热不热"],
    "alarm": ["明天七点叫我起床", "帮我定个六点的闹钟", "取消闹钟", "设个闹钟"],
    "music": ["播放一首歌", "我想听周杰伦", "来点轻音乐", "放首情歌"],
    "book_ticket": ["订一张去北京的机票", "买一张火车票", "帮我订电影票", "预订高铁票"],
}


# Entity annotations in Rasa's markup: cities (with roles in bookings) and alarm times.
_DEPARTURE, _DESTINATION = '{"entity": "city", "role": "departure"}', '{"entity": "city", "role": "destination"}'
ENTITY_TRAIN: Dict[str, List[str]] = {
    "weather": [
        "[北京](city)明天天气怎么样", "[上海](city)会下雨吗", "今天[广州](city)热不热", "帮我查一下[深圳](city)的天气",
        "[杭州](city)后天天气", "明天[成都](city)冷吗", "查查[北京](city)的天气预报", "[上海](city)今天多少度",
        "我想知道[广州](city)明天的天气", "[深圳](city)下雪了吗", "告诉我[杭州](city)天气", "[成都](city)今天有雨吗",
    ],
    "alarm": [
        "设一个[七点](time)的闹钟", "[六点半](time)叫我起床", "明天[八点](time)提醒我", "帮我定[五点](time)的闹钟",
        "闹钟设在[九点](time)", "[七点半](time)叫醒我", "定个[六点](time)的闹钟", "早上[八点半](time)叫我",
        "把闹钟改到[五点半](time)", "[九点](time)提醒我开会",
    ],
    "book_ticket": [
        f"订一张从[北京]{_DEPARTURE}到[上海]{_DESTINATION}的机票", f"从[广州]{_DEPARTURE}去[深圳]{_DESTINATION}的火车票",
        f"买[杭州]{_DEPARTURE}到[成都]{_DESTINATION}的高铁票", f"帮我订[上海]{_DEPARTURE}飞[北京]{_DESTINATION}的机票",
        f"从[深圳]{_DEPARTURE}到[杭州]{_DESTINATION}", f"订[成都]{_DEPARTURE}去[广州]{_DESTINATION}的票",
        f"我要从[北京]{_DEPARTURE}去[深圳]{_DESTINATION}", f"买一张[上海]{_DEPARTURE}到[广州]{_DESTINATION}的车票",
    ],
    "greet": ["你好", "您好", "嗨", "早上好", "你好呀", "哈喽"],
}
ENTITY_HELD_OUT: Dict[str, List[str]] = {
    "weather": ["[成都](city)明天会下雨吗", "[广州](city)天气怎么样", "查一下[北京](city)明天的天气"],
    "alarm": ["帮我设一个[八点](time)的闹钟", "[五点](time)叫我起床"],
    "book_ticket": [f"订从[上海]{_DEPARTURE}到[杭州]{_DESTINATION}的票", f"从[成都]{_DEPARTURE}去[北京]{_DESTINATION}的机票"],
}


def repeated(data: Dict[str, List[str]], times: int) -> Dict[str, List[str]]:
    """`times` numbered variants of every example: enough data for a validation set."""
    return {intent: [f"{text}{number}" for number in range(times) for text in texts] for intent, texts in data.items()}


def pairs(data: Dict[str, List[str]]) -> Tuple[List[str], List[str]]:
    """(texts, intents) in a stable order."""
    texts = [text for examples in data.values() for text in examples]
    intents = [intent for intent, examples in data.items() for _ in examples]
    return texts, intents


_MARKUP = re.compile(r"\]\([^)]*\)|\]\{[^}]*\}|\[")


def head_log_probabilities(model: IntentModel, texts: List[str], head: str = "encoder_log_probs") -> np.ndarray:
    """One intent head's log-probabilities alone (`encoder_log_probs`, what validation loss and label
    smoothing see, or `ngram_log_probs`)."""
    inputs = encoding.tokenize(model.tokenizer, texts, model.settings.max_length, return_tensors="pt", padding=True, offsets=False)
    with torch.no_grad():
        return getattr(model.network(**inputs), head).numpy()


def parsed_by_rasa(data: Dict[str, List[str]]) -> TrainingData:
    """Examples in Rasa's markup (entities, retrieval intents) as Rasa's own reader makes them."""
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

    return RasaYAMLReader().reads(_nlu_yaml(data))


def annotated(data: Dict[str, List[str]]) -> Tuple[List[str], List[str], List[List[Dict[str, object]]]]:
    """(texts, intents, entity annotations) of examples in Rasa's markup, parsed by Rasa itself."""
    examples = parsed_by_rasa(data).intent_examples
    return [m.get("text") for m in examples], [m.get("intent") for m in examples], [m.get("entities") or [] for m in examples]


def characters() -> List[str]:
    """Every character in the datasets, for building a test vocabulary."""
    datasets = (TRAIN, HELD_OUT, ENTITY_TRAIN, ENTITY_HELD_OUT)
    texts = [_MARKUP.sub("", text) for data in datasets for examples in data.values() for text in examples]
    return sorted({char for text in texts for char in text})


def _nlu_yaml(data: Dict[str, List[str]]) -> str:
    lines = ['version: "3.1"', "nlu:"]
    for intent, examples in data.items():
        lines += [f"- intent: {intent}", "  examples: |"] + [f"    - {text}" for text in examples]
    return "\n".join(lines) + "\n"


def write_nlu_yaml(path: Path, data: Dict[str, List[str]]) -> Path:
    """Write `data` (examples may use Rasa's entity markup) as a Rasa 3 NLU training file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_nlu_yaml(data), encoding="utf-8")
    return path


def write_config_yaml(path: Path, pipeline: Iterable[Dict[str, object]]) -> Path:
    """Write a Rasa config with `pipeline` and no policies (NLU-only projects)."""
    import yaml

    config = {"recipe": "default.v1", "language": "zh", "pipeline": list(pipeline), "policies": None}
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def training_data(data: Dict[str, List[str]]) -> TrainingData:
    return TrainingData([Message(data={TEXT: text, INTENT: intent}) for text, intent in zip(*pairs(data))])


def messages(*texts: Any) -> List[Message]:
    return [Message(data={TEXT: text}) for text in texts]


class Project:
    """A model storage, a resource and the component config, as Rasa's engine hands them over."""

    def __init__(self, path: Path, config: Dict[str, Any]) -> None:
        self.storage = LocalModelStorage(path)
        self.resource = Resource("bert_intent")
        self.context = ExecutionContext(GraphSchema({}), node_name="bert_intent")
        self.config = {**BertIntentClassifier.get_default_config(), **config}

    def create(self, **overrides: Any) -> BertIntentClassifier:
        return BertIntentClassifier.create({**self.config, **overrides}, self.storage, self.resource, self.context)

    def load(self) -> BertIntentClassifier:
        return BertIntentClassifier.load(self.config, self.storage, self.resource, self.context)


def rasa_command(*arguments: str) -> List[str]:
    """The `rasa` command of the Python running the tests."""
    return [sys.executable, "-m", "rasa", *arguments]


def rasa_env(project: Path) -> Dict[str, str]:
    """The environment with a training cache that belongs to `project` alone."""
    return {**os.environ, "RASA_CACHE_DIRECTORY": str(project / ".rasa-cache")}


def rasa(project: Path, *arguments: str, expect_success: bool = True) -> str:
    """Run `rasa ARGUMENTS` in `project` and return what it printed (stdout and stderr)."""
    result = subprocess.run(
        rasa_command(*arguments), cwd=project, env=rasa_env(project),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1200,
    )
    succeeded = result.returncode == 0
    assert succeeded == expect_success, f"rasa {' '.join(arguments)} exited {result.returncode}:\n{result.stdout}"
    return result.stdout


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve(model: Path, workdir: Path, start_timeout: float = 180) -> Iterator[Tuple[str, int]]:
    """`rasa run --enable-api` with `model` on a free 127.0.0.1 port; yields (url, pid) once it answers."""
    port = free_port()
    log_path = workdir / "rasa-run.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            rasa_command("run", "--enable-api", "--model", str(model), "-i", "127.0.0.1", "-p", str(port)),
            cwd=workdir, env=rasa_env(workdir), stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while not _answers(url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rasa run did not start:\n{log_path.read_text()}")
            time.sleep(1)
        yield url, server.pid
    finally:
        server.terminate()
        server.wait(timeout=60)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.ConnectionError:
        return False
