"""Running the command line in the test process: ``run_cli`` (exit code, stdout, stderr) and
``assert_clean_failure`` (one line, exit 2, the file named, nothing left at the output).

Import from tests with ``from cli_fixtures import run_cli`` (the tests folder is on the path).
"""

from __future__ import annotations

from pathlib import Path

from geo_med_sr.cli.main import main


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_clean_failure(code: int, err: str, path_named: Path, output: Path, problem: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("geo-med-sr: error: ")
    assert str(path_named) in lines[0], lines[0]
    assert problem in lines[0], lines[0]
    assert not output.exists()
    assert not [p for p in output.parent.iterdir() if ".partial-" in p.name]
