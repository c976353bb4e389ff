"""A loopback server speaking the OpenAI streaming API, scripted to misbehave on demand."""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    """Serve /v1/chat/completions and /v1/completions on 127.0.0.1; `script` faults consume in order.

    Actions: ok, ok-nousage, json, 429, 500, 401, 401-echo (echoes the Authorization header, as some servers
    do), notjson, stall, drop, malformed, error-event, keepalive (comments only), redirect-302/307 (to
    `redirect_to`), usage-string / usage-negative (bad usage counts).
    """

    def __init__(self, stall_s: float = 2.0, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s  # every answer waits this long first (a model's latency)
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.script: deque[str] = deque()
        self.default = "ok"
        self.requests: list[dict[str, Any]] = []
        self.stall_s = stall_s
        self.redirect_to = "http://127.0.0.1:9/v1/chat/completions"
        self.cached_tokens = 0  # reported as usage.prompt_tokens_details.cached_tokens (at most prompt_tokens)
        self.served: str | None = None  # the response's "model" (a router's pick); else the request's
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with owner.lock:
                    owner.requests.append({"path": self.path, "body": body, "headers": dict(self.headers),
                                           "at": time.monotonic()})
                    action = owner.script.popleft() if owner.script else owner.default
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                try:
                    if owner.delay_s:
                        time.sleep(owner.delay_s)
                    owner.respond(self, action, body)
                finally:
                    with owner.lock:
                        owner.in_flight -= 1

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # many clients at once: don't let the listen backlog add SYN retries
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # the client hanging up on a stalled stream is the point of that test

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def reply_text(body: dict[str, Any]) -> str:
        if "messages" in body:
            source = body["messages"][-1]["content"]
        else:
            source = body.get("prompt", "")
        words = source.split()[: int(body.get("max_tokens", 8))]
        return "Answer: " + " ".join(words)

    def respond(self, h: BaseHTTPRequestHandler, action: str, body: dict[str, Any]) -> None:
        if action.startswith("redirect-"):
            h.send_response(int(action.split("-")[1]))
            h.send_header("Location", self.redirect_to)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if action == "early-1xx":  # an interim 102 before the real answer (allowed by HTTP/1.1)
            text = self.reply_text(body)
            raw = (json.dumps({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]})).encode()
            payload = b"data: " + raw + b"\n\ndata: [DONE]\n\n"
            h.wfile.write(b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                          b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
            h.wfile.flush()
            return
        if action == "trickle-headers":  # the status line, then one header byte every 0.2 s, for ever
            try:
                h.wfile.write(b"HTTP/1.1 200 OK\r\n")
                for _ in range(500):
                    h.wfile.write(b"X")
                    h.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
            return
        if action == "badheader":  # a header line without a colon, echoing the key: urllib3 logs it with a traceback
            raw = (b'data: {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}\n\n'
                   b"data: [DONE]\n\n")
            h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: "
                          + str(len(raw)).encode() + b"\r\nX-Trace ##[error]title=pwned::x; echo "
                          + h.headers.get("Authorization", "").encode() + b"\r\n\r\n" + raw)
            h.wfile.flush()
            h.close_connection = True
            return
        if action == "401-padded":  # the key far into the body, after whitespace: cutting before redacting leaks it
            payload = json.dumps({"error": {"message": "Incorrect API key provided: " + " " * 8180
                                            + h.headers.get("Authorization", "")}}).encode()
            h.send_response(401)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
            return
        if action == "401-forms":  # the key echoed in other forms: base64 from byte offsets 1 and 2, hex, upper
            import base64  # case, reversed, split by a space and by a line break, most of it
            key = h.headers.get("Authorization", "").removeprefix("Bearer ")
            forms = [base64.b64encode(key[1:].encode()).decode(), base64.b64encode(key[2:].encode()).decode(),
                     key.encode().hex(), key.upper(), key[::-1], key[:25] + " " + key[25:], key[:25] + "\n" + key[25:],
                     key[:-3]]
            payload = json.dumps({"error": {"message": "bad key: " + " | ".join(forms)}}).encode()
            h.send_response(401)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
            return
        if action == "401-echo":
            payload = json.dumps({"error": {"message": "Incorrect API key provided: "
                                            + h.headers.get("Authorization", "") + " and " + h.headers.get("X-Api-Key", ""),
                                            "type": "invalid_request_error"}}).encode()
            h.send_response(401)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
            return
        if action in ("429", "500", "401", "429-wait"):
            code = int(action[:3])
            message = {429: "Rate limit reached for requests", 500: "The server had an error",
                       401: "Incorrect API key provided"}[code]
            payload = json.dumps({"error": {"message": message, "type": "error", "code": None}}).encode()
            h.send_response(code)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            if code == 429:
                h.send_header("Retry-After", "0.5" if action == "429-wait" else "0")
            h.end_headers()
            h.wfile.write(payload)
            return
        text = self.reply_text(body)
        pieces = [w + " " for w in text.split()]
        usage: dict[str, Any] = {"prompt_tokens": 11 + len(json.dumps(body.get("messages", body.get("prompt")))) // 10,
                                 "completion_tokens": len(pieces), "total_tokens": 0,
                                 "prompt_tokens_details": {"cached_tokens": 0}}
        usage["prompt_tokens_details"]["cached_tokens"] = min(self.cached_tokens, usage["prompt_tokens"])
        body = {**body, "model": self.served or body.get("model")}
        if action == "usage-string":
            usage["completion_tokens"] = str(usage["completion_tokens"])
        if action == "usage-negative":
            usage["prompt_tokens"] = -50
        if action in ("json", "notjson"):
            payload = (b"<html>502 Bad Gateway</html>" if action == "notjson" else json.dumps({
                "id": "cmpl-1", "object": "chat.completion", "model": body.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(pieces)},
                             "finish_reason": "stop"}], "usage": usage}).encode())
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
            return
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        chat = "messages" in body
        base = {"id": "chatcmpl-1", "object": "chat.completion.chunk" if chat else "text_completion",
                "created": 0, "model": body.get("model")}

        def event(data: str) -> None:
            raw = f"data: {data}\n\n".encode()
            h.wfile.write(f"{len(raw):X}\r\n".encode() + raw + b"\r\n")
            h.wfile.flush()

        def choice(piece: str | None, finish: str | None = None) -> dict[str, Any]:
            if chat:
                delta = {} if piece is None else {"content": piece}
                return {"index": 0, "delta": delta, "finish_reason": finish}
            return {"index": 0, "text": piece or "", "finish_reason": finish}

        if chat:
            event(json.dumps({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                   "finish_reason": None}]}))
        comment = b": keep-alive\n\n"
        h.wfile.write(f"{len(comment):X}\r\n".encode() + comment + b"\r\n")
        if action == "hugeline":  # one endless line without a newline
            try:
                block = b"data: " + b"x" * (1 << 20)
                h.wfile.write(f"{len(block):X}\r\n".encode() + block + b"\r\n")
                for _ in range(50):
                    h.wfile.write(f"{1 << 20:X}\r\n".encode() + b"x" * (1 << 20) + b"\r\n")
                h.wfile.flush()
            except OSError:
                pass
            return
        if action == "keepalive":  # only comments, for ever (until the client hangs up)
            try:
                for _ in range(600):
                    time.sleep(0.05)
                    h.wfile.write(f"{len(comment):X}\r\n".encode() + comment + b"\r\n")
                    h.wfile.flush()
            except OSError:
                pass
            return
        for i, piece in enumerate(pieces):
            if action == "malformed" and i == 1:
                event("{not json")
            if action == "error-event" and i == 1:
                event(json.dumps({"error": {"message": "model overloaded", "type": "server_error"}}))
            if action == "stall" and i == 1:
                time.sleep(self.stall_s)
            if action == "drop" and i == 1:
                h.wfile.write(b"40\r\ndata: {\"partial")
                h.wfile.flush()
                h.connection.shutdown(2)
                return
            event(json.dumps({**base, "choices": [choice(piece)]}))
        event(json.dumps({**base, "choices": [choice(None, "stop")]}))
        if action != "ok-nousage":
            event(json.dumps({**base, "choices": [], "usage": usage}))
        event("[DONE]")
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()
