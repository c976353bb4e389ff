"""A model's own chat template, applied the way transformers' `apply_chat_template(messages,
add_generation_prompt=True)` does, so chat prompts replay on local models and are counted as a server
that applies the template (e.g. `transformers serve`, vLLM) bills them.

transformers renders with an ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
extensions=[loopcontrols]), the globals `raise_exception` and `strftime_now`, a `tojson` filter that
keeps non-ASCII, and the variables `messages`, `add_generation_prompt` and the tokenizer's special
tokens (`bos_token`, `eos_token`, ...); the text is then tokenized with add_special_tokens=False (the
template writes the BOS itself). Here the same, in costgate's limited sandbox under the render watchdog:
the template comes from a model folder a pull request can change.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..safety.errors import TemplateError
from ..safety.sandbox import MAX_OUTPUT, WATCHDOG, LimitedSandbox, RenderTimeout, bounded_render, harden, render_timeout

SPECIAL = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")


class _ChatSandbox(LimitedSandbox, ImmutableSandboxedEnvironment):
    """costgate's limits (no huge values in one step) and transformers' immutability (no list.append)."""


class ChatTemplateError(TemplateError):
    """The template refused the conversation (raise_exception), or could not render it."""


def _raise(message: object) -> None:
    raise ChatTemplateError(str(message)[:500])


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None,
            sort_keys: bool = False) -> str:
    if isinstance(indent, int) and indent > 100 or isinstance(indent, str) and len(indent) > 100:
        raise SecurityError(f"tojson indent {str(indent)[:20]!r} is over 100")
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(format: str) -> str:  # noqa: A002 - transformers' name
    return datetime.datetime.now().strftime(str(format)[:100])


class ChatFormat:
    """One chat template with the special tokens it may use."""

    def __init__(self, source: str, specials: Mapping[str, str], origin: str) -> None:
        self.origin = origin
        self.source = source
        self.specials = dict(specials)
        self.hash = hashlib.sha256(json.dumps([source, sorted(self.specials.items())]).encode("utf-8")).hexdigest()[:16]
        env = _ChatSandbox(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols],
                           keep_trailing_newline=False, autoescape=False)
        harden(env)
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = _strftime_now
        try:
            self.template = env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{origin}: the chat template has a syntax error on its line {exc.lineno}: "
                                f"{exc.message}.") from None

    def render(self, messages: Sequence[Mapping[str, Any]], prompt_id: str = "?",
               tools: Sequence[Any] | None = None) -> str:
        """The conversation as the model reads it, ending with the assistant's turn opened (and the tool
        definitions where the template writes them, as transformers passes `tools`)."""
        chat = [{k: v for k, v in m.items() if v is not None} for m in messages]  # as transformers: None keys dropped
        try:
            with WATCHDOG.watch() as job:
                job.deadline = time.monotonic() + render_timeout()
                text = bounded_render(self.template, dict(messages=chat, add_generation_prompt=True,
                                                          tools=tools or None, documents=None, **self.specials))
        except RenderTimeout:
            raise TemplateError(f"{self.origin}: rendering prompt '{prompt_id}' with the chat template took over "
                                f"{render_timeout():g}s.") from None
        except ChatTemplateError as exc:
            raise ChatTemplateError(f"{self.origin}: the chat template refused prompt '{prompt_id}': {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a template from a model folder can raise anything
            raise TemplateError(f"{self.origin}: the chat template failed on prompt '{prompt_id}': "
                                f"{type(exc).__name__}: {str(exc)[:300]}") from None
        if len(text) > MAX_OUTPUT:
            raise TemplateError(f"{self.origin}: the chat template renders {len(text):,} characters for prompt "
                                f"'{prompt_id}'; the limit is {MAX_OUTPUT:,}.")
        return text


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def load_chat_format(folder: Path, explicit: Path | None = None, where: str = "") -> ChatFormat | None:
    """The chat template for a model folder: `explicit` (a Jinja file) when given, else `chat_template` in the
    folder's tokenizer_config.json (a string, or named templates: 'default'); None when there is none."""
    config_file = folder / "tokenizer_config.json"
    config: dict[str, Any] = {}
    if config_file.is_file():
        try:
            loaded = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TemplateError(f"{where}: {config_file} is not valid JSON ({exc}).") from None
        config = loaded if isinstance(loaded, dict) else {}
    specials = {name: text for name in SPECIAL if (text := _token_text(config.get(name))) is not None}
    if explicit is not None:
        try:
            return ChatFormat(explicit.read_text(encoding="utf-8"), specials, str(explicit))
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(f"{where}: cannot read chat template {explicit}: {exc}") from None
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates, as tokenizer_config.json may hold them
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    jinja_file = folder / "chat_template.jinja"  # where recent transformers versions save it
    if not isinstance(template, str) and jinja_file.is_file():
        template = jinja_file.read_text(encoding="utf-8")
        config_file = jinja_file
    if not isinstance(template, str) or not template.strip():
        return None
    return ChatFormat(template, specials, f"{config_file} (chat_template)")


def batch_texts(chat: ChatFormat | None, requests: Sequence[Any]) -> tuple[list[str], str | None]:
    """The text each request sends to a local model: a text prompt as it is, a chat rendered with the model's
    chat template. Else (a chat with no template, a template that fails) the error that fails the batch."""
    texts: list[str] = []
    for request in requests:
        if isinstance(request.prompt, str):
            texts.append(request.prompt)
        elif chat is None:
            return [], (f"prompt '{request.id}' is a chat, but the model has no chat template: add 'chat_template' "
                        "to its tokenizer_config.json, set chat_template: FILE on the model, or render its chat "
                        "format in a text template ('template:').")
        else:
            try:
                texts.append(chat.render(request.prompt, request.id))
            except Exception as exc:  # noqa: BLE001 - TemplateError: this batch fails, with the reason
                return [], str(exc)
    return texts, None

