"""Setting up MindSpore for an entry script."""
import logging

import mindspore as ms

from src.errors import ConfigError

DTYPES = {"float32": ms.float32, "float16": ms.float16}
log = logging.getLogger("ipt")


def setup(device_target="CPU", compute_dtype="float32"):
    """Graph mode on ``device_target``; returns the MindSpore dtype for ``compute_dtype``. Logs to stderr."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if device_target not in ("CPU", "GPU", "Ascend"):
        raise ConfigError(f"device_target {device_target!r}; expected CPU, GPU or Ascend")
    if compute_dtype not in DTYPES:
        raise ConfigError(f"compute_dtype {compute_dtype!r}; expected one of {', '.join(DTYPES)}")
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        ms.set_device(device_target)
    except RuntimeError as e:
        reason = str(e).strip().split(". ")[0]
        raise ConfigError(f"device_target {device_target} is not usable with this MindSpore installation: {reason}. "
                          "Install the MindSpore package built for it, or use another --device_target") from None
    return DTYPES[compute_dtype]
