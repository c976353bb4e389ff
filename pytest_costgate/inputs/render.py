"""Jinja2 prompt templates: sandboxed, StrictUndefined, errors with template line and prompt id."""
from __future__ import annotations

import hashlib
import json
import operator
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
import jinja2.meta
from jinja2.sandbox import SandboxedEnvironment

from ..config.specs import TemplateSpec
from ..safety.errors import TemplateError
from ..safety.sandbox import MAX_OUTPUT, WATCHDOG, RenderTimeout, bounded_render, limited_environment, render_timeout
from .prompts import PromptRecord

Messages = tuple[dict[str, str], ...]
Rendered = str | Messages


@dataclass(frozen=True)
class _Hole:
    """`{{ name }}` in a plain template: the variable and its line."""

    name: str
    line: int


@dataclass(frozen=True)
class _Part:
    role: str | None
    template: jinja2.Template
    origin: str
    plain: tuple[str | _Hole, ...] | None = None  # text and {{ name }} holes only: rendered without Jinja's runtime

    @property
    def format(self) -> tuple[str, tuple[str, ...]] | None:
        """The plain template as a str.format pattern and the hole names in order ({{ x }} is format(x, ''),
        which is str(x) for the JSON values records hold)."""
        if self.plain is None:
            return None
        pattern = "".join(p.replace("{", "{{").replace("}", "}}") if isinstance(p, str) else "{}" for p in self.plain)
        return pattern, tuple(p.name for p in self.plain if not isinstance(p, str))


def plain_parts(env: SandboxedEnvironment, source: str) -> tuple[str | _Hole, ...] | None:
    """The template as text and `{{ name }}` holes, when that is all it is (per Jinja's own parse); else None.

    Most prompt templates are exactly that, and joining strings is ~10x cheaper per prompt than a Jinja
    render call, which matters at a million prompts. Output is the same: `{{ x }}` is `str(x)` with
    autoescape off, and the text between holes is what Jinja's lexer kept.
    """
    try:
        tree = env.parse(source)
    except jinja2.TemplateError:
        return None
    parts: list[str | _Hole] = []
    for node in tree.body:
        if not isinstance(node, jinja2.nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, jinja2.nodes.TemplateData):
                parts.append(child.data)
            elif isinstance(child, jinja2.nodes.Name) and child.ctx == "load" and child.name not in env.globals:
                parts.append(_Hole(child.name, child.lineno))
            else:
                return None
    return tuple(parts)


