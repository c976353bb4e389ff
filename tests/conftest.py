from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Iterator

import pytest
import requests  # noqa: F401 - keep one copy: pytester in-process runs would re-import it (CookieJar errors)

sys.path.insert(0, str(Path(__file__).parent))
from openai_server import FakeOpenAI  # noqa: E402

DEMO = Path(__file__).parent.parent / "fixtures" / "demo"


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
    return pytester.path
