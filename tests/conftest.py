from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

# pytester's in-process runs restore sys.modules afterwards; modules first imported inside one would be
# imported again by the next, which requests (CookieJar checks) and numpy/onnxruntime refuse.
import numpy  # noqa: F401
import onnx  # noqa: F401
import onnxruntime  # noqa: F401
import pytest
import requests  # noqa: F401
import tokenizers  # noqa: F401

try:
    import onnxruntime_genai  # noqa: F401 - imported once, for the same reason as above
except ImportError:  # the genai tests then fail saying how to install it (README: pip install --no-deps ...)
    pass

# Every costgate module too, for the same reason and one more: a test that patches a module by name
# ("pytest_costgate.replay.progress.CLOCK") would otherwise patch a copy an earlier in-process run left behind
# on its package while the run under test imports a fresh one.
import importlib  # noqa: E402
import pkgutil  # noqa: E402

import pytest_costgate  # noqa: E402

for _module in pkgutil.walk_packages(pytest_costgate.__path__, "pytest_costgate."):
    importlib.import_module(_module.name)

# Test projects name the shared fixtures by absolute path from temporary folders (some of them git repositories of
# their own): the repository boundary is tested on its own, with this unset (test_untrusted_inputs.py)
os.environ["COSTGATE_ALLOW_OUTSIDE_PATHS"] = "1"

sys.path.insert(0, str(Path(__file__).parent))
from openai_server import FakeOpenAI  # noqa: E402

DEMO = Path(__file__).parent.parent / "fixtures" / "demo"


@pytest.fixture(autouse=True)
def _fresh_secrets() -> Iterator[None]:
    """Each test registers its own secrets, so one test's registration can't hide another's leak."""
    from pytest_costgate.safety.redact import forget_all

    forget_all()
    yield
    forget_all()


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(stall_s=1.0)
    yield server
    server.close()


@pytest.fixture
def demo(pytester: pytest.Pytester) -> Path:
    """A copy of the demo gate inside pytester's folder, with its committed baseline."""
    for item in DEMO.iterdir():
        if item.name == "__pycache__":
            continue
        target = pytester.path / item.name
        if item.is_dir():
            shutil.copytree(item, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(item, target)
    config = pytester.path / "costgate.yaml"  # the ONNX model is read in place, not copied
    config.write_text(config.read_text().replace("../onnx/", f"{DEMO.parent / 'onnx'}/"))
    return pytester.path


def records(suite: dict) -> dict:
    """A suite's per-prompt records from a JSON report or baseline, whichever form it uses: {id: {field: value}}."""
    prompts = suite["prompts"]
    if "columns" in prompts and "rows" in prompts:
        columns = prompts["columns"]
        return {row[columns.index("id")]: {c: v for c, v in zip(columns, row) if c != "id" and v is not None}
                for row in prompts["rows"]}
    return prompts


@pytest.fixture
def budget_clock(monkeypatch):
    """A fake clock for time budgets: every look at it is 0.1 s later, however fast or loaded the machine is, so
    a 0.3 s budget always runs out after the same few requests."""
    ticks = iter(range(10**9))
    monkeypatch.setattr("pytest_costgate.safety.deadlines.BUDGET_CLOCK", lambda: next(ticks) / 10)