class PromptRenderer:
    """Turns prompt records into prompt text or chat messages."""

    def __init__(self, spec: TemplateSpec | None) -> None:
        self.parts: list[_Part] = []
        self.hash: str | None = None
        self._formats: list[tuple[str, tuple[str, ...]]] | None = None
        self._loader: _RecordingLoader | None = None
        self._chat_loader: _RecordingLoader | None = None
        self._sources: dict[str, str] = {}  # origin -> source, for a chat template's parts
        if spec is None:
            return
        if spec.text is not None:
            self._loader = _RecordingLoader(str(spec.text.parent))
            env = _environment(self._loader)
            source = _read(spec.text)
            self.parts.append(_Part(None, _compile(env, source, str(spec.text), spec.text.name), str(spec.text),
                                    plain_parts(env, source)))
            self._loader.follow(env, spec.text.name)
            # The hash covers the files named literally (include/import/extends), so it is the same whichever
            # prompts render; a name computed at render time shows in files() once loaded.
            # Keyed by path relative to the template's folder: the same files give the same hash in any checkout.
            loaded = {_relative(name, spec.text.parent): digest for name, digest in self._loader.loaded.items()}
            self.hash = _digest(source) if len(loaded) < 2 else _digest(json.dumps(sorted(loaded.items())))
        else:
            # a role's template file may include others, found beside it (an inline part has no folder)
            folders = list(dict.fromkeys(str(Path(origin).parent) for _, _, origin in spec.chat
                                         if " (" not in origin and Path(origin).is_file()))
            self._chat_loader = _RecordingLoader(folders) if folders else None
            env = _environment(self._chat_loader)
            for role, source, origin in spec.chat:
                self.parts.append(_Part(role, _compile(env, source, origin, None), origin, plain_parts(env, source)))
                self._sources[origin] = source
                if self._chat_loader is not None:
                    self._chat_loader.follow_source(env, source)
            included = sorted((_relative(n, Path(folders[0])), d) for n, d in self._chat_loader.loaded.items()) \
                if self._chat_loader is not None else []
            self.hash = _digest(json.dumps([[r, s] for r, s, _ in spec.chat] + ([included] if included else [])))
        formats = [part.format for part in self.parts]
        self._formats = [f for f in formats if f is not None] if all(f is not None for f in formats) else None

    def files(self, base: Path) -> dict[str, str]:
        """Each template file (or inline chat part) this suite used, by path relative to `base`, with a content
        hash, so a diff can name the file that changed."""
        if self._loader is not None:
            return {_relative(name, base): digest for name, digest in sorted(self._loader.loaded.items())}
        files = {_relative(origin, base): _digest(source) for origin, source in self._sources.items()}
        if self._chat_loader is not None:
            files.update({_relative(name, base): digest for name, digest in sorted(self._chat_loader.loaded.items())})
        return files

    def render_all(self, records: Sequence[PromptRecord]) -> list[Rendered]:
        """Every record rendered, in order, each within the time and size limits."""
        if not self.parts:
            return [self.render(record) for record in records]
        if self._formats is not None and self.parts[0].role is None:  # no template code runs: nothing can hang
            return self._fill_all(records)
        out: list[Rendered] = []
        record = None
        limit = render_timeout()
        try:
            with WATCHDOG.watch() as job:
                for record in records:
                    job.deadline = time.monotonic() + limit
                    out.append(self.render(record))
                job.deadline = float("inf")
        except RenderTimeout:
            origin = self.parts[0].origin if len(self.parts) == 1 else "the chat template"
            raise TemplateError(f"{origin}: rendering prompt '{getattr(record, 'id', '?')}' took over {limit:g}s; "
                                "a template must render in a moment (look for nested loops).") from None
        return out

    def render(self, record: PromptRecord) -> Rendered:
        """Render one record (its own messages/prompt when the suite has no template)."""
        if not self.parts:
            if record.messages is not None:
                return tuple(dict(m) for m in record.messages)
            if record.prompt is not None:
                return record.prompt
            raise TemplateError(f"prompt '{record.id}' has only 'vars', but the suite has no template. "
                                "Add 'template:' or 'chat_template:' to the suite, or give the record "
                                "'messages' or 'prompt'.")
        if self._formats is not None and self.parts[0].role is None:
            return self._format(0, record)
        context: dict[str, Any] = dict(record.vars)
        context.setdefault("messages", [dict(m) for m in record.messages or ()])
        context.setdefault("prompt_id", record.id)
        if self.parts[0].role is None:
            return self._render(self.parts[0], context, record)
        return tuple({"role": p.role or "", "content": self._render(p, context, record)} for p in self.parts)

    def _format(self, index: int, record: PromptRecord) -> str:
        """A plain text template filled without building a context: ~1 microsecond a prompt."""
        pattern, names = self._pattern(index)
        variables = record.vars
        try:
            text = pattern.format(*[variables[name] for name in names])
        except KeyError:  # prompt_id, messages, or a variable the record lacks
            text = pattern.format(*self._values(index, record))
        if len(text) > MAX_OUTPUT:
            raise TemplateError(f"{self.parts[index].origin}: prompt '{record.id}' renders to {len(text):,} "
                                f"characters, over the {MAX_OUTPUT:,} a prompt may have.")
        return text

    def _pattern(self, index: int) -> tuple[str, tuple[str, ...]]:
        formats = self._formats
        assert formats is not None  # asked for only when every part is text and {{ name }} holes
        return formats[index]

    def _fill_all(self, records: Sequence[PromptRecord]) -> list[Rendered]:
        """A plain text template filled for many records at once (~0.5 microsecond a prompt); any record that
        lacks a variable (or uses prompt_id or messages) sends the whole batch through _format, which says why."""
        pattern, names = self._pattern(0)
        fill, get = pattern.format, operator.itemgetter(*names) if names else None
        try:
            if len(names) > 1:
                texts = [fill(*get(record.vars)) for record in records]  # type: ignore[misc]  # get: names > 1
            else:
                texts = [fill(get(record.vars)) if get else fill() for record in records]
        except KeyError:
            return [self._format(0, record) for record in records]
        if texts and max(map(len, texts)) > MAX_OUTPUT:
            return [self._format(0, record) for record in records]  # the one over the limit raises
        return list(texts)

    def _values(self, index: int, record: PromptRecord) -> list[Any]:
        _, names = self._pattern(index)
        variables = record.vars
        values = []
        for name in names:
            if name in variables:
                values.append(variables[name])
            elif name == "prompt_id":
                values.append(record.id)
            elif name == "messages":
                values.append([dict(m) for m in record.messages or ()])
            else:
                hole = next(p for p in self.parts[index].plain or () if not isinstance(p, str) and p.name == name)
                raise TemplateError(f"{self.parts[index].origin}:{hole.line}: rendering prompt '{record.id}' failed: "
                                    f"'{name}' is undefined. Add the variable to the record's 'vars' or guard it "
                                    "with '{% if x is defined %}'.")
        return values

    def _render(self, part: _Part, context: dict[str, Any], record: PromptRecord) -> str:
        if part.plain is not None:
            try:
                text = "".join(p if type(p) is str else str(context[p.name]) for p in part.plain)  # type: ignore[union-attr]
            except KeyError:
                hole = next(p for p in part.plain if not isinstance(p, str) and p.name not in context)
                raise TemplateError(f"{part.origin}:{hole.line}: rendering prompt '{record.id}' failed: '{hole.name}' "
                                    "is undefined. Add the variable to the record's 'vars' or guard it with "
                                    "'{% if x is defined %}'.") from None
            if len(text) > MAX_OUTPUT:
                return _checked(text, part, record)
            return text
        try:
            text = bounded_render(part.template, context)
        except RenderTimeout:
            raise
        except jinja2.TemplateError as exc:
            line = _template_line(exc.__traceback__, part.template.filename)
            at = f"{part.origin}:{line}" if line else part.origin
            hint = (" Add the variable to the record's 'vars' or guard it with "
                    "'{% if x is defined %}'." if isinstance(exc, jinja2.UndefinedError) else "")
            raise TemplateError(f"{at}: rendering prompt '{record.id}' failed: {exc}.{hint}") from None
        except Exception as exc:  # noqa: BLE001 - user template code can raise anything (MemoryError included)
            raise TemplateError(f"{part.origin}: rendering prompt '{record.id}' failed: "
                                f"{type(exc).__name__}: {str(exc)[:300]}") from None
        return _checked(text, part, record)


