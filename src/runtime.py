"""Setting up MindSpore for an entry script: graph mode, the device, and the fastest CPU kernels for this CPU;
and data-parallel training's communication (``init_data_parallel``).

Every entry point (eval, train, export, convert, the benchmarks, the test suite) calls ``setup()`` once, before any
kernel runs.

The device: ``device_target`` is ``auto`` (Ascend when MindSpore can use an Ascend device here, else GPU, else CPU)
or one of them. What MindSpore can use is asked from MindSpore itself (``mindspore.device_context.ascend`` / ``.gpu``:
``is_available()``, whether this MindSpore package has the backend, then ``device_count()``, the devices it sees).
``setup()`` logs the choice and the reason as its first line; a device MindSpore cannot use here is a ConfigError
naming the ones it can, raised before anything else is set up.

The CPU kernel choice: on CPUs with AVX-512, MindSpore 2.10's oneDNN (v3.10) runs plain-layout (NCHW) convolutions
with ``jit_uni_ncsp:conv+ref:any``, a reference kernel many times slower than its GEMM-based
convolution. Capping oneDNN's instruction set at AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``) makes it pick
``x64:gemm:jit`` again, while MatMul keeps its speed (``gemm:jit:f32`` instead of ``brg_matmul:avx512_core``;
measured in benchmarks/README.md). oneDNN reads the variable when it first dispatches a kernel, not when MindSpore
is imported, so setting it in ``setup()`` works as long as nothing ran before (tested in a real subprocess).
Precedence: ``ONEDNN_MAX_CPU_ISA`` already in the environment (the user's) > the ``onednn_isa`` config key
(``auto``: cap at AVX2 on AVX-512 CPUs; ``off``: leave oneDNN alone; an ISA name such as ``AVX2``: force it).
"""
import logging
import os
import re

import mindspore as ms

from src.errors import ConfigError
from src.mindspore_log import quiet_known_warnings

DEVICES = ("Ascend", "GPU", "CPU")  # device_target auto: the first one MindSpore can use
ONEDNN_ISA_VAR = "ONEDNN_MAX_CPU_ISA"
# Values oneDNN 3.x accepts for ONEDNN_MAX_CPU_ISA (upper case).
ONEDNN_ISAS = ("DEFAULT", "SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
               "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16", "AVX10_1_512_AMX", "AVX512_CORE_AMX",
               "AVX10_1_512_AMX_FP16", "AVX512_CORE_AMX_FP16")
log = logging.getLogger("ipt")
cpu_kernels = None  # what setup() decided about the CPU kernels in this process (its log line)
device = None  # the device setup() chose in this process


def cpu_description(cpuinfo_path="/proc/cpuinfo"):
    """(model name, set of ISA flags) of this machine's first CPU, from /proc/cpuinfo; ('unknown', set()) elsewhere."""
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return "unknown", set()
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.M)
    return (model.group(1).strip() if model else "unknown"), set(flags.group(1).split() if flags else ())


def choose_onednn_isa(setting, flags, environ):
    """The ``ONEDNN_MAX_CPU_ISA`` value to set (None: set nothing) and why, for the ``onednn_isa`` config value
    ``setting`` on a CPU with ISA ``flags``, given the process environment ``environ``."""
    setting = str(setting).strip()
    if setting.lower() not in ("auto", "off") and setting.upper() not in ONEDNN_ISAS:
        raise ConfigError(f"onednn_isa {setting!r}; expected auto, off or a oneDNN ISA name "
                          f"({', '.join(ONEDNN_ISAS)})")
    if environ.get(ONEDNN_ISA_VAR):
        return None, f"{ONEDNN_ISA_VAR}={environ[ONEDNN_ISA_VAR]} from the environment (kept)"
    if setting.lower() == "off":
        return None, "onednn_isa off: oneDNN picks its kernels itself"
    if setting.lower() != "auto":
        return setting.upper(), f"onednn_isa {setting.upper()} (forced by the configuration)"
    if "avx512f" in flags:
        return "AVX2", ("AVX-512 CPU: oneDNN capped at AVX2, since MindSpore 2.10's oneDNN runs NCHW convolutions "
                        "with a reference kernel on AVX-512 (set onednn_isa: off or ONEDNN_MAX_CPU_ISA to change)")
    return None, "no AVX-512: oneDNN's default kernels are the fast ones"


