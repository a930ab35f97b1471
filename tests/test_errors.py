"""run_main: exit statuses and one-line error reports."""
import pytest

from src.errors import CheckpointError, ConfigError, ImageError, IPTError, run_main


def _raiser(exc):
    def main(argv):
        raise exc
    return main


def test_error_hierarchy():
    for cls in (ConfigError, CheckpointError, ImageError):
        assert issubclass(cls, IPTError)


def test_returns_main_status_and_passes_argv():
    seen = []
    assert run_main(lambda argv: seen.append(argv) or 3, ["--x", "1"]) == 3
    assert seen == [["--x", "1"]]
    assert run_main(lambda argv: None) == 0


@pytest.mark.parametrize("cls", [IPTError, ConfigError, CheckpointError, ImageError])
def test_ipt_error_is_one_line_status_2(cls, capsys, monkeypatch):
    monkeypatch.delenv("IPT_DEBUG", raising=False)
    assert run_main(_raiser(cls("bad thing\nsecond line"))) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "error: bad thing; second line\n"


def test_other_error_is_one_line_status_1(capsys, monkeypatch):
    monkeypatch.delenv("IPT_DEBUG", raising=False)
    assert run_main(_raiser(ValueError("oops"))) == 1
    err = capsys.readouterr().err
    assert err == "error: ValueError: oops (set IPT_DEBUG=1 for the traceback)\n"


def test_keyboard_interrupt_status_130(capsys):
    assert run_main(_raiser(KeyboardInterrupt())) == 130
    assert capsys.readouterr().err.count("\n") == 1


def test_system_exit_passes_through():
    with pytest.raises(SystemExit):
        run_main(_raiser(SystemExit(0)))


@pytest.mark.parametrize("exc, status", [(ValueError("oops"), 1), (ConfigError("bad key"), 2)])
def test_debug_prints_traceback(exc, status, capsys, monkeypatch):
    monkeypatch.setenv("IPT_DEBUG", "1")
    assert run_main(_raiser(exc)) == status
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "in main" in err and str(exc) in err
