"""A misbehaving agent for the host's tests: it greets, then does what its argument says.

  silent   never answers a run (a stopped agent, as the host sees it)
  stream   answers a run with output forever and never ends it, ignoring interrupts
  garbage  sends bytes that are not a frame after the greeting
  deep     sends a frame nested 100,000 levels deep
  dup      sends a frame with a duplicate key
  huge     sends a line larger than the frame bound
  badreply answers stats with a reply body the contract does not allow
  linkjunk answers the direct link's request with a notice instead of a reply
"""

from __future__ import annotations

import json
import os
import sys
import time

MODE = sys.argv[1] if len(sys.argv) > 1 else "silent"
HELLO = {"type": "hello", "version": 3, "pid": os.getpid(), "agent_uid": 999,
         "worker_uid": 1000, "python": "3.11", "languages": ["python", "node"],
         "measure": "none"}


def send(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def frame(f: dict) -> None:
    send(json.dumps(f).encode() + b"\n")


BAD = {"garbage": b"this is not json\n",
       "deep": b"[" * 100_000 + b"]" * 100_000 + b"\n",
       "dup": b'{"id":0,"type":"notice","text":"a","text":"b"}\n',
       "huge": b'{"id":0,"type":"notice","text":"' + b"x" * (9 << 20) + b'"}\n'}


def main() -> None:
    for line in sys.stdin.buffer:
        req = json.loads(line)
        if req["type"] == "link" and MODE == "linkjunk":
            frame({"id": 0, "type": "notice", "text": "hi"})
        elif req["type"] == "link":  # as an agent that cannot reach the host's socket
            frame({"id": req["id"], "type": "reply", "status": "error", "code": "unavailable",
                   "message": "no direct link here"})
        elif req["type"] == "hello":
            frame({**HELLO, "id": req["id"]})
            if MODE in BAD:
                send(BAD[MODE])
        elif req["type"] == "stats" and MODE == "badreply":
            frame({"id": req["id"], "type": "reply", "status": "ok", "body": {"evil": 1}})
        elif req["type"] == "run" and MODE == "stream":
            while True:
                frame({"id": req["id"], "type": "stream", "name": "stdout", "text": "tick\n"})
                time.sleep(0.05)


main()