def configure_cpu_kernels(setting="auto", environ=None, cpuinfo_path="/proc/cpuinfo"):
    """Apply the oneDNN ISA choice to ``environ`` (default ``os.environ``) before the first kernel runs; returns the
    one-line description that ``setup()`` logs."""
    environ = os.environ if environ is None else environ
    model, flags = cpu_description(cpuinfo_path)
    value, why = choose_onednn_isa(setting, flags, environ)
    if value is not None:
        environ[ONEDNN_ISA_VAR] = value
    return f"CPU {model}: {why}"


def usable_devices():
    """{device: how many} of the accelerators MindSpore can use in this process, asked from
    ``mindspore.device_context.<ascend|gpu>`` (``is_available()``: the package has the backend; ``device_count()``:
    the devices it sees), plus ``{"CPU": 1}``; and {accelerator: why it cannot be used} for the others."""
    from mindspore import device_context
    found, missing = {}, {}
    disabled = logging.root.manager.disable
    logging.disable(logging.WARNING)  # MindSpore warns about every backend its package lacks: the answer says it
    try:
        for name in ("Ascend", "GPU"):
            backend = getattr(device_context, name.lower())
            if not backend.is_available():
                missing[name] = f"this MindSpore package has no {name} support"
                continue
            try:
                count = int(backend.device_count())
            except RuntimeError as exc:
                count, why = 0, str(exc).strip().splitlines()[0][:120] if str(exc).strip() else "an error"
            else:
                why = "it sees none"
            if count > 0:
                found[name] = count
            else:
                missing[name] = f"MindSpore has {name} support but no {name} device ({why})"
    finally:
        logging.disable(disabled)
    found["CPU"] = 1
    return found, missing


def choose_device(setting="auto"):
    """(device target, why) for the ``device_target`` value ``setting``: ``auto`` takes the first of DEVICES that
    MindSpore can use here; a named device must be usable. ConfigError otherwise, naming what MindSpore can use."""
    names = {d.lower(): d for d in DEVICES}
    key = str(setting).strip().lower()
    if key != "auto" and key not in names:
        raise ConfigError(f"device_target {setting!r}; expected auto, {', '.join(DEVICES[:-1])} or {DEVICES[-1]}")
    found, missing = usable_devices()
    can_use = ", ".join(f"{d} ({n} device{'s' * (n > 1)})" if d != "CPU" else d for d, n in found.items())
    version = f"MindSpore {ms.__version__}"
    if key == "auto":
        target = next(d for d in DEVICES if d in found)
        if target == "CPU":
            return target, f"device_target auto: CPU, the only device {version} can use here " \
                           f"({'; '.join(missing.values())})"
        return target, f"device_target auto: {target}, {version} sees {found[target]} {target} device(s)"
    target = names[key]
    if target not in found:
        raise ConfigError(f"device_target {target}: {version} cannot use {target} here ({missing[target]}); it can use "
                          f"{can_use}: pass --device_target auto or one of those, or install the MindSpore package "
                          f"built for {target}")
    return target, f"device_target {target} as configured ({version} can use {can_use})"


def resolve_compute_dtype(value, device_target):
    """``auto``: float16 (with dynamic loss scaling when training, as the official pre-training) on Ascend and GPU,
    float32 on CPU; other values as given."""
    if value == "auto":
        return "float32" if device_target == "CPU" else "float16"
    return value


