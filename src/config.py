"""YAML configs with nested command-line overrides.

Every key of the default YAML, at any depth, is a flag: ``--lr 2e-4``, ``--model.num_layers=4``,
``--tasks "[sr_x2, derain]"``; a bare ``--flag`` sets a boolean to true and ``--config PATH`` merges another YAML
whose keys must exist in the defaults. A key whose default is ``auto`` also takes an integer.
Precedence: defaults < ``--config`` files (in order) < other flags.
Nothing here reads ``sys.argv`` or any file at import time.
"""
import copy
import difflib
import re
from pathlib import Path

import yaml

from src.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` (no dot) as a float, as YAML 1.2 does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))

AUTO = "auto"  # a default that also takes an integer (data.num_workers: auto or a count)
_TYPE_NAMES = {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string",
               list: "a list like [a, b]", dict: "a mapping like {key: value}"}


def _read_text(path: Path) -> str:
    if not path.exists():
        raise ConfigError(f"{path}: no such config file")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None


def load_yaml(path) -> dict:
    """The mapping in the YAML file ``path`` (an empty file gives ``{}``); any problem is a one-line ConfigError."""
    path = Path(path)
    text = _read_text(path)
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of config keys, got {type(data).__name__}")
    return data


class Config(dict):
    """A dict whose (nested) keys are also attributes: ``cfg.model.num_layers``.

    Keys that shadow dict methods (``items``, ``keys`` ...) are only reachable as ``cfg["items"]``.
    """

    def __init__(self, data=(), **kwargs):
        super().__init__()
        for key, value in dict(data, **kwargs).items():
            self[key] = _wrap(value)

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}") from None

    def __setattr__(self, name, value):
        self[name] = _wrap(value)

    def to_dict(self) -> dict:
        """A deep copy made of plain dicts and lists."""
        return _unwrap(self)

    def dump(self) -> str:
        """The config as a block-style YAML string, in key order."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False, allow_unicode=True)


def _wrap(value):
    if isinstance(value, dict):
        return value if isinstance(value, Config) else Config(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _unwrap(value):
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


def _all_keys(tree: dict, prefix: str = ""):
    """Dotted names of every key in ``tree``, mappings included, depth first."""
    for key, value in tree.items():
        name = prefix + key
        yield name
        if isinstance(value, dict):
            yield from _all_keys(value, name + ".")


def _unknown_key(name: str, defaults: dict) -> ConfigError:
    close = difflib.get_close_matches(name, list(_all_keys(defaults)), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else "run with --help to list the keys"
    return ConfigError(f"unknown config key {name!r} ({hint})")


def _check_keys(tree: dict, path: Path, prefix: str = "") -> None:
    """Default-config keys must be usable as flags: strings without dots, '=' or spaces."""
    for key, value in tree.items():
        if not isinstance(key, str) or not re.fullmatch(r"[^.=\s]+", key) or key == "config":
            raise ConfigError(f"{path}: {prefix + str(key)!r} cannot be a config key "
                              "(keys are strings without '.', '=' or spaces, and 'config' is reserved)")
        if isinstance(value, dict):
            _check_keys(value, path, prefix + key + ".")


def _checked(value, default, name: str, defaults: dict, prefix: str = ""):
    """``value`` if it fits the type of ``default`` (ints widen to float), else a ConfigError.

    ``name`` is the dotted key ("" for the top level), ``prefix`` goes before it in messages ("--" for flags) and
    ``defaults`` is the whole default tree, for key suggestions. Mappings are checked key by key.
    """
    if default is None or (default == AUTO and isinstance(value, int) and not isinstance(value, bool)):
        return value
    kind = next(t for t in (bool, int, float, str, list, dict) if isinstance(default, t))
    if kind is dict and isinstance(value, dict):
        out = {}
        for key, sub in value.items():
            sub_name = f"{name}.{key}" if name else str(key)
            if key not in default:
                raise _unknown_key(sub_name, defaults)
            out[key] = _checked(sub, default[key], sub_name, defaults, prefix)
        return out
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ConfigError(f"{prefix}{name}: expected {_TYPE_NAMES[kind]}, got {value!r}")
    return value


def _merge(base: dict, override: dict) -> dict:
    """``base`` updated in place by ``override``, mappings merged key by key."""
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _lookup(defaults: dict, name: str):
    """The default value at dotted ``name``; ConfigError if there is no such key."""
    node = defaults
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            raise _unknown_key(name, defaults)
        node = node[part]
    return node


def _nest(name: str, value) -> dict:
    """``{"a": {"b": value}}`` for ``name == "a.b"``."""
    for part in reversed(name.split(".")):
        value = {part: value}
    return value


def _split_argv(argv):
    """``argv`` as (config file paths, [(dotted key, raw value or None for a bare flag)])."""
    files, flags = [], []
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--") or token == "--":
            raise ConfigError(f"unexpected argument {token!r} (options look like --key value or --key=value)")
        name, eq, raw = token[2:].partition("=")
        if not eq:
            has_value = i + 1 < len(argv) and not argv[i + 1].startswith("--")
            raw = argv[i + 1] if has_value else None
            i += has_value
        i += 1
        if name == "config":
            if not raw:
                raise ConfigError("--config: expected the path of a YAML file")
            files.append(Path(raw))
        else:
            flags.append((name, raw))
    return files, flags


def _flag_value(name: str, raw, default, defaults: dict):
    """The checked value of ``--name raw``; a bare flag (``raw is None``) only sets a boolean."""
    if raw is None:
        if isinstance(default, bool):
            return True
        raise ConfigError(f"--{name}: expected a value")
    if default == AUTO and re.fullmatch(r"[-+]?\d+", raw.strip()):
        return int(raw)
    if isinstance(default, str):
        return raw
    try:
        value = yaml.load(raw, Loader=_Loader)
    except yaml.YAMLError:
        value = raw
    return _checked(value, default, name, defaults, "--")


def _comments(text: str) -> dict:
    """Trailing ``# comments`` of one-line scalar or flow values in the YAML ``text``, by dotted key."""
    lines = text.splitlines()
    found = {}

    def walk(node, prefix):
        for key_node, value_node in node.value:
            name = prefix + str(key_node.value)
            if isinstance(value_node, yaml.MappingNode) and not value_node.flow_style:
                walk(value_node, name + ".")
                continue
            start, end = value_node.start_mark, value_node.end_mark
            if start.line == end.line == key_node.start_mark.line:
                rest = lines[end.line][end.column:].strip()
                if rest.startswith("#"):
                    found[name] = rest.lstrip("#").strip()

    root = yaml.compose(text, Loader=_Loader)
    if isinstance(root, yaml.MappingNode):
        walk(root, "")
    return found


def _leaves(tree: dict, prefix: str = ""):
    """(dotted key, value) for every non-mapping value (and every empty mapping) in ``tree``."""
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, prefix + key + ".")
        else:
            yield prefix + key, value


def _format(value) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"), allow_unicode=True).strip()
    return text[:-len("\n...")].strip() if text.endswith("\n...") else text


def _help(default_config: Path, defaults: dict, description: str) -> str:
    comments = _comments(_read_text(default_config))
    rows = [("--config PATH", "YAML file overriding some of the defaults below")]
    rows += [(f"--{name} {_format(value)}", comments.get(name, "")) for name, value in _leaves(defaults)]
    width = max(len(flag) for flag, _ in rows)
    body = "\n".join(f"  {flag:<{width}}  # {note}" if note else f"  {flag}" for flag, note in rows)
    head = f"{description}\n\n" if description else ""
    return (f"{head}options (defaults from {default_config}; set nested keys as --a.b value, "
            f"lists as \"[x, y]\", booleans with a bare --flag):\n  -h, --help\n{body}")


def parse_config(argv, default_config, description: str = "") -> Config:
    """The default YAML ``default_config`` overridden by ``--config`` files and ``--key value`` flags in ``argv``.

    Values are parsed as YAML (strings kept verbatim where the default is a string) and must match the default's
    type: ints are accepted for floats, anything for a null default, mappings are merged key by key. ``-h``/``--help``
    prints every key with its default and raises ``SystemExit(0)``. Errors are one-line ConfigErrors.
    """
    default_config = Path(default_config)
    defaults = load_yaml(default_config)
    _check_keys(defaults, default_config)
    argv = list(argv)
    if "-h" in argv or "--help" in argv:
        print(_help(default_config, defaults, description))
        raise SystemExit(0)
    files, flags = _split_argv(argv)
    merged = copy.deepcopy(defaults)
    for path in files:
        override = load_yaml(path)
        try:
            _merge(merged, _checked(override, defaults, "", defaults))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    for name, raw in flags:
        default = _lookup(defaults, name)
        _merge(merged, _nest(name, _flag_value(name, raw, default, defaults)))
    return Config(merged)
