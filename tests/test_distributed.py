"""Data-parallel training through the real launch scripts: msrun with 2 CPU workers on the tiny pre-training config,
compared with a single process on the global batch; the scripts' argument checks; the rank-table launch plan."""
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from src.checkpoint.loader import read_weights

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "configs" / "pretrain_tiny.yaml"
ENV = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bash(*args, env=None, timeout=600):
    return subprocess.run(["bash", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**ENV, **(env or {})})


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "chelsea", "coffee", "rocket", "cat"):
        assert cv2.imwrite(str(d / f"{name}.png"), getattr(skdata, name)()[..., ::-1])
    return d


def worker_lines(out, pattern):
    """{rank: the lines of its msrun worker logs (all launches) matching ``pattern``}."""
    found = {}
    for log in sorted((out / "logs").glob("msrun_*/worker_*.log")):
        rank = int(re.search(r"worker_(\d+)", log.name).group(1))
        found.setdefault(rank, []).extend(re.findall(pattern, log.read_text(errors="replace"), re.M))
    return found


def test_two_workers_match_one_process_on_the_global_batch(photos, tmp_path):
    """msrun, 2 CPU workers, 2 steps from scratch, then a resumed launch to step 4; a single process with the
    global batch (and contrastive groups = the ranks' split) must end with the same parameters."""
    out, single = tmp_path / "dist", tmp_path / "single"
    common = ["--config", TINY_CONFIG, "--output_dir", out, "--save_every", "2"]
    first = bash("scripts/run_distribute_train.sh", 2, photos, *common, "--steps", 2,
                 env={"IPT_MASTER_PORT": str(free_port())})
    assert first.returncode == 0, first.stderr[-3000:]
    assert "[WARNING] DISTRIBUTED" not in first.stdout + first.stderr  # MindSpore's C++ log: errors only (GLOG_v)
    second = bash("scripts/run_distribute_train.sh", 2, photos, *common, "--steps", 4, "--resume", "auto",
                  env={"IPT_MASTER_PORT": str(free_port())})
    assert second.returncode == 0, second.stderr[-3000:]
    assert len(list((out / "logs").glob("msrun_*"))) == 2

    finished = worker_lines(out, r"rank (\d) of 2: parameters sha1 (\w+), inputs sha1 (\w+)")
    assert sorted(finished) == [0, 1] and all(len(v) == 2 for v in finished.values())
    for launch in range(2):
        (r0, params0, inputs0), (r1, params1, inputs1) = finished[0][launch], finished[1][launch]
        assert (r0, r1) == ("0", "1")
        assert params0 == params1  # the replicas are identical
        assert inputs0 != inputs1  # and saw different samples
    resumed = worker_lines(out, r"^.*ipt_pretrain_step2\.ckpt: pretrain .*$")
    assert all(len(resumed[r]) == 1 and "steps 2..4, batch 4 (2 per worker x 2)" in resumed[r][0] for r in (0, 1))
    assert sorted(p.name for p in out.glob("*.ckpt")) == [
        "ipt_pretrain_last.ckpt", "ipt_pretrain_last.opt.ckpt", "ipt_pretrain_step2.ckpt",
        "ipt_pretrain_step2.opt.ckpt", "ipt_pretrain_step4.ckpt", "ipt_pretrain_step4.opt.ckpt"]

    proc = subprocess.run([sys.executable, "train.py", "--config", str(TINY_CONFIG), "--data.train_dir", str(photos),
                           "--output_dir", str(single), "--steps", "4", "--save_every", "2",
                           "--loss.contrastive_groups", "2"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for step in ("step2", "last"):
        a = read_weights(out / f"ipt_pretrain_{step}.ckpt")
        b = read_weights(single / f"ipt_pretrain_{step}.ckpt")
        assert a.extra == b.extra and set(a.params) == set(b.params)
        for name, value in b.params.items():
            np.testing.assert_allclose(a.params[name], value, rtol=1e-5, atol=1e-5, err_msg=f"{step} {name}")
    with open(out / "loss.csv") as f:
        assert [line.split(",")[0] for line in f][1:] == ["1", "2", "3", "4"]


@pytest.mark.parametrize("args, message", [
    ([], "usage: bash scripts/run_distribute_train.sh WORKERS DATA_DIR"),
    (["0", "{photos}"], "error: WORKERS is '0'; expected a positive integer"),
    (["two", "{photos}"], "error: WORKERS is 'two'; expected a positive integer"),
    (["2", "{photos}/missing"], "error: DATA_DIR {photos}/missing: no such folder"),
])
def test_distribute_script_checks_its_arguments(photos, args, message):
    proc = bash("scripts/run_distribute_train.sh", *[a.format(photos=photos) for a in args])
    assert proc.returncode == 1 and message.format(photos=photos) in proc.stderr.splitlines()[0], proc.stderr


def test_distribute_script_checks_the_cluster_variables(photos):
    proc = bash("scripts/run_distribute_train.sh", 2, photos, env={"IPT_NODES": "2", "IPT_NODE_RANK": "2"})
    assert proc.returncode == 1 and proc.stderr.strip() == \
        "error: IPT_NODE_RANK is '2'; expected an integer in 0..1"


def test_batch_must_divide_over_the_workers(photos, tmp_path):
    proc = bash("scripts/run_distribute_train.sh", 2, photos, "--config", TINY_CONFIG, "--data.batch_size", 3,
                "--output_dir", tmp_path, env={"IPT_MASTER_PORT": str(free_port())})
    assert proc.returncode != 0
    errors = worker_lines(tmp_path, r"^error: .*$")
    assert errors[0] == ["error: data.batch_size 3 is the global batch; it must be divisible by the 2 workers"]


def test_other_scripts_check_their_arguments(tmp_path):
    proc = bash("scripts/run_standalone_train.sh")
    assert proc.returncode == 1 and "usage: bash scripts/run_standalone_train.sh DATA_DIR" in proc.stderr
    proc = bash("scripts/run_standalone_train.sh", tmp_path / "nope")
    assert proc.returncode == 1 and proc.stderr.strip() == f"error: DATA_DIR {tmp_path}/nope: no such folder"
    proc = bash("scripts/run_distribute_train_rank_table.sh", tmp_path / "table.json", tmp_path)
    assert proc.returncode == 1 and proc.stderr.strip() == f"error: RANK_TABLE_FILE {tmp_path}/table.json: no such file"
    (tmp_path / "bad.json").write_text("{}")
    proc = bash("scripts/run_distribute_train_rank_table.sh", tmp_path / "bad.json", tmp_path)
    assert proc.returncode == 1 and "bad.json: not an HCCL rank table" in proc.stderr


def test_rank_table_launch_plan(tmp_path):
    """Two servers of two devices: server 1 starts ranks 2 and 3 on its devices, RANK_SIZE 4 (IPT_DRY_RUN prints
    the launches; HCCL itself needs Ascend hardware)."""
    table = {"version": "1.0", "server_count": "2", "status": "completed", "server_list": [
        {"server_id": "10.0.0.1", "device": [{"device_id": "0", "device_ip": "1.1.1.1", "rank_id": "0"},
                                             {"device_id": "1", "device_ip": "1.1.1.2", "rank_id": "1"}]},
        {"server_id": "10.0.0.2", "device": [{"device_id": "4", "device_ip": "1.1.2.1", "rank_id": "2"},
                                             {"device_id": "5", "device_ip": "1.1.2.2", "rank_id": "3"}]}]}
    (tmp_path / "hccl.json").write_text(json.dumps(table))
    proc = bash("scripts/run_distribute_train_rank_table.sh", tmp_path / "hccl.json", tmp_path, "--steps", "9",
                "--output_dir", tmp_path / "out", env={"IPT_DRY_RUN": "1", "IPT_SERVER_INDEX": "1"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2
    for line, (device, rank) in zip(lines, [(4, 2), (5, 3)]):
        assert line.startswith(f"DEVICE_ID={device} RANK_ID={rank} RANK_SIZE=4 RANK_TABLE_FILE={tmp_path}/hccl.json ")
        assert line.endswith(f"train.py --device_target Ascend --data.train_dir {tmp_path} --steps 9 --output_dir "
                             f"{tmp_path}/out")