def setup(device_target="auto", compute_dtype="float32", onednn_isa="auto", device_id=None, graph_form="auto"):
    """Graph mode on ``device_target`` (``choose_device``; ``device_id``: which device, None = MindSpore's choice),
    with the CPU kernel choice above on CPU; returns (the MindSpore dtype for ``compute_dtype``, ``auto`` resolved
    for the device by ``resolve_compute_dtype``, and the graph form ``graph_form`` resolves to: ``native`` or
    ``cpu``, see ``src/models/forms.py``). The device chosen is ``device`` afterwards. Logs to stderr: first the
    device chosen and why, then which graph form runs in which precision."""
    from src.models.forms import check_compute_dtype, resolve_graph_form
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    quiet_known_warnings()  # MindSpore's warnings about its own API that the project triggers (IPT_DEBUG=1 shows them)
    target, why = choose_device(device_target)
    compute_dtype = resolve_compute_dtype(compute_dtype, target)
    form, form_why = resolve_graph_form(graph_form, target, compute_dtype)
    dtype = check_compute_dtype(compute_dtype, target, form)
    global device
    device = target
    log.info("%s; %s, compute_dtype %s", why, form_why, compute_dtype)
    if target == "CPU":
        global cpu_kernels
        cpu_kernels = configure_cpu_kernels(onednn_isa)
        log.info("%s", cpu_kernels)
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        ms.set_device(target, device_id)
    except RuntimeError as e:
        reason = str(e).strip().split(". ")[0]
        raise ConfigError(f"device_target {target} is not usable with this MindSpore installation: {reason}. "
                          "Install the MindSpore package built for it, or use another --device_target") from None
    return dtype, form


def launched_distributed():
    """How this process was started: "msrun" (MindSpore's dynamic cluster: MS_ROLE is set), "rank_table" (an
    HCCL rank table: RANK_TABLE_FILE with RANK_SIZE > 1) or None (a standalone process)."""
    if os.environ.get("MS_ROLE"):
        return "msrun"
    if os.environ.get("RANK_TABLE_FILE") and int(os.environ.get("RANK_SIZE", "1") or 1) > 1:
        return "rank_table"
    return None


def launched_world_size():
    """The number of data-parallel processes the launcher started (MS_WORKER_NUM under msrun, RANK_SIZE with a rank
    table, 1 standalone), known before communication is initialised."""
    how = launched_distributed()
    if how is None:
        return 1
    return int(os.environ.get("MS_WORKER_NUM" if how == "msrun" else "RANK_SIZE", "1") or 1)


def local_process_count():
    """The training processes on this machine: IPT_LOCAL_WORKERS (set by the launch scripts), else the launcher's
    world size (all machines' processes: an overestimate with several machines), 1 standalone."""
    value = os.environ.get("IPT_LOCAL_WORKERS", "")
    return int(value) if value.isdigit() and int(value) > 0 else launched_world_size()


def distributed_device_id():
    """The device a rank-table process must use (its DEVICE_ID); None otherwise (msrun negotiates it)."""
    if launched_distributed() == "rank_table":
        return int(os.environ.get("DEVICE_ID", "0"))
    return None


def init_data_parallel():
    """(rank, world size) of this process; (0, 1) when standalone. Under msrun or a rank table: initialises
    communication (``mindspore.communication.init``); the gradients are averaged over the ranks by the step's own
    ``nn.DistributedGradReducer`` (mean, degree = world size), MindSpore's data-parallel set-up for a functional
    training step, which needs no auto-parallel context (``set_auto_parallel_context`` is marked for deprecation).
    Call after ``setup``. A cluster that does not form is a ConfigError naming this process's view of it."""
    how = launched_distributed()
    if how is None:
        return 0, 1
    from mindspore.communication import get_group_size, get_rank, init
    try:
        init()
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise ConfigError(f"data-parallel start ({how}) failed: {reason[:160]}{cluster_hint(how, reason)}") from None
    rank, size = get_rank(), get_group_size()
    if size != launched_world_size():
        raise ConfigError(f"this worker was started for {launched_world_size()} workers in all but its cluster has "
                          f"{size}{cluster_hint(how, 'size')}")
    log.info("data parallel (%s): rank %d of %d", how, rank, size)
    return rank, size


