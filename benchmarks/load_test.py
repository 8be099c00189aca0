"""Concurrent load on `rasa run --enable-api`: latency, errors and memory of POST /model/parse.

    .venv/bin/python benchmarks/load_test.py [--model models/x.tar.gz] [--clients 8] [--requests 2000]

Starts `rasa run --enable-api` on a free loopback port (127.0.0.1 only) with the model, waits until it
answers, sends 50 warm-up requests, reads the server's RSS, then drives POST /model/parse from
--clients threads, --requests in all (each client sends its share, one request at a time, cycling
through short, medium, long and odd messages), and reads the RSS again. Bounded in count and in time
(--time-limit seconds, after which the clients stop). Without --model it trains example_bot's
offline configuration (a small BERT from scratch; about 1.5 minutes) in a temporary copy first.
Prints a markdown table and, with --json, writes the numbers.
Targets: 0 errors, RSS growth < 50 MB, p99 <= 5 x p50.
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import requests

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from tests.helpers import rasa_command, rasa_env, serve  # noqa: E402
MESSAGES = [
    "你好", "帮我订一张明天去上海的机票", "明天北京会不会下雨啊", "设一个明早七点的闹钟", "放一首周杰伦的歌",
    "我下周三要去杭州出差，帮我看看有没有上午九点左右从北京南站出发的高铁，最好是二等座靠窗的位置",
    "", "   ", "😀😀😀", "asdfghjkl", "Book a flight to 上海 tomorrow 9am", "\u200b", "阿巴阿巴" * 200,
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a trained Rasa model archive (default: train example_bot's offline config)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000, help="requests in all")
    parser.add_argument("--time-limit", type=float, default=600, help="seconds before the clients stop")
    parser.add_argument("--json", type=Path, help="also write the results here")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="load-test-") as scratch:
        model = arguments.model.resolve() if arguments.model else train_example_bot(Path(scratch))
        result = run(model, Path(scratch), arguments.clients, arguments.requests, arguments.time_limit)
    print(markdown(result))
    if arguments.json:
        arguments.json.write_text(json.dumps(result, indent=2), encoding="utf-8")


def train_example_bot(scratch: Path) -> Path:
    bot = Path(shutil.copytree(REPOSITORY / "example_bot", scratch / "example_bot",
                               ignore=shutil.ignore_patterns("models", "results", ".rasa")))
    print("training example_bot with config_offline.yml ...", file=sys.stderr)
    subprocess.run(rasa_command("train", "--config", "config_offline.yml", "--out", "models", "--fixed-model-name", "bot"),
                   cwd=bot, env=rasa_env(bot), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return bot / "models" / "bot.tar.gz"


def run(model: Path, workdir: Path, clients: int, total: int, time_limit: float) -> Dict[str, Any]:
    """Serve `model` and `measure` the server."""
    with serve(model, workdir) as (url, pid):
        return measure(url, pid, clients, total, time_limit)


def measure(url: str, pid: int, clients: int, total: int, time_limit: float) -> Dict[str, Any]:
    """Warm up the server at `url` (process `pid`), load it, and return latency, error and memory figures."""
    drive(url, clients=1, total=50, time_limit=60)  # warm-up
    rss_before = rss_mb(pid)
    started = time.monotonic()
    latencies, errors = drive(url, clients, total, time_limit)
    elapsed = time.monotonic() - started
    rss_after = rss_mb(pid)
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    return {
        "clients": clients, "requests_sent": len(latencies) + len(errors), "errors": len(errors),
        "error_examples": errors[:5], "p50_ms": round(p50, 1), "p99_ms": round(p99, 1),
        "p99_over_p50": round(p99 / p50, 2), "requests_per_s": round(len(latencies) / elapsed, 1),
        "rss_before_mb": rss_before, "rss_after_mb": rss_after, "rss_growth_mb": round(rss_after - rss_before, 1),
    }


def drive(url: str, clients: int, total: int, time_limit: float) -> Tuple[List[float], List[str]]:
    """POST /model/parse `total` times from `clients` threads; (latencies in ms, error descriptions)."""
    latencies: List[float] = []
    errors: List[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + time_limit

    def client(index: int) -> None:
        with requests.Session() as session:
            for number in range(index, total, clients):
                if time.monotonic() > deadline:
                    return
                text = MESSAGES[number % len(MESSAGES)]
                began = time.perf_counter()
                try:
                    response = session.post(f"{url}/model/parse", json={"text": text}, timeout=30)
                    problem = None if response.ok and "intent" in response.json() else f"HTTP {response.status_code}: {response.text[:200]}"
                except (requests.RequestException, ValueError) as error:
                    problem = repr(error)
                with lock:
                    if problem:
                        errors.append(problem)
                    else:
                        latencies.append((time.perf_counter() - began) * 1000)

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors


def rss_mb(pid: int) -> float:
    """Resident memory of process `pid` (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for process {pid}")


def markdown(result: Dict[str, Any]) -> str:
    columns = ["clients", "requests_sent", "errors", "p50_ms", "p99_ms", "p99_over_p50", "requests_per_s",
               "rss_before_mb", "rss_after_mb", "rss_growth_mb"]
    return "\n".join([
        "| " + " | ".join(columns) + " |",
        "|---" * len(columns) + "|",
        "| " + " | ".join(str(result[column]) for column in columns) + " |",
    ])


if __name__ == "__main__":
    main()
