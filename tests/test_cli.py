"""The CLI shell: help, version, info, and the exit-code contract for every kind of error."""
import json

import click
import pytest
from click.testing import CliRunner

import lstmcheck
from lstmcheck import cli as cli_module
from lstmcheck.cli import cli
from lstmcheck.errors import OptionError


def run(*args, **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], **kw)


def one_error_line(result):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lstmcheck: error: ")
    assert "Traceback" not in result.output
    return lines[0]


def test_help_lists_commands_and_examples():
    r = run("--help")
    assert r.exit_code == 0
    assert "Examples:" in r.output and "lstmcheck report" in r.output
    assert "info" in r.output


def test_version():
    r = run("--version")
    assert r.exit_code == 0 and lstmcheck.__version__ in r.output


def test_info_and_json(tmp_path):
    r = run("info", "--json", tmp_path / "env.json")
    assert r.exit_code == 0, r.output
    assert "backends:" in r.output and "GPU:" in r.output
    env = json.loads((tmp_path / "env.json").read_text())
    assert env["lstmcheck"] == lstmcheck.__version__ and "numpy" in env["backends"]
    assert env["gpu"]["available"] or env["gpu"]["reason"]
    r = run("info", "--json", "-", "--quiet")
    assert json.loads(r.stdout)["required"]["click"]


def test_usage_errors_are_one_line_exit_2():
    for args in (["bogus"], ["info", "--nope"], ["--nope"]):
        r = run(*args)
        assert r.exit_code == 2
        assert "--help" in one_error_line(r)


@pytest.fixture
def scratch_command():
    """Adds a throwaway command that raises what the test asks for."""
    made = []

    def make(exc, code=None):
        @cli.command("scratch")
        @cli_module.common
        def scratch():
            if exc is not None:
                raise exc
            return code
        made.append(scratch)

    yield make
    cli.commands.pop("scratch", None)


@pytest.mark.parametrize("exc, code, text", [
    (OptionError("unknown cell 'lstn'; choose rnn, lstm or gru."), 2, "unknown cell 'lstn'"),
    (FileNotFoundError(2, "No such file or directory", "w.pt"), 2, "No such file or directory (w.pt)"),
    (click.BadParameter("bad"), 2, "bad"),
    (ZeroDivisionError("oops"), 3, "internal error ZeroDivisionError: oops"),
])
def test_errors_map_to_exit_codes(scratch_command, exc, code, text):
    scratch_command(exc)
    r = run("scratch")
    assert r.exit_code == code
    assert text in one_error_line(r)


def test_debug_shows_traceback(scratch_command):
    scratch_command(OptionError("unknown cell"))
    r = run("scratch", "--debug")
    assert r.exit_code == 2 and "Traceback" in r.stderr
    r = run("--debug", "scratch")
    assert r.exit_code == 2 and "Traceback" in r.stderr


def test_ctrl_c_exits_130(scratch_command):
    scratch_command(KeyboardInterrupt())
    r = run("scratch")
    assert r.exit_code == 130 and "interrupted" in one_error_line(r)


@pytest.mark.parametrize("code", [0, 1])
def test_command_return_value_is_exit_code(scratch_command, code):
    scratch_command(None, code)
    assert run("scratch").exit_code == code


def test_json_file_written_atomically(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    target.write_text('{"old": 1}')

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module.os, "replace", boom)  # interrupted after writing the temp file
    with pytest.raises(KeyboardInterrupt):
        cli_module.emit_json({"new": 1}, str(target))
    assert json.loads(target.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