def cluster_hint(how, reason="", environ=None):
    """The likely cause of a cluster that did not form as launched, from MindSpore's ``reason``, with this
    process's view of the cluster and what to check (msrun only)."""
    environ = os.environ if environ is None else environ
    if how != "msrun":
        return ""
    nodes, node_rank = environ.get("IPT_NODES", "?"), environ.get("IPT_NODE_RANK", "?")
    twice = re.search(r"Repeated registration node: (\d+)", reason)
    if twice:
        cause = (f"rank {twice.group(1)} was started twice: two machines run with the same IPT_NODE_RANK "
                 f"{node_rank}")
    elif "timed out" in reason or "not successfully spawned" in reason:
        cause = "not every worker joined within the cluster time-out (IPT_CLUSTER_TIMEOUT)"
    else:
        cause = "the machines do not agree on the cluster"
    return (f"; {cause} (this process: rank {environ.get('MS_NODE_ID', '?')} of MS_WORKER_NUM "
            f"{environ.get('MS_WORKER_NUM', '?')}, IPT_NODE_RANK {node_rank} of IPT_NODES {nodes}, scheduler "
            f"{environ.get('MS_SCHED_HOST', '?')}:{environ.get('MS_SCHED_PORT', '?')}): every machine must start the "
            f"launcher with the same WORKERS, IPT_NODES, IPT_MASTER_ADDR and IPT_MASTER_PORT, each with its own "
            f"IPT_NODE_RANK, and reach the scheduler")


def parse_onednn_verbose(text):
    """(ISA line, convolution implementation) from oneDNN verbose output, e.g. ('Intel AVX2', 'x64:gemm:jit');
    None for what is not in it."""
    isa = re.search(r"^onednn_verbose,(?:v1,)?info,cpu,isa:(.+)$", text, re.M)
    conv = re.search(r"^onednn_verbose,(?:v1,)?(?:primitive,)?exec,cpu,convolution,([^,]+),", text, re.M)
    return (isa.group(1).strip() if isa else None), (conv.group(1) if conv else None)


def probe(onednn_isa="auto"):
    """Run ``setup()`` and one official-size head convolution (8x64x48x48, 5x5) with oneDNN's verbose log on; returns
    what was in effect: CPU model, AVX-512 or not, the ISA setting, oneDNN's ISA line, the convolution kernel it
    picked and that convolution's speed. Meant for a fresh process (``python -m src.runtime``): oneDNN reads its
    variables once."""
    import sys
    import tempfile
    import time

    import numpy as np
    from mindspore import nn

    model, flags = cpu_description()
    os.environ["ONEDNN_VERBOSE"] = "1"
    setup("CPU", onednn_isa=onednn_isa)
    conv = nn.Conv2d(64, 64, 5, pad_mode="same", has_bias=True)
    x = ms.Tensor(np.random.default_rng(0).standard_normal((8, 64, 48, 48), np.float32))
    with tempfile.TemporaryFile("w+") as capture:  # oneDNN writes its log to the C stdout
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(capture.fileno(), 1)
        try:
            conv(x).asnumpy()
            t0 = time.perf_counter()
            conv(x).asnumpy()
            seconds = time.perf_counter() - t0
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        capture.seek(0)
        isa, impl = parse_onednn_verbose(capture.read())
    return {"cpu_model": model, "avx512": "avx512f" in flags, "setting": cpu_kernels,
            ONEDNN_ISA_VAR: os.environ.get(ONEDNN_ISA_VAR), "onednn_isa": isa, "conv_impl": impl,
            "conv_gflops": round(2 * 8 * 64 * 64 * 25 * 48 * 48 / seconds / 1e9, 1)}


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Print the CPU kernel set-up in effect (python -m src.runtime)")
    parser.add_argument("--onednn_isa", default="auto")
    print(json.dumps(probe(parser.parse_args().onednn_isa)))
