"""Every command in README.md and docs/*.md runs as written.

The commands are the lines of the fenced ``bash`` blocks, and the inline code spans that start with
``.venv/bin/python`` or ``bash`` and a script of the project. Each is checked without running a model: Python runs
as ``.venv/bin/python`` (the README's one convention); the entry scripts' flags are parsed by the scripts' own
parser (``src.config.parse_config`` on ``configs/<script>.yaml``: unknown keys and mistyped values fail); other
Python scripts' and the C++ tools' flags are found in their ``--help``; the scripts exist and the launchers get their
positional arguments; every training command sets ``--steps`` (or a ``--config`` that does), so none runs to the
default 100,000 steps. The cheap ones (``--help``, the tile plan, the runtime report) run for real. A command of a
kind this file does not know fails, so a new kind of command in the docs needs a check here.
"""
import functools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from src.config import load_yaml, parse_config

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ENTRY_SCRIPTS = {"eval.py", "train.py", "export.py", "convert.py"}  # flags: configs/<name>.yaml
LAUNCHERS = {"scripts/run_standalone_train.sh": 1, "scripts/run_distribute_train.sh": 2,
             "scripts/run_distribute_train_rank_table.sh": 2}  # positional arguments before train.py's flags
OTHER_SCRIPTS = {"scripts/quickstart.sh", "scripts/run_tests.sh", "scripts/setup.sh", "scripts/run_infer_310.sh",
                 "ascend310_infer/build.sh"}
NETWORK = ("python3 -m venv", ".venv/bin/pip ")  # installs: not run here
# What runs for real (cheap: no model); keyed by the command as the docs write it.
RUN_FOR_REAL = ("--help", "-m src.tiler plan", "-m src.runtime")
# Inline code spans that are commands (others, such as a module named in prose, are not).
COMMAND_START = re.compile(r"^(?:[A-Z_]+=\S+ )*(?:\.venv/bin/python |bash (?:scripts|ascend310_infer)/)")


def doc_commands():
    """(file:line, command) for each command of the docs (continuation lines joined, comments dropped)."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for block in re.finditer(r"^```bash\n(.*?)^```", text, re.S | re.M):
            first = text[:block.start()].count("\n") + 2
            lines = block.group(1).split("\n")
            i = 0
            while i < len(lines):
                start, command = i, lines[i]
                while command.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    command = command[:-1] + " " + lines[i].strip()
                i += 1
                command = re.sub(r"\s+#.*$", "", command).strip()
                if command and not re.match(r"^(for .*; do|done)$", command):
                    found.append((f"{path.name}:{first + start}", command))
        for number, line in enumerate(text.splitlines(), 1):
            for span in re.findall(r"`([^`]+)`", line):
                if COMMAND_START.match(span) and "..." not in span and span.strip() != ".venv/bin/python":
                    found.append((f"{path.name}:{number}", span))
    return found


COMMANDS = doc_commands()


def words(command):
    """The command's words, with the docs' optional-part brackets (``[--save_npy]``) taken off."""
    return [w.strip("[]") for w in shlex.split(command) if w.strip("[]")]


def flags_of(args):
    return [a.split("=")[0] for a in args if a.startswith("--")]


@functools.lru_cache(maxsize=None)
def run_once(argv):
    """(exit status, stdout, stderr) of ``argv`` run from the repository root; each command runs once per session."""
    proc = subprocess.run(list(argv), cwd=ROOT, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def help_flags(argv):
    code, out, err = run_once(tuple(argv))
    assert code == 0, err
    return set(re.findall(r"--[a-z_][a-z0-9_.]*", out)) | {"--help"}


def sets_steps(args):
    """Whether train.py's ``args`` give the number of steps (a flag, or a --config file with a steps key)."""
    if "--steps" in flags_of(args):
        return True
    configs = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--config"]
    return any("steps" in load_yaml(ROOT / c) for c in configs)


def check_train_flags(args):
    parse_config(args, ROOT / "configs" / "train.yaml")
    assert sets_steps(args), "a training command without --steps runs to the default 100,000 steps"


