"""Data-parallel training through the real launch scripts: msrun with 2 CPU workers on the tiny pre-training config,
compared with a single process on the global batch; two machines (two network namespaces joined by a veth pair, one
launcher in each) compared with one launcher; a killed worker and the exact resume after it; failures before the
cluster forms ending the job within seconds; the scripts' argument checks; the rank-table launch plan."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from src.checkpoint.loader import read_weights
from src.runtime import choose_device

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


@pytest.fixture(scope="module")
def one_launcher(photos, tmp_path_factory):
    """msrun, 2 CPU workers, 2 steps from scratch, then a resumed launch to step 4 (checkpoints at 2 and 4)."""
    out = tmp_path_factory.mktemp("dist")
    common = ["--config", TINY_CONFIG, "--output_dir", out, "--save_every", "2"]
    first = bash("scripts/run_distribute_train.sh", 2, photos, *common, "--steps", 2,
                 env={"IPT_MASTER_PORT": str(free_port())})
    assert first.returncode == 0, first.stderr[-3000:]
    assert "[WARNING] DISTRIBUTED" not in first.stdout + first.stderr  # MindSpore's C++ log: errors only (GLOG_v)
    second = bash("scripts/run_distribute_train.sh", 2, photos, *common, "--steps", 4, "--resume", "auto",
                  env={"IPT_MASTER_PORT": str(free_port())})
    assert second.returncode == 0, second.stderr[-3000:]
    return out


def test_two_workers_match_one_process_on_the_global_batch(one_launcher, photos, tmp_path):
    """The two-worker run to step 4 (resumed at 2); a single process with the global batch (and contrastive groups
    = the ranks' split) must end with the same parameters."""
    out, single = one_launcher, tmp_path / "single"
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
    logged = worker_lines(out, r"^\d{4}-\d\d-\d\d [\d:,]+ INFO (.*)$")  # each launch's first log line: the device
    chosen = choose_device("auto")[1] + "; graph_form auto: cpu on CPU"  # and the graph form (src/runtime.setup)
    firsts = [line for lines in logged.values() for line in lines if line.startswith(chosen)]
    assert all(lines[0].startswith(chosen) for lines in logged.values()) and len(firsts) == 2 * len(logged), logged
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
    # the single-host pitfall: machine 1 given an address of its own would start a second scheduler
    proc = bash("scripts/run_distribute_train.sh", 1, photos, env={"IPT_NODES": "2", "IPT_NODE_RANK": "1"})
    assert proc.returncode == 1 and proc.stderr.strip().startswith(
        "error: IPT_MASTER_ADDR 127.0.0.1 is an address of this machine, but this is machine IPT_NODE_RANK 1: msrun "
        "would start a second scheduler here"), proc.stderr
    # and machine 0 away from the master address (192.0.2.1, a documentation address, is nobody's) would start none
    proc = bash("scripts/run_distribute_train.sh", 1, photos,
                env={"IPT_NODES": "3", "IPT_NODE_RANK": "0", "IPT_MASTER_ADDR": "192.0.2.1"})
    assert proc.returncode == 1 and proc.stderr.strip().startswith(
        "error: this is machine IPT_NODE_RANK 0, which hosts the scheduler, but IPT_MASTER_ADDR 192.0.2.1 is not an "
        "address of this machine"), proc.stderr
    assert proc.stderr.strip().endswith("its own IPT_NODE_RANK in 1..2"), proc.stderr


def last_line(proc):
    return proc.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def no_usable_image(tmp_path_factory):
    d = tmp_path_factory.mktemp("corrupt")
    (d / "a.png").write_bytes(b"\x89PNG truncated")
    (d / "b.JPEG").write_bytes(b"")
    return d


@pytest.mark.parametrize("data, args, message", [
    ("{photos}", ["--data.batch_size", "3"], "data.batch_size 3 is the global batch; it must be divisible by the 2 "
                                             "workers"),
    ("{corrupt}", [], "none of the 2 training image(s) can be used (unreadable or too small); the first: "
                      "{corrupt}/a.png: cannot decode image (corrupt or not an image)"),
])
def test_an_error_before_the_cluster_forms_ends_the_job_with_it(photos, no_usable_image, tmp_path, data, args,
                                                                 message):
    """Bad input every worker finds before any process group forms: the job ends with a worker's one-line error
    last, naming its rank and log (not msrun's traceback)."""
    proc = bash("scripts/run_distribute_train.sh", 2, data.format(photos=photos, corrupt=no_usable_image), "--config",
                TINY_CONFIG, *args, "--output_dir", tmp_path, env={"IPT_MASTER_PORT": str(free_port())})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    (log,) = (tmp_path / "logs").glob("msrun_*/worker_0.log")
    assert last_line(proc) == (f"error: worker rank 0 failed (exit status 2; log {log}): "
                               f"{message.format(corrupt=no_usable_image)}"), proc.stderr[-3000:]
    assert worker_lines(tmp_path, r"^error: .*$")[1] == [f"error: {message.format(corrupt=no_usable_image)}"]


def worker_pid(rank, out):
    """The pid of the live msrun worker of ``rank`` whose command line names ``out`` (not msrun's tail of its
    log, which carries the same environment), or None."""
    for entry in Path("/proc").iterdir():
        try:
            env = entry.joinpath("environ").read_bytes().split(b"\0")
            comm = entry.joinpath("comm").read_text().strip()
            cmdline = entry.joinpath("cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if (b"MS_ROLE=MS_WORKER" in env and f"MS_NODE_ID={rank}".encode() in env and comm != "tail"
                and str(out) in cmdline):
            return int(entry.name)
    return None


def wait_for(condition, proc, seconds, what):
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, f"the launcher ended before {what}: {proc.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} within {seconds} s"
        time.sleep(0.1)


def launch(*args, env=None, netns=None):
    command = ["bash", "scripts/run_distribute_train.sh", *map(str, args)]
    if netns:
        command = ["ip", "netns", "exec", netns, *command]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**ENV, **(env or {})})


