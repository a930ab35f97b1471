"""parse_config / load_yaml / Config on real YAML files."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from src.config import Config, load_yaml, parse_config
from src.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

DEFAULT = """\
lr: 1e-4              # learning rate
epochs: 300
name: ipt             # run name
amp: false
tasks: [sr_x2, derain]
pretrained: null
model:                # network
  num_layers: 12      # transformer layers
  dim: 576
  norm:
    kind: layer
    eps: 0.00001
"""


@pytest.fixture
def default(tmp_path):
    path = tmp_path / "default.yaml"
    path.write_text(DEFAULT)
    return path


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_defaults_and_attribute_access(default):
    cfg = parse_config([], default)
    assert isinstance(cfg, Config) and isinstance(cfg.model, Config)
    assert cfg.lr == 1e-4 and isinstance(cfg.lr, float)
    assert cfg.model.num_layers == 12 and cfg.model.norm.kind == "layer"
    assert cfg.tasks == ["sr_x2", "derain"] and cfg.pretrained is None
    with pytest.raises(AttributeError):
        cfg.missing


def test_nested_overrides_both_syntaxes(default):
    cfg = parse_config(["--model.num_layers", "4", "--model.norm.eps=1e-6", "--epochs=10", "--lr", "2"], default)
    assert cfg.model.num_layers == 4 and cfg.model.dim == 576
    assert cfg.model.norm.eps == 1e-6 and cfg.model.norm.kind == "layer"
    assert cfg.epochs == 10
    assert cfg.lr == 2.0 and isinstance(cfg.lr, float)


def test_last_flag_wins(default):
    assert parse_config(["--epochs", "1", "--epochs", "2"], default).epochs == 2


def test_mapping_value_merges_key_by_key(default):
    cfg = parse_config(["--model", "{num_layers: 2, norm: {kind: batch}}"], default)
    assert cfg.model.to_dict() == {"num_layers": 2, "dim": 576, "norm": {"kind": "batch", "eps": 0.00001}}


def test_bools(default):
    assert parse_config(["--amp"], default).amp is True
    assert parse_config(["--amp", "--epochs", "3"], default).amp is True
    assert parse_config(["--amp=false"], default).amp is False
    assert parse_config(["--amp", "true"], default).amp is True


def test_lists_and_none_defaults(default):
    cfg = parse_config(["--tasks", "[sr_x4, denoise_30]", "--pretrained", "w/ipt.ckpt"], default)
    assert cfg.tasks == ["sr_x4", "denoise_30"] and cfg.pretrained == "w/ipt.ckpt"
    assert parse_config(["--pretrained", "[1, 2]"], default).pretrained == [1, 2]
    assert parse_config(["--tasks", "[]"], default).tasks == []


def test_strings_are_kept_verbatim(default):
    assert parse_config(["--name", "007"], default).name == "007"
    assert parse_config(["--name", "null"], default).name == "null"
    assert parse_config(["--name=a=b"], default).name == "a=b"


def test_negative_number_is_a_value(default):
    assert parse_config(["--lr", "-1"], default).lr == -1.0


@pytest.mark.parametrize("argv, message", [
    (["--model.num_layers", "abc"], "--model.num_layers: expected an integer, got 'abc'"),
    (["--model.num_layers", "1.5"], "--model.num_layers: expected an integer, got 1.5"),
    (["--lr", "fast"], "--lr: expected a number, got 'fast'"),
    (["--amp", "1"], "--amp: expected a boolean (true/false), got 1"),
    (["--epochs", "true"], "--epochs: expected an integer, got True"),
    (["--tasks", "sr_x2"], "--tasks: expected a list like [a, b], got 'sr_x2'"),
    (["--tasks", "[sr_x2"], "--tasks: expected a list like [a, b], got '[sr_x2'"),
    (["--model", "4"], "--model: expected a mapping like {key: value}, got 4"),
    (["--model", "{dim: x}"], "--model.dim: expected an integer, got 'x'"),
    (["--epochs"], "--epochs: expected a value"),
    (["epochs", "3"], "unexpected argument 'epochs'"),
])
def test_type_errors(default, argv, message):
    with pytest.raises(ConfigError) as info:
        parse_config(argv, default)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("argv, message", [
    (["--model.num_layer", "4"], "unknown config key 'model.num_layer' (did you mean 'model.num_layers'?)"),
    (["--epoch=3"], "unknown config key 'epoch' (did you mean 'epochs'?)"),
    (["--model", "{dimm: 3}"], "unknown config key 'model.dimm' (did you mean 'model.dim'?)"),
    (["--model.dim.x", "3"], "unknown config key 'model.dim.x' (did you mean 'model.dim'?)"),
    (["--zzzzzz", "3"], "unknown config key 'zzzzzz' (run with --help to list the keys)"),
])
def test_unknown_keys_suggest(default, argv, message):
    with pytest.raises(ConfigError) as info:
        parse_config(argv, default)
    assert str(info.value) == message


def test_config_file_merge_and_precedence(default, tmp_path):
    extra = _write(tmp_path, "extra.yaml", """\
        epochs: 5
        model:
          num_layers: 6
          norm: {eps: 1}
        """)
    cfg = parse_config(["--epochs", "7", "--config", str(extra)], default)
    assert cfg.epochs == 7                       # flags beat --config files
    assert cfg.model.num_layers == 6 and cfg.model.dim == 576
    assert cfg.model.norm.eps == 1.0 and cfg.model.norm.kind == "layer"
    assert cfg.lr == 1e-4


def test_config_file_unknown_and_wrong_keys(default, tmp_path):
    bad = _write(tmp_path, "bad.yaml", "model:\n  num_layer: 6\n")
    with pytest.raises(ConfigError) as info:
        parse_config([f"--config={bad}"], default)
    assert str(info.value) == f"{bad}: unknown config key 'model.num_layer' (did you mean 'model.num_layers'?)"
    wrong = _write(tmp_path, "wrong.yaml", "model:\n  num_layers: six\n")
    with pytest.raises(ConfigError) as info:
        parse_config(["--config", str(wrong)], default)
    assert str(info.value) == f"{wrong}: model.num_layers: expected an integer, got 'six'"
    with pytest.raises(ConfigError, match="no such config file"):
        parse_config(["--config", str(tmp_path / "nope.yaml")], default)


def test_help_lists_keys_and_exits_0(default, capsys):
    with pytest.raises(SystemExit) as info:
        parse_config(["--epochs", "3", "--help"], default, "Train IPT.")
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("Train IPT.")
    for line in ("--config PATH", "--lr 0.0001", "--model.num_layers 12", "--model.norm.eps 1.0e-05",
                 "--tasks [sr_x2, derain]", "--pretrained null"):
        assert line in out
    assert "# transformer layers" in out and "# learning rate" in out
    with pytest.raises(SystemExit):
        parse_config(["-h"], default)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = _write(tmp_path, "broken.yaml", "a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    message = str(info.value)
    assert message.startswith(f"{path}:") and "YAML syntax error" in message and "\n" not in message
    line = int(message[len(str(path)) + 1:].split(":")[0])
    assert 2 <= line <= 4


def test_load_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_yaml(_write(tmp_path, "list.yaml", "- a\n- b\n"))
    assert load_yaml(_write(tmp_path, "empty.yaml", "")) == {}


def test_default_keys_must_be_flag_names(tmp_path):
    with pytest.raises(ConfigError, match="cannot be a config key"):
        parse_config([], _write(tmp_path, "dot.yaml", "a.b: 1\n"))


def test_to_dict_and_dump_round_trip(default):
    cfg = parse_config(["--model.dim", "8"], default)
    plain = cfg.to_dict()
    assert type(plain) is dict and type(plain["model"]) is dict and type(plain["model"]["norm"]) is dict
    dumped = cfg.dump()
    assert "model:\n  num_layers: 12\n  dim: 8\n" in dumped
    assert Config(yaml.safe_load(dumped)) == cfg


def test_import_reads_no_argv(default):
    """A fresh interpreter with a bogus argv imports the module and parses an explicit argv without complaint."""
    code = ("import sys; from src.config import parse_config; "
            f"print(parse_config([], {str(default)!r}).epochs)")
    done = subprocess.run([sys.executable, "-c", code, "--no-such-key", "x"], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "300\n", "")


def test_task_lists_are_checked_in_one_place():
    """src.tasks.check_task_list: what IPTConfig (model.tasks) and train.py (tasks) refuse, naming their key."""
    from src.errors import ConfigError
    from src.models.ipt import IPTConfig
    from src.tasks import check_task_list
    check_task_list(["sr_x2", "derain"], "tasks")
    for names, message in (([], "tasks is empty"), (["sr_x2", "sr_x2"], "tasks names a task twice"),
                           (["sr_x5"], "unknown task 'sr_x5'")):
        with pytest.raises(ConfigError, match=message):
            check_task_list(names, "tasks")
    with pytest.raises(ConfigError, match="model.tasks names a task twice"):
        IPTConfig(tasks=("derain", "derain"))


def test_auto_defaults_also_take_an_integer(tmp_path):
    default = _write(tmp_path, "default.yaml", """\
        workers: auto     # auto or a count
        device: auto
    """)
    assert parse_config([], default).workers == "auto"
    assert parse_config(["--workers", "3"], default).workers == 3
    assert parse_config(["--workers", "auto", "--device", "off"], default).to_dict() == {"workers": "auto",
                                                                                          "device": "off"}
    assert parse_config(["--config", str(_write(tmp_path, "c.yaml", "workers: 4\n"))], default).workers == 4
    with pytest.raises(ConfigError, match="workers: expected a string, got 1.5"):
        parse_config(["--config", str(_write(tmp_path, "d.yaml", "workers: 1.5\n"))], default)
