"""The backend seam: what costgate needs of a model (the Backend Protocol), what it sends (Request) and what it gets
back (Completion). Built-in backends live beside this file, one per module; a third party registers its class
under the `costgate.backends` entry point group (config/registry.py finds it by name)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ...config.registry import backend_class
from ...pricing.usage import Usage
from ...safety.errors import BackendError

if TYPE_CHECKING:
    from ...config.specs import ModelSpec


Prompt = str | tuple[Mapping[str, str], ...]


@dataclass(frozen=True)
class Request:
    """One replayed prompt: text (completions) or messages (chat), and generation params."""

    id: str
    prompt: Prompt
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    """What a backend measured for one request; `error` set means it failed for good."""

    text: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    token_source: str = "tokenizer"  # usage | engine | tokenizer
    ttft_ms: float | None = None
    e2e_ms: float | None = None
    busy_ms: float | None = None  # device time charged to this request (a batch's wall / its size)
    token_ids: tuple[int, ...] | None = None
    e2e_runs: tuple[float, ...] | None = None  # set by measure when a prompt was replayed several times
    error: str | None = None
    note: str | None = None  # something the user should know about this answer (e.g. server usage ignored)
    served_by: str | None = None  # the model that answered (a router's choice; OpenAI's response 'model')
    outputs: tuple[str, ...] | None = None  # the answer's parts (choices, tool calls), counted apart with no usage
    usage: Usage | None = None  # the billed usage as the server reported it (supersedes the three counts above)
    usage_expected: bool = False  # an API that reports usage: its absence is said, and can fail the request


NO_USAGE = ("the server sent no usage: tokens counted with the tokenizer (reasoning and tool-call tokens, if any, "
            "are not counted)")
# request params whose billed tokens no tokenizer can count offline: with no usage, such a request failed
NEEDS_USAGE = {"reasoning_effort": "reasoning", "reasoning": "reasoning", "thinking": "reasoning",
               "thinkingConfig": "reasoning", "tools": "tool definitions", "functions": "tool definitions"}


def needs_usage(params: Mapping[str, Any]) -> str | None:
    """What a request asks for that only the server's usage can count ('reasoning', 'tool definitions'), or None."""
    found = {why for name, why in NEEDS_USAGE.items() if params.get(name)}
    config = params.get("generationConfig")
    if isinstance(config, dict) and config.get("thinkingConfig"):
        found.add("reasoning")
    return " and ".join(sorted(found)) or None


def max_new_tokens(params: Mapping[str, Any], default: int) -> int:
    """How many tokens a local model may generate for a request: max_new_tokens, else max_tokens, else its default."""
    return int(params.get("max_new_tokens", params.get("max_tokens", default)))


def too_long(request: Request, tokens: int, max_new: int, context: int) -> Completion:
    """The error of a prompt that, with its new tokens, does not fit the model's positions."""
    return Completion(error=f"prompt '{request.id}' has {tokens} tokens + {max_new} new tokens, more than the "
                            f"model's {context} positions; shorten the prompt or max_new_tokens")


def empty_prompt(request: Request) -> Completion:
    """The error of a prompt that renders to no tokens (a local model has nothing to continue from)."""
    return Completion(error=f"prompt '{request.id}' renders to no tokens: a local model can't continue from an empty "
                            "prompt; check the template and the record's vars")


class Backend(Protocol):
    """What costgate needs of a model: replay one request, describe where it ran."""

    OPTIONS: ClassVar[frozenset[str]]

    def complete(self, request: Request) -> Completion: ...

    def fingerprint(self) -> dict[str, str]: ...

    def close(self) -> None: ...


CONCURRENCY_OPTIONS = frozenset({"concurrency", "max_requests_per_s"})


def check_concurrency(options: Mapping[str, Any], fail: Any) -> tuple[int, float | None]:
    """`concurrency` (requests in flight, 1 to 1024) and `max_requests_per_s` (a positive number), checked."""
    import math

    concurrency = options.get("concurrency", 1)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 1024:
        raise fail("concurrency", f"expected a whole number of requests in flight from 1 to 1024, got {concurrency!r}."
                   if not isinstance(concurrency, int) or abs(concurrency) < 10**30 else "expected 1 to 1024.")
    rate = options.get("max_requests_per_s")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or
                             (isinstance(rate, int) and abs(rate) > 10**9) or not math.isfinite(rate) or rate <= 0):
        raise fail("max_requests_per_s", "expected a positive number of requests a second.")
    return concurrency, None if rate is None else float(rate)


def text_as_chat(spec: ModelSpec) -> bool:
    """Whether the model's backend sends a text prompt as the one user message of a chat (OpenAI's chat and
    responses endpoints, Anthropic, Gemini: the server then applies its chat template), so it is counted so."""
    if spec.backend == "openai":
        return spec.options.get("endpoint", "chat") != "completions"
    return spec.backend in ("anthropic", "gemini")


def create_backend(spec: ModelSpec) -> Backend:
    """Instantiate the backend for a model; construction errors become BackendError."""
    cls = backend_class(spec.backend)
    try:
        return cls(spec)
    except BackendError:
        raise
    except Exception as exc:  # noqa: BLE001 - a third-party backend can raise anything
        raise BackendError(f"{spec.where}: backend '{spec.backend}' failed to start: "
                           f"{type(exc).__name__}: {exc}") from exc
