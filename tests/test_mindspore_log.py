"""MindSpore's warnings about its own API that the project triggers (FusedSparseAdam inside nn.Adam, the ONNX export
through mindspore.export) stay off the console after ``setup()``, other MindSpore lines still show, and
``IPT_DEBUG=1`` shows everything. Real processes: MindSpore's logger is set up once per process."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import numpy as np, mindspore as ms
from mindspore import log, nn
from src.runtime import setup
setup("CPU")
net = nn.Dense(3, 3)
nn.Adam(net.trainable_params(), 1e-3)
ms.export(net, ms.Tensor(np.zeros((1, 3), np.float32)), file_name={path!r}, file_format="ONNX")
log.warning("another MindSpore warning")
"""


@pytest.mark.parametrize("debug", [False, True])
def test_known_mindspore_warnings_are_quiet_unless_debugging(tmp_path, debug):
    env = {k: v for k, v in os.environ.items() if k not in ("IPT_DEBUG", "GLOG_v")}
    if debug:
        env["IPT_DEBUG"] = "1"
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(path=str(tmp_path / "dense"))], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "dense.onnx").is_file()
    assert "another MindSpore warning" in proc.stderr
    for message in ("'FusedSparseAdam' is deprecated", "mindspore.export(file_format='ONNX') will be deleted"):
        assert (message in proc.stderr) == debug, proc.stderr
