"""A live baseline: the base git ref's suite replayed next to the head's, prompt by prompt (ABBA)."""
from __future__ import annotations

import atexit
import io
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from ..config.loader import load_config
from ..config.specs import Config, SuiteSpec
from ..safety.deadlines import budget_now
from ..safety.errors import ConfigError, CostgateError
from ..safety.redact import shorten
from ..store.document import Document, SuiteEntry

_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./@{}~^:+-]{0,199}")


def base_config(config: Config, ref: str) -> Config | None:
    """The base ref's costgate config, read from a `git archive` of that ref (the working tree stays as it is).

    Returns None for the config when the ref has no config at that path (every suite is then new).
    """
    if not _REF.fullmatch(ref):
        raise CostgateError(f"--costgate-against {ref[:60]!r}: not a git ref (a branch, tag or commit such as "
                            "origin/main); it may not start with '-' or hold spaces.")
    folder = config.path.parent
    top = _git(["rev-parse", "--show-toplevel"], folder).decode().strip()
    try:
        commit = _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"], Path(top))
        archive = _git(["archive", "--format=tar", commit.decode().strip()], Path(top))
    except CostgateError as exc:
        raise CostgateError(f"--costgate-against {ref}: git cannot read that ref ({exc}). Fetch it first, e.g. "
                            "actions/checkout with fetch-depth: 0, or git fetch origin main.") from None
    tree = Path(tempfile.mkdtemp(prefix="costgate-base-"))
    atexit.register(shutil.rmtree, tree, True)  # read while suites run; gone when the process ends
    try:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            try:
                tar.extractall(tree, filter=_skip_unsafe)
            except TypeError:  # Python without extraction filters; the archive comes from our own git
                tar.extractall(tree)
    except (tarfile.TarError, OSError) as exc:
        raise CostgateError(f"--costgate-against {ref}: cannot unpack the ref's files ({exc}).") from None
    path = tree / config.path.resolve().relative_to(Path(top).resolve())
    if not path.exists():
        return None
    try:
        return load_config(path)
    except ConfigError as exc:
        raise CostgateError(f"--costgate-against {ref}: the base ref's config is invalid: {exc}") from None


def _skip_unsafe(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's "data" filter, except that a member it refuses (an absolute symlink elsewhere in the
    repository, say) is left out rather than failing the whole base tree."""
    try:
        return tarfile.data_filter(member, dest)
    except tarfile.FilterError:
        return None


def _git(args: list[str], cwd: Path) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise CostgateError(f"git {' '.join(args)} failed: {exc}") from None
    if done.returncode != 0:
        raise CostgateError(shorten(done.stderr.decode(errors="replace"), 300) or f"git {args[0]} failed")
    return done.stdout


def run_pair(config: Config, spec: SuiteSpec, base: Config, base_spec: SuiteSpec,
             deadline: float | None, ref: str) -> tuple[SuiteEntry, SuiteEntry]:
    """Replay the base ref's suite and the head's side by side, prompt by prompt; returns (base, judged head)."""
    from ..replay.backends import create_backend
    from ..replay.measure import replay, replay_interleaved
    from ..store.stamp import environment
    from .suite import make_entry, prepare, rejudge, suite_deadline

    head_prep, base_prep = prepare(spec), prepare(base_spec)
    base_requests = {req.id: (req, n) for req, n, _ in base_prep.requests(base_spec)}
    started = time.perf_counter()
    head_backend = create_backend(spec.model)
    try:
        base_backend = create_backend(base_spec.model)
    except BaseException:
        head_backend.close()
        raise
    load_s = time.perf_counter() - started
    try:
        pairs, only_head = [], []
        for req, n, weight in head_prep.requests(spec):
            if req.id in base_requests:
                base_req, base_n = base_requests[req.id]
                pairs.append((base_req, req, base_n, n, weight))
            else:
                only_head.append((req, n, weight))
        until = suite_deadline(spec, budget_now() - (time.perf_counter() - started), deadline)
        base_results, head_results = replay_interleaved(
            base_backend, head_backend, pairs, (base_prep.counter, head_prep.counter),
            (base_spec.model.pricing, spec.model.pricing), spec.warmup, until)
        if only_head:  # new prompts: measured for the head, listed as not compared
            head_results += replay(head_backend, only_head, head_prep.counter, spec.model.pricing, 0, 1, until)[0]
        wall_s = time.perf_counter() - started - load_s
        fingerprints = ({**environment(), **base_backend.fingerprint(), "mode": "replay"},
                        {**environment(), **head_backend.fingerprint(), "mode": "replay"})
    finally:
        head_backend.close()
        base_backend.close()
    # One machine, one job: comparable by construction, even where the two sides' backends differ.
    fingerprint = MappingProxyType({**fingerprints[1], "live": ref})
    base_entry = replace(make_entry(base_spec, base_prep.meta(), base_results, "replay", fingerprints[0], load_s, wall_s),
                         unmeasured=(), fingerprint=fingerprint, repeats=1)  # prompts only the base has: "gone"
    # each side ran every prompt twice, interleaved with the other's: a pair of runs, not rounds (repeats=1 keeps
    # the stored-baseline allowance for run-to-run spread, compare.runner_noise, out of live mode)
    head_entry = replace(make_entry(spec, head_prep.meta(), head_results, "replay", fingerprints[1], load_s, wall_s),
                         fingerprint=fingerprint, repeats=1)
    return base_entry, rejudge(config, spec, head_entry, base_entry, f"live replay of {ref}", head_prep.references())


def run_against(config: Config, spec: SuiteSpec, base: Config | None, ref: str, tokens_only: bool,
                deadline: float | None) -> tuple[SuiteEntry, SuiteEntry | None]:
    """One suite judged against the base ref: (head entry, base entry or None when the base lacks the suite)."""
    from .suite import run_suite

    base_spec = None if base is None else next((s for s in base.suites if s.name == spec.name), None)
    if base is None or base_spec is None:
        return run_suite(config, spec, Document(suites=MappingProxyType({})), tokens_only, deadline), None
    if tokens_only or spec.tokens_only:  # nothing noisy to interleave: measure base, then judge head on it
        base_entry = run_suite(base, base_spec, None, True, deadline).stored()
        live = Document(suites=MappingProxyType({spec.name: base_entry}))
        return run_suite(config, spec, live, True, deadline), base_entry
    base_entry, head_entry = run_pair(config, spec, base, base_spec, deadline, ref)
    return head_entry, base_entry