def test_a_worker_dying_before_the_cluster_forms_ends_the_job_within_seconds(photos, tmp_path):
    """Worker 1 killed as soon as it has logged its device, on its way to the cluster: msrun alone would wait for
    its scheduler until the cluster time-out (here 300 s) when the cluster has not formed; the launcher ends the
    job at once, naming the rank, how it ended and its log."""
    proc = launch(2, photos, "--config", TINY_CONFIG, "--output_dir", tmp_path,
                  env={"IPT_MASTER_PORT": str(free_port()), "IPT_CLUSTER_TIMEOUT": "300"})
    try:
        logs = tmp_path / "logs"
        wait_for(lambda: " INFO device_target " in "".join(p.read_text() for p in logs.glob("*/worker_1.log")),
                 proc, 120, "worker 1's first log line")
        os.kill(worker_pid(1, tmp_path), signal.SIGKILL)
        killed = time.monotonic()
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert time.monotonic() - killed < 60, "the job waited for the cluster time-out"
    (log,) = (tmp_path / "logs").glob("msrun_*/worker_1.log")
    assert proc.returncode == 1 and err.strip().splitlines()[-1] == \
        f"error: worker rank 1 failed (killed by SIGKILL; log {log})", err[-3000:]
    assert worker_pid(0, tmp_path) is None and "Traceback" not in err


# --- two machines: two network namespaces joined by a veth pair, one launcher in each --------------------------------

@pytest.fixture
def two_machines():
    """Two network namespaces joined by a veth pair (10.77.N.1 and 10.77.N.2), made here and always removed;
    skipped where namespaces cannot be made (not root, no ip command, no namespace support)."""
    if shutil.which("ip") is None:
        pytest.skip("no ip command (iproute2): network namespaces cannot be made")
    tag = os.getpid() % 250
    names, veths = (f"ipt{tag}m0", f"ipt{tag}m1"), (f"ipt{tag}v0", f"ipt{tag}v1")
    addresses = (f"10.77.{tag}.1", f"10.77.{tag}.2")

    def ip(*args):
        return subprocess.run(["ip", *args], capture_output=True, text=True)

    made = ip("netns", "add", names[0])
    if made.returncode != 0:
        pytest.skip(f"network namespaces cannot be made here: {made.stderr.strip()}")
    try:
        steps = [("netns", "add", names[1]), ("link", "add", veths[0], "type", "veth", "peer", "name", veths[1])]
        for name, veth, address in zip(names, veths, addresses):
            steps += [("link", "set", veth, "netns", name),
                      ("-n", name, "addr", "add", f"{address}/24", "dev", veth),
                      ("-n", name, "link", "set", veth, "up"), ("-n", name, "link", "set", "lo", "up")]
        for step in steps:
            done = ip(*step)
            assert done.returncode == 0, f"ip {' '.join(step)}: {done.stderr}"
        yield names, addresses
    finally:
        for name in names:
            ip("netns", "delete", name)  # deletes the veth pair with it


def on_two_machines(two_machines, *args, env=None):
    """Start the launcher on both machines (1 worker each); returns the two launcher processes."""
    names, addresses = two_machines
    port = str(free_port())
    return [launch(1, *args, netns=name, env={"IPT_NODES": "2", "IPT_NODE_RANK": str(rank),
                                              "IPT_MASTER_ADDR": addresses[0], "IPT_MASTER_PORT": port,
                                              **(env or {})})
            for rank, name in enumerate(names)]


