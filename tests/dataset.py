"""A small Chinese intent dataset for the tests, and writers for the files a Rasa project needs."""

from pathlib import Path
from typing import Dict, Iterable, List, Tuple

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


def repeated(data: Dict[str, List[str]], times: int) -> Dict[str, List[str]]:
    """`times` numbered variants of every example: enough data for a validation set."""
    return {intent: [f"{text}{number}" for number in range(times) for text in texts] for intent, texts in data.items()}


def pairs(data: Dict[str, List[str]]) -> Tuple[List[str], List[str]]:
    """(texts, intents) in a stable order."""
    texts = [text for examples in data.values() for text in examples]
    intents = [intent for intent, examples in data.items() for _ in examples]
    return texts, intents


def characters() -> List[str]:
    """Every character in the dataset, for building a test vocabulary."""
    return sorted({char for data in (TRAIN, HELD_OUT) for texts in data.values() for text in texts for char in text})


def write_nlu_yaml(path: Path, data: Dict[str, List[str]]) -> Path:
    """Write `data` as a Rasa 3 NLU training file."""
    lines = ['version: "3.1"', "nlu:"]
    for intent, examples in data.items():
        lines += [f"- intent: {intent}", "  examples: |"] + [f"    - {text}" for text in examples]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_config_yaml(path: Path, pipeline: Iterable[Dict[str, object]]) -> Path:
    """Write a Rasa config with `pipeline` and no policies (NLU-only projects)."""
    import yaml

    config = {"recipe": "default.v1", "language": "zh", "pipeline": list(pipeline), "policies": None}
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path
