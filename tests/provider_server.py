"""A loopback server speaking Anthropic's Messages API, Gemini's generateContent and OpenAI's Responses API, in
the shapes their SDKs' type definitions give (streamed and not), with their free token-counting calls.

The answer echoes the last user message's first words; `usage` sets what is reported (the provider's own field
names), `stream` whether answers stream, `tool` a tool call added to each answer."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeProviders:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.usage: dict[str, dict[str, Any]] = {
            "anthropic": {"input_tokens": 12, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 400,
                          "cache_creation": {"ephemeral_5m_input_tokens": 60, "ephemeral_1h_input_tokens": 40},
                          "output_tokens": 9, "output_tokens_details": {"thinking_tokens": 4}},
            "gemini": {"promptTokenCount": 30, "cachedContentTokenCount": 10, "candidatesTokenCount": 5,
                       "thoughtsTokenCount": 7, "toolUsePromptTokenCount": 3, "totalTokenCount": 45},
            "responses": {"input_tokens": 21, "input_tokens_details": {"cached_tokens": 8}, "output_tokens": 11,
                          "output_tokens_details": {"reasoning_tokens": 6}, "total_tokens": 32},
        }
        self.stream = True
        self.tool = False
        self.counts = {"anthropic": 123, "gemini": 77, "responses": 55}  # what the counting calls answer
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with threading.Lock():
                    owner.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                owner.answer(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def _text(body: dict[str, Any]) -> str:
        messages = body.get("messages") or body.get("contents") or body.get("input")
        if isinstance(messages, str):
            return "Answer: " + " ".join(messages.split()[:3])
        last = messages[-1]
        text = last.get("content") if "content" in last else last["parts"][0]["text"]
        return "Answer: " + " ".join(str(text).split()[:3])

    def answer(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        path = h.path
        if path.endswith("/messages/count_tokens"):
            return self._json(h, {"input_tokens": self.counts["anthropic"]})
        if path.endswith(":countTokens"):
            return self._json(h, {"totalTokens": self.counts["gemini"]})
        if path.endswith("/responses/input_tokens"):
            return self._json(h, {"object": "response.input_tokens", "input_tokens": self.counts["responses"]})
        text = self._text(body)
        if path.endswith("/v1/messages"):
            return self._anthropic(h, body, text)
        if ":streamGenerateContent" in path or ":generateContent" in path:
            return self._gemini(h, text)
        if path.endswith("/responses"):
            return self._responses(h, body, text)
        h.send_response(404)
        h.send_header("Content-Length", "0")
        h.end_headers()

    # Anthropic Messages ----------------------------------------------------------------------------------------
    def _anthropic(self, h: BaseHTTPRequestHandler, body: dict[str, Any], text: str) -> None:
        usage = self.usage["anthropic"]
        content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        if self.tool:
            content.append({"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}})
        message = {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
                   "content": content, "stop_reason": "end_turn", "usage": usage}
        if not self.stream:
            return self._json(h, message)
        start_usage = {k: v for k, v in usage.items() if k != "output_tokens_details"} | {"output_tokens": 1}
        events = [("message_start", {"type": "message_start", "message": {**message, "content": [],
                                                                              "usage": start_usage}}),
                  ("content_block_start", {"type": "content_block_start", "index": 0,
                                           "content_block": {"type": "text", "text": ""}}),
                  ("ping", {"type": "ping"})]
        for word in text.split(" "):
            events.append(("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                   "delta": {"type": "text_delta", "text": word + " "}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
        if self.tool:
            events += [("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
                "type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
                ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                         "delta": {"type": "input_json_delta", "partial_json": '{"city": '}}),
                ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                         "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'}}),
                ("content_block_stop", {"type": "content_block_stop", "index": 1})]
        delta_usage = {"output_tokens": usage.get("output_tokens")}
        if "output_tokens_details" in usage:
            delta_usage["output_tokens_details"] = usage["output_tokens_details"]
        events += [("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                      "usage": delta_usage}),
                   ("message_stop", {"type": "message_stop"})]
        self._sse(h, events)

    # Gemini -----------------------------------------------------------------------------------------------------
    def _gemini(self, h: BaseHTTPRequestHandler, text: str) -> None:
        parts: list[dict[str, Any]] = [{"text": "thinking...", "thought": True}, {"text": text}]
        if self.tool:
            parts.append({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}})
        whole = {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
                 "usageMetadata": self.usage["gemini"], "modelVersion": "gemini-2.5-flash"}
        if not self.stream:
            return self._json(h, whole)
        first = {"candidates": [{"content": {"role": "model", "parts": parts[:2]}, "index": 0}],
                 "usageMetadata": {"promptTokenCount": self.usage["gemini"].get("promptTokenCount")},
                 "modelVersion": "gemini-2.5-flash"}
        last = {"candidates": [{"content": {"role": "model", "parts": parts[2:] or [{"text": ""}]},
                                "finishReason": "STOP", "index": 0}],
                "usageMetadata": self.usage["gemini"], "modelVersion": "gemini-2.5-flash"}
        self._sse(h, [(None, first), (None, last)])

    # OpenAI Responses -----------------------------------------------------------------------------------------
    def _responses(self, h: BaseHTTPRequestHandler, body: dict[str, Any], text: str) -> None:
        output: list[dict[str, Any]] = [
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": text, "annotations": []}]}]
        if self.tool:
            output.append({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
                           "arguments": '{"city": "Paris"}', "status": "completed"})
        response = {"id": "resp_1", "object": "response", "status": "completed", "model": body["model"],
                    "output": output, "usage": self.usage["responses"]}
        if not self.stream:
            return self._json(h, response)
        events: list[tuple[str | None, dict[str, Any]]] = [
            ("response.created", {"type": "response.created", "response": {**response, "status": "in_progress",
                                                                           "output": [], "usage": None}})]
        for word in text.split(" "):
            events.append(("response.output_text.delta", {"type": "response.output_text.delta", "item_id": "msg_1",
                                                          "output_index": 1, "content_index": 0,
                                                          "delta": word + " "}))
        if self.tool:
            events.append(("response.output_item.done", {"type": "response.output_item.done", "output_index": 2,
                                                         "item": output[2]}))
        events.append(("response.completed", {"type": "response.completed", "response": response}))
        self._sse(h, events)

    # wire -------------------------------------------------------------------------------------------------------
    @staticmethod
    def _json(h: BaseHTTPRequestHandler, payload: Any) -> None:
        raw = json.dumps(payload).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(raw)))
        h.end_headers()
        h.wfile.write(raw)

    @staticmethod
    def _sse(h: BaseHTTPRequestHandler, events: list[tuple[str | None, dict[str, Any]]]) -> None:
        raw = b"".join((f"event: {name}\n" if name else "").encode() + b"data: " + json.dumps(data).encode() + b"\n\n"
                       for name, data in events)
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Content-Length", str(len(raw)))
        h.end_headers()
        h.wfile.write(raw)
