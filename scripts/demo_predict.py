"""The end of `make demo`: start `sml serve` on 127.0.0.1, send one real prediction, print it, stop.

.venv/bin/python scripts/demo_predict.py [events/predict.json]
"""

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

LISTENING = re.compile(r"listening on (http://\S+)")


def start_api() -> tuple[subprocess.Popen[str], str]:
    sml = Path(sys.executable).with_name("sml")
    server = subprocess.Popen([str(sml), "serve", "--port", "0"], stderr=subprocess.PIPE, text=True)
    assert server.stderr is not None
    for line in server.stderr:
        sys.stderr.write(line)
        if match := LISTENING.search(line):
            return server, match.group(1)
    raise SystemExit(f"sml serve exited with {server.wait()} before it listened")


def post(url: str, body: str) -> dict[str, object]:
    request = urllib.request.Request(url, data=body.encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, object] = json.load(response)
        return answer


def main() -> None:
    event = json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else "events/predict.json").read_text())
    server, url = start_api()
    try:
        answer = post(f"{url}/predict", event["body"])
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"POST {url}/predict {event['body'][:60]}...")
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