def check(command, cpp_tools):
    """Check one command; returns what was done with it ("flags", "ran", "exists", "install")."""
    if command.startswith(NETWORK):
        return "install"
    argv = words(command)
    while re.match(r"^[A-Z_]+=", argv[0]):  # VAR=value prefixes
        argv = argv[1:]
    program, args = argv[0], argv[1:]
    if program == "bash":
        script, rest = args[0], args[1:]
        assert (ROOT / script).is_file(), f"{script}: no such script"
        if script in LAUNCHERS:
            positional = LAUNCHERS[script]
            if rest[positional:positional + 1] == ["flags..."]:  # the synopsis line
                return "exists"
            assert len(rest) >= positional and not any(a.startswith("--") for a in rest[:positional])
            check_train_flags(rest[positional:])
            return "flags"
        assert script in OTHER_SCRIPTS, f"{script}: a script this test does not know"
        return "exists"
    if program.startswith("ascend310_infer/build/"):
        tool = program.rsplit("/", 1)[1]
        # ipt_infer needs the SDK; its flags are the replay tool's (the same parser, ascend310_infer/src/flags.cc)
        known = help_flags([str(cpp_tools["ipt_infer_replay" if tool == "ipt_infer" else tool]), "--help"])
        assert set(flags_of(args)) <= known, f"unknown flags {set(flags_of(args)) - known}"
        return "flags"
    assert program == ".venv/bin/python", "Python runs as .venv/bin/python in the docs (the README's convention)"
    if any(marker in command for marker in RUN_FOR_REAL):
        code, _, err = run_once((sys.executable, *args))
        assert code == 0, err[-2000:]
        return "ran"
    if args[0] == "-m":
        module, rest = args[1], args[2:]
        sub = [rest[0]] if rest and not rest[0].startswith("-") else []
        known = help_flags([sys.executable, "-m", module, *sub, "--help"])
    elif args[0] in ENTRY_SCRIPTS:
        parse_config(args[1:], ROOT / "configs" / args[0].replace(".py", ".yaml"))
        if args[0] == "train.py":
            check_train_flags(args[1:])
        return "flags"
    else:
        assert (ROOT / args[0]).is_file(), f"{args[0]}: no such script"
        if args[0] == "scripts/make_torch_fixtures.py":
            pytest.importorskip("torch")  # the script needs it to start; README.md, Installation, says how to add it
        known = help_flags([sys.executable, args[0], "--help"])
    assert set(flags_of(args)) <= known, f"unknown flags {set(flags_of(args)) - known}"
    return "flags"


@pytest.mark.parametrize("where, command", COMMANDS, ids=[f"{w}" for w, _ in COMMANDS])
def test_doc_command(where, command, cpp_tools):
    assert check(command, cpp_tools) in ("flags", "ran", "exists", "install")


def test_the_docs_have_commands_of_every_kind():
    """The extraction finds the docs' commands of each kind (a regex gone wrong would pass the tests above by
    finding none)."""
    assert len(COMMANDS) > 40
    for pattern in (r"^\.venv/bin/python (eval|export|convert)\.py --ckpt_path", r"^bash scripts/run_\w+_train\.sh \w",
                    r"--help$", r"-m src\.tiler plan", r"^ascend310_infer/build/ipt_infer ",
                    r"--benchmark data/benchmark/\$set", r"-m src\.exported restore", r"\.venv/bin/python benchmarks/"):
        assert any(re.search(pattern, command) for _, command in COMMANDS), pattern


@pytest.mark.parametrize("command, message", [
    ("bash scripts/run_standalone_train.sh photos --task sr_x2", "default 100,000 steps"),
    (".venv/bin/python train.py --task sr_x2 --steps 10 --stpes 4", "unknown config key 'stpes'"),
    (".venv/bin/python eval.py --ckpt_path x.pt --tile_batch many", "tile_batch"),
    ("python eval.py --ckpt_path x.pt", "the README's convention"),
    (".venv/bin/python -m src.exported restore m.mindir --input a.png --output b.png --record_tile t", "--record_tile"),
    ("bash scripts/no_such_script.sh", "no such script"),
])
def test_a_wrong_command_fails_the_check(command, message, cpp_tools):
    with pytest.raises(Exception, match=re.escape(message)):
        check(command, cpp_tools)


def test_nothing_tracked_is_ignored_and_outputs_are():
    """.gitignore covers what the documented commands write (data, weights, checkpoints, exports, the 310 work folder)
    without hiding a tracked file (src/data/, src/models/, the .pt fixtures)."""
    tracked_ignored = subprocess.run(["git", "ls-files", "-ci", "--exclude-standard"], cwd=ROOT, capture_output=True,
                                     text=True)
    if tracked_ignored.returncode != 0:
        pytest.skip("not a git checkout")
    assert tracked_ignored.stdout == ""
    outputs = ["data/benchmark/Set5/HR/baby.png", "weights/sr_x2.pt", "infer_310/build.log", "models/ipt.mindir",
               "runs/sr_x2/ipt_sr_x2_step2.ckpt", "ipt_sr_x2.ckpt", "ipt_sr_x2_b8.onnx", "ipt_sr_x2_b8.mindir"]
    ignored = subprocess.run(["git", "check-ignore", *outputs], cwd=ROOT, capture_output=True, text=True)
    assert ignored.stdout.split() == outputs


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_and_anchors_resolve():
    """Every relative link of README.md and docs/*.md names a file that exists and, with #anchor, one of its
    headings."""
    broken = []
    for path in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f"{path.name}: {target} (no such file)")
            elif anchor and linked.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), re.M)
                if anchor not in {github_anchor(h) for h in headings}:
                    broken.append(f"{path.name}: {target} (no such heading)")
    assert not broken, broken
