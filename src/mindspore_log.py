"""MindSpore's own warnings that the project triggers knowingly, kept off the console unless ``IPT_DEBUG=1``.

Each is a warning about MindSpore's API, not about the run: ``nn.Adam`` builds the deprecated ``FusedSparseAdam``
primitive (for sparse gradients, which IPT never has), and the ONNX export goes through ``mindspore.export``, which
MindSpore 2.10 marks for removal. Only these exact messages are dropped; every other MindSpore line shows as usual.
The training launchers quiet MindSpore's C++ log in the same way (``GLOG_v``, scripts/train_common.sh).
"""
import logging
import os
import re

KNOWN_WARNINGS = (
    re.compile(r"'FusedSparseAdam' is deprecated"),
    re.compile(r"mindspore\.export\(file_format='ONNX'\) will be deleted"),
)


class _DropKnownWarnings(logging.Filter):
    def filter(self, record):
        message = record.getMessage()
        return not any(pattern.search(message) for pattern in KNOWN_WARNINGS)


def quiet_known_warnings(environ=None):
    """Drop ``KNOWN_WARNINGS`` from MindSpore's Python logger, unless ``IPT_DEBUG=1``; returns whether it did."""
    environ = os.environ if environ is None else environ
    if environ.get("IPT_DEBUG") == "1":
        return False
    from mindspore import log as ms_log
    logger = ms_log._get_logger()  # MindSpore's one Python logger (its module functions all log through it)
    if not any(isinstance(f, _DropKnownWarnings) for f in logger.filters):
        logger.addFilter(_DropKnownWarnings())
    return True
