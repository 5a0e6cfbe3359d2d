"""The README's examples run as written. A block preceded by
`<!-- not run by the tests: reason -->` is skipped (several GPUs, several
machines, a TPU, a user's folder of recordings); one preceded by
`<!-- slow in the tests: reason -->` runs where the slow tests run (CI); one
preceded by `<!-- run by tests/FILE.py: reason -->` is run there by the test
that checks its result (`readme_block(FILE)`), and not a second time here;
every other block runs, in its own namespace, in a temporary folder."""

import os

import keras
import pytest

from helpers import BLOCK, README


def blocks():
    found = []
    for match in BLOCK.finditer(README.read_text()):
        kind, runner, why, language, code = match.groups()[1:]
        line = README.read_text()[: match.start()].count("\n") + 1
        skip = why if kind == "not run by the tests" else None
        if runner is not None:
            skip = f"run by {runner}, which checks its result: {why}"
        marks = [pytest.mark.slow] if kind == "slow in the tests" else []
        found.append(pytest.param(language, code, skip, id=f"line{line}", marks=marks))
    return found


def test_readme_has_runnable_examples():
    runnable = [p for p in blocks() if p.values[0] == "python" and p.values[2] is None]
    assert len(runnable) >= 3


def test_a_block_run_by_another_test_is_run_there():
    for match in BLOCK.finditer(README.read_text()):
        runner = match.group(3)
        if runner is not None:
            path = README.parent / runner
            assert path.exists(), runner
            assert f'readme_block("{runner}")' in path.read_text(), runner


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the README examples use the TensorFlow backend (tf.data)")
@pytest.mark.parametrize("language,code,skip", blocks())
def test_readme_example_runs(language, code, skip, tmp_path, monkeypatch):
    if skip is not None:
        assert len(skip.strip()) > 10  # a skipped block says why
        pytest.skip(f"README says: {skip}")
    if language != "python":
        pytest.skip(f"{language} block (commands, not Python)")
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    exec(compile(code, f"README.md:{language}", "exec"), {"__name__": "readme_example"})
