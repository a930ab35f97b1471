"""What a training run finds and leaves in its output folder: its checkpoints (``ipt_<name>_step<N>.ckpt`` and
``ipt_<name>_last.ckpt``, each with ``.opt.ckpt`` beside it) and its curves (``loss.csv``/``.png``,
``val.csv``/``.png``).

``--resume auto`` continues from the newest consistent checkpoint there, ``_last`` included; a run that does not
continue the folder's newest checkpoint refuses to start where another run left files, so that nothing trained is
ever overwritten, unless ``--overwrite true`` (then the earlier run's files are removed when the new run starts).
"""
import re
from pathlib import Path

import mindspore as ms

from src.errors import ConfigError
from src.training import opt_state_path

CHECKPOINT_NAME = re.compile(r"ipt_.+_(?:step\d+|last)\.ckpt")
CURVES = ("loss.csv", "loss.png", "val.csv", "val.png")


def stored_step(path):
    """The ``step`` scalar stored in a train.py checkpoint or optimizer state; None when the file is missing,
    unreadable or has none."""
    try:
        found = ms.load_checkpoint(str(path), choice_func=lambda name: name == "step")
    except (OSError, ValueError, RuntimeError, TypeError):
        return None
    return int(found["step"].asnumpy()) if "step" in found else None


def checkpoints_in(output_dir):
    """The train.py checkpoints (``.ckpt`` with a step or ``_last`` name, not the ``.opt.ckpt``) in ``output_dir``."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("ipt_*.ckpt") if CHECKPOINT_NAME.fullmatch(p.name))


def latest_checkpoint(output_dir):
    """(path, step) of the newest consistent checkpoint in ``output_dir`` (the weights and the optimizer state
    beside them readable and of the same step: a run killed while saving leaves the previous pair), or None.
    Among several of the same step, the step-named one is taken (``_last`` is its copy)."""
    found = []  # (step, step-named, path)
    for path in checkpoints_in(output_dir):
        named = re.search(r"_step(\d+)\.ckpt$", path.name)
        if named:
            found.append((int(named.group(1)), True, path))
        else:  # a _last file: its step is only inside, read here
            step = stored_step(path)
            if step is not None:
                found.append((step, False, path))
    # newest first, the step-named one before its _last copy; each file's stored step is read once (a _last file's
    # was read above)
    for step, step_named, path in sorted(found, reverse=True):
        if stored_step(opt_state_path(path)) == step and (not step_named or stored_step(path) == step):
            return path, step
    return None


def earlier_outputs(output_dir):
    """The files of earlier runs in ``output_dir`` that a new run would overwrite (checkpoints and their
    optimizer states, the curves)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    names = set(CURVES)
    return sorted(p for p in folder.iterdir() if p.is_file() and (p.name in names or (
        p.name.startswith("ipt_") and p.name.endswith(".ckpt"))))


def check_output_dir(output_dir, resume, overwrite):
    """A ConfigError unless this run may write into ``output_dir``: it holds no earlier run's files, or this run
    continues the newest checkpoint there (``resume``: the checkpoint it resumes from, or None), or ``overwrite``."""
    if overwrite:
        return
    left = earlier_outputs(output_dir)
    if not left:
        return
    newest = latest_checkpoint(output_dir)
    if resume and newest and Path(resume).resolve() == newest[0].resolve():
        return
    what = f"its newest checkpoint is {newest[0].name} (step {newest[1]})" if newest else \
        f"it holds {', '.join(p.name for p in left[:3])}{' ...' if len(left) > 3 else ''}"
    raise ConfigError(f"output_dir {output_dir} holds another run's files ({what}); this run would overwrite them: "
                      f"continue it with --resume auto, choose another --output_dir, or pass --overwrite true")


def remove_earlier_outputs(output_dir):
    """Delete what ``earlier_outputs`` lists (``--overwrite true``); returns how many files went."""
    left = earlier_outputs(output_dir)
    for path in left:
        path.unlink(missing_ok=True)
    return len(left)
