"""Every domain error is a UserError, so the CLI prints it as one line whatever module raised it."""
from __future__ import annotations

import pytest

from manifests.errors import UserError, first_line, last_line
from tests.helpers import assert_one_line_error


def domain_errors() -> list[type[Exception]]:
    from ensemble.errors import EnsembleError, Interrupted
    from manifests.locks.holder import LaunchLockedError
    from manifests.run_dir import RunDirError
    from workers.checkpoints import CheckpointError
    from workers.datasets.errors import DatasetError
    from workers.quality.imagenet import ImageNetClassifierError

    return [EnsembleError, Interrupted, RunDirError, LaunchLockedError, CheckpointError, DatasetError,
            ImageNetClassifierError]  # fmt: skip


@pytest.mark.parametrize("error", domain_errors(), ids=lambda e: e.__name__)
def test_every_domain_error_derives_from_user_error(error):
    assert issubclass(error, UserError)


@pytest.mark.parametrize("error", domain_errors(), ids=lambda e: e.__name__)
def test_the_cli_prints_any_of_them_as_one_line(error):
    import click
    from click.testing import CliRunner

    from cli import user_errors

    @click.command()
    def raises():
        with user_errors():
            raise error("the problem; what to do")

    result = CliRunner().invoke(raises)
    assert_one_line_error(result, "the problem; what to do")
    assert result.exit_code == (130 if error.__name__ == "Interrupted" else 1)


def test_a_foreign_exception_is_not_hidden():
    import click
    from click.testing import CliRunner

    from cli import user_errors

    @click.command()
    def raises():
        with user_errors():
            raise KeyError("a bug")

    result = CliRunner().invoke(raises)
    assert isinstance(result.exception, KeyError)


@pytest.mark.parametrize("message,first,last", [
    ("", "", ""),
    ("\n\n", "", ""),
    ("one", "one", "one"),
    ("\n  first \nsecond\nlast line\n\n", "first", "last line"),
])  # fmt: skip
def test_first_and_last_line_of_any_message(message, first, last):
    assert first_line(RuntimeError(message)) == first and last_line(RuntimeError(message)) == last
    assert len(first_line(RuntimeError("x" * 500), limit=120)) == 120


def test_an_empty_ray_error_while_attaching_is_one_line_not_an_index_error(monkeypatch):
    """ray.init raising with an empty message once turned into an IndexError traceback."""
    import socket

    import ray

    from ensemble.cluster import connect
    from ensemble.errors import EnsembleError

    def fails(*args, **kwargs):
        raise ConnectionError("")

    with socket.socket() as server:  # something listens, so the reachability check passes
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setattr(ray, "init", fails)
        monkeypatch.setattr(ray, "is_initialized", lambda: False)
        with pytest.raises(EnsembleError, match=r"cannot reach a Ray cluster at 127\.0\.0\.1:\d+ \(ConnectionError\)"):
            connect(f"127.0.0.1:{server.getsockname()[1]}")
