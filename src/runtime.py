"""Setting up MindSpore for an entry script, and data-parallel training's communication."""
import logging
import os

import mindspore as ms

from src.errors import ConfigError

DTYPES = {"float32": ms.float32, "float16": ms.float16}
log = logging.getLogger("ipt")


def setup(device_target="CPU", compute_dtype="float32", device_id=None):
    """Graph mode on ``device_target`` (``device_id``: which device; None = MindSpore's choice); returns the
    MindSpore dtype for ``compute_dtype``. Logs to stderr."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if device_target not in ("CPU", "GPU", "Ascend"):
        raise ConfigError(f"device_target {device_target!r}; expected CPU, GPU or Ascend")
    if compute_dtype not in DTYPES:
        raise ConfigError(f"compute_dtype {compute_dtype!r}; expected one of {', '.join(DTYPES)}")
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        ms.set_device(device_target, device_id)
    except RuntimeError as e:
        reason = str(e).strip().split(". ")[0]
        raise ConfigError(f"device_target {device_target} is not usable with this MindSpore installation: {reason}. "
                          "Install the MindSpore package built for it, or use another --device_target") from None
    return DTYPES[compute_dtype]


def launched_distributed():
    """How this process was started: "msrun" (MindSpore's dynamic cluster: MS_ROLE is set), "rank_table" (an
    HCCL rank table: RANK_TABLE_FILE with RANK_SIZE > 1) or None (a standalone process)."""
    if os.environ.get("MS_ROLE"):
        return "msrun"
    if os.environ.get("RANK_TABLE_FILE") and int(os.environ.get("RANK_SIZE", "1") or 1) > 1:
        return "rank_table"
    return None


def distributed_device_id():
    """The device a rank-table process must use (its DEVICE_ID); None otherwise (msrun negotiates it)."""
    if launched_distributed() == "rank_table":
        return int(os.environ.get("DEVICE_ID", "0"))
    return None


def init_data_parallel():
    """(rank, world size) of this process; (0, 1) when standalone. Under msrun or a rank table: initialises
    communication (``mindspore.communication.init``) and the data-parallel context (gradients averaged over the
    ranks). Call after ``setup``."""
    how = launched_distributed()
    if how is None:
        return 0, 1
    from mindspore.communication import get_group_size, get_rank, init
    try:
        init()
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[0][:200]
        raise ConfigError(f"data-parallel start ({how}) failed: {reason}") from None
    rank, size = get_rank(), get_group_size()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True, device_num=size)
    log.info("data parallel (%s): rank %d of %d", how, rank, size)
    return rank, size
