"""The suite's own machinery does what conftest.py says: under `make test` (two xdist workers,
--dist loadgroup) every test of a module with a module-scoped fixture runs on one worker, so
the fixture (a trained run, a Serve app, a Ray head) is built once. Nothing else fails when
that breaks, and it was broken twice unseen: xdist read the groups before conftest.py set them,
and pytest 9.2 ignores the node ids xdist writes them into (pyproject.toml holds it back)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # a pytest session of its own, with two worker processes

ROOT = Path(__file__).resolve().parent.parent

SHARED = '''
import pytest

@pytest.fixture(scope="module")
def shared():
    return object()

@pytest.mark.parametrize("i", range(4))
def test_shared(shared, i):
    pass
'''

LOOSE = '''
import pytest

@pytest.mark.parametrize("i", range(4))
def test_loose(i):
    pass
'''


def test_a_module_with_a_module_scoped_fixture_runs_on_one_worker(tmp_path):
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_collection_modifyitems  # noqa: F401\n")
    (tmp_path / "test_shared.py").write_text(SHARED)
    (tmp_path / "test_loose.py").write_text(LOOSE)
    done = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ran = re.findall(r"\[(gw\d)\] \[ *\d+%\] PASSED (\S+)", done.stdout)
    assert len(ran) == 8, done.stdout[-3000:]
    shared = [(worker, test) for worker, test in ran if "test_shared" in test]
    assert all(test.endswith("@test_shared") for _, test in shared), shared  # xdist read the group
    assert len({worker for worker, _ in shared}) == 1, shared
    assert not any("@" in test for _, test in ran if "test_loose" in test)  # the rest go wherever is free