def _checked(text: str, part: _Part, record: PromptRecord) -> str:
    """A rendered prompt within the size limit and encodable (a lone surrogate would break every tokenizer)."""
    if len(text) > MAX_OUTPUT:
        raise TemplateError(f"{part.origin}: prompt '{record.id}' renders to {len(text):,} characters, over the "
                            f"{MAX_OUTPUT:,} a prompt may have.")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise TemplateError(f"{part.origin}: prompt '{record.id}' renders text that is not valid Unicode (a lone "
                                "surrogate such as \\ud800); fix the template or the record.") from None
    return text


class _RecordingLoader(jinja2.FileSystemLoader):
    """A file loader that remembers each template file it loaded (path -> content hash)."""

    def __init__(self, folder: str | list[str]) -> None:
        super().__init__(folder)
        self.loaded: dict[str, str] = {}

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Any]:
        source, filename, uptodate = super().get_source(environment, template)
        if filename is not None:
            self.loaded[filename] = _digest(source)
        return source, filename, uptodate

    def follow_source(self, env: jinja2.Environment, source: str) -> None:
        """Load what a template given as source text names literally (a chat part's file)."""
        try:
            names = jinja2.meta.find_referenced_templates(env.parse(source))
        except jinja2.TemplateError:
            return  # rendering reports it, with the prompt and line
        for other in names:
            if other is not None:
                self.follow(env, other)

    def follow(self, env: jinja2.Environment, name: str, depth: int = 0) -> None:
        """Load what a template names literally in include/import/extends, recursively, so the files are
        known before any prompt renders (names computed at render time are recorded when loaded)."""
        if depth > 20:
            return
        try:
            source = self.get_source(env, name)[0]
            names = jinja2.meta.find_referenced_templates(env.parse(source))
        except (jinja2.TemplateError, OSError, UnicodeDecodeError):
            return  # rendering reports it, with the prompt and line
        for other in names:
            if other is not None and other != name:
                self.follow(env, other, depth + 1)


def _relative(origin: str, base: Path) -> str:
    """A path as the repository shows it: relative to `base` (the config's folder), with / separators; an
    inline chat part keeps its place in the config ('costgate.yaml (suites.x.chat_template[1])')."""
    path, sep, where = origin.partition(" (")
    try:
        shown = Path(os.path.relpath(path, base)).as_posix()
    except ValueError:  # another drive on Windows
        shown = Path(path).as_posix()
    if not sep:
        return shown
    place = re.fullmatch(r".*:\d+: (.*)\)", where)  # "/abs/costgate.yaml:46: suites.x.chat_template[1])"
    return f"{shown} ({place.group(1) if place else where.rstrip(')')})"


def _environment(loader: jinja2.BaseLoader | None) -> SandboxedEnvironment:
    return limited_environment(loader)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{path}: cannot read template: {exc}") from exc


def _compile(env: SandboxedEnvironment, source: str, origin: str, name: str | None) -> jinja2.Template:
    try:
        if name is not None:
            return env.get_template(name)
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{origin}:{exc.lineno}: template syntax error: {exc.message}. "
                            "Fix the Jinja2 syntax on that line.") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"{origin}: cannot load template: {exc}") from None


def _template_line(tb: TracebackType | None, filename: str | None) -> int | None:
    """The template line an error came from: Jinja2 rewrites tracebacks to point into templates."""
    line = None
    while tb is not None:
        code = tb.tb_frame.f_code.co_filename
        if code == filename or (filename is None and code == "<template>"):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