def finish(launchers, timeout=600):
    results = []
    for proc in launchers:
        try:
            _, err = proc.communicate(timeout=timeout)
        finally:
            proc.kill()
        results.append((proc.returncode, err))
    return results


def assert_same_checkpoint(a, b, exact=False):
    a, b = read_weights(a), read_weights(b)
    assert a.extra == b.extra and set(a.params) == set(b.params)
    for name, value in b.params.items():
        if exact:
            np.testing.assert_array_equal(a.params[name], value, err_msg=name)
        else:
            np.testing.assert_allclose(a.params[name], value, rtol=1e-5, atol=1e-5, err_msg=name)


def test_two_machines_train_like_one_launcher_with_two_workers(two_machines, one_launcher, photos, tmp_path):
    """IPT_NODES=2, node ranks 0 and 1, one worker each, output_dir shared: the step-2 checkpoint equals the one
    of one launcher with two workers."""
    results = finish(on_two_machines(two_machines, photos, "--config", TINY_CONFIG, "--output_dir", tmp_path,
                                     "--steps", 2, "--save_every", 2))
    assert [code for code, _ in results] == [0, 0], [err[-2000:] for _, err in results]
    assert_same_checkpoint(tmp_path / "ipt_pretrain_step2.ckpt", one_launcher / "ipt_pretrain_step2.ckpt")
    finished = worker_lines(tmp_path, r"rank (\d) of 2: parameters sha1 (\w+), inputs sha1 (\w+)")
    assert finished[0][0][1] == finished[1][0][1] and finished[0][0][2] != finished[1][0][2]


def test_a_killed_worker_ends_every_launcher_then_resume_is_exact(two_machines, one_launcher, photos, tmp_path):
    """Worker 1 (machine 1) killed after the step-2 checkpoint: both launchers exit non-zero within the cluster
    time-out naming rank 1; --resume auto on both machines then ends exactly where the uninterrupted run does."""
    common = ["--config", TINY_CONFIG, "--output_dir", tmp_path, "--steps", 4, "--save_every", 1]
    launchers = on_two_machines(two_machines, photos, *common, "--log_every", 1, env={"IPT_CLUSTER_TIMEOUT": "90"})
    try:
        wait_for(lambda: (tmp_path / "ipt_pretrain_step2.ckpt").exists(), launchers[1], 400, "step-2 checkpoint")
        os.kill(worker_pid(1, tmp_path), signal.SIGKILL)
        killed = time.monotonic()
        results = finish(launchers, timeout=180)
    finally:
        for proc in launchers:
            proc.kill()
    assert time.monotonic() - killed < 90, "a launcher outlived the cluster time-out"
    (log,) = (tmp_path / "logs").glob("msrun_*/worker_1.log")
    machine0, machine1 = (err.strip().splitlines()[-1] for _, err in results)
    assert [code for code, _ in results] == [1, 1], (machine0, machine1)
    lost = "error: worker rank 1 failed (the scheduler stopped hearing from it; "
    # machine 1's log is in machine 0's log folder too when both launchers started in the same second
    assert machine0 in (f"{lost}see worker_1.log on its machine)", f"{lost}log {log})"), machine0
    assert machine1 == f"error: worker rank 1 failed (killed by SIGKILL; log {log})"
    assert not (tmp_path / "ipt_pretrain_last.ckpt").exists()
    results = finish(on_two_machines(two_machines, photos, *common, "--resume", "auto"))
    assert [code for code, _ in results] == [0, 0], [err[-2000:] for _, err in results]
    assert_same_checkpoint(tmp_path / "ipt_pretrain_last.ckpt", one_launcher / "ipt_pretrain_last.ckpt", exact=True)


def test_a_machine_0_that_the_master_address_does_not_name_is_refused(two_machines, photos, tmp_path):
    """Both machines started as IPT_NODE_RANK 0: the one that IPT_MASTER_ADDR does not name would start no
    scheduler and register a second rank 0, so its launcher refuses at once, naming the cause."""
    names, addresses = two_machines
    proc = launch(1, photos, "--config", TINY_CONFIG, "--output_dir", tmp_path, netns=names[1],
                  env={"IPT_NODES": "2", "IPT_NODE_RANK": "0", "IPT_MASTER_ADDR": addresses[0],
                       "IPT_MASTER_PORT": str(free_port())})
    ((code, err),) = finish([proc], timeout=60)
    assert code == 1 and err.strip() == (
        f"error: this is machine IPT_NODE_RANK 0, which hosts the scheduler, but IPT_MASTER_ADDR {addresses[0]} "
        "is not an address of this machine: run machine 0 where IPT_MASTER_ADDR points, and give every other "
        "machine its own IPT_NODE_RANK in 1..1"), err
    assert not (tmp_path / "logs").exists()


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
