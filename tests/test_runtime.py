"""The runtime set-up: the device (auto and named devices; MindSpore's availability query is stood in for only where
a test needs an accelerator this machine lacks), and the CPU kernel choice: detection on recorded CPUs and oneDNN
logs, and the remedy in effect in a real process (python -m src.runtime runs setup() and one official-size
convolution with oneDNN's verbose log)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from src.errors import ConfigError
from src.runtime import ONEDNN_ISA_VAR, choose_onednn_isa, configure_cpu_kernels, cpu_description, \
    parse_onednn_verbose

ROOT = Path(__file__).resolve().parents[1]

# Recorded /proc/cpuinfo flags (abridged to the ISA part): this project's two kinds of machine.
EPYC_AVX512 = set("fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512ifma avx512cd avx512bw "
                  "avx512vl avx512_bf16 avx512vbmi avx512_vbmi2 avx512_vnni avx512_bitalg avx512_vpopcntdq".split())
EPYC_AVX2 = set("fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi1 bmi2 sha_ni".split())

# Recorded oneDNN 3.10 verbose lines (MindSpore 2.10, AMD EPYC family 25 model 17).
VERBOSE_AVX512 = """onednn_verbose,v1,info,oneDNN v3.10.1 (commit N/A)
onednn_verbose,v1,info,cpu,isa:Intel AVX-512 with Intel DL Boost and bfloat16 support
onednn_verbose,v1,primitive,exec,cpu,convolution,jit_uni_ncsp:conv+ref:any,forward_training,src:f32::blocked:abcd::f0 \
wei:f32::blocked:abcd::f0 bia:undef::undef::: dst:f32::blocked:abcd::f0,,alg:convolution_direct,mb8_ic64oc64_ih48oh48\
kh5sh1dh0ph2_iw48ow48kw5sw1dw0pw2,3095.97
"""
VERBOSE_CAPPED = """onednn_verbose,v1,info,cpu,runtime:threadpool,nthr:2
onednn_verbose,v1,info,cpu,isa:Intel AVX2
onednn_verbose,v1,primitive,exec,cpu,convolution,x64:gemm:jit,forward_training,src:f32::blocked:abcd::f0 \
wei:f32::blocked:abcd::f0 bia:undef::undef::: dst:f32::blocked:abcd::f0,,alg:convolution_direct,mb8_ic64oc64_ih48oh48\
kh5sh1dh0ph2_iw48ow48kw5sw1dw0pw2,26.19
"""


def test_auto_caps_avx512_only():
    assert choose_onednn_isa("auto", EPYC_AVX512, {})[0] == "AVX2"
    assert choose_onednn_isa("auto", EPYC_AVX2, {})[0] is None
    assert choose_onednn_isa("auto", set(), {})[0] is None  # unknown CPU: leave oneDNN alone


def test_environment_wins_then_config():
    value, why = choose_onednn_isa("auto", EPYC_AVX512, {ONEDNN_ISA_VAR: "AVX512_CORE"})
    assert value is None and "AVX512_CORE from the environment" in why
    assert choose_onednn_isa("AVX2", EPYC_AVX2, {ONEDNN_ISA_VAR: "SSE41"})[0] is None
    assert choose_onednn_isa("off", EPYC_AVX512, {})[0] is None
    assert choose_onednn_isa("avx512_core", EPYC_AVX2, {})[0] == "AVX512_CORE"  # forced, whatever the CPU


def test_bad_setting_is_a_config_error():
    with pytest.raises(ConfigError, match="onednn_isa 'fastest'"):
        choose_onednn_isa("fastest", EPYC_AVX512, {})


def test_configure_sets_the_variable_in_the_given_environment(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: " + " ".join(sorted(EPYC_AVX512))
                       + "\n")
    assert cpu_description(cpuinfo) == ("AMD EPYC 9R14", EPYC_AVX512)
    env = {}
    line = configure_cpu_kernels("auto", env, cpuinfo)
    assert env == {ONEDNN_ISA_VAR: "AVX2"} and line.startswith("CPU AMD EPYC 9R14: AVX-512 CPU")
    env = {}
    configure_cpu_kernels("off", env, cpuinfo)
    assert env == {}
    assert cpu_description(tmp_path / "missing") == ("unknown", set())


def test_parse_recorded_verbose_logs():
    assert parse_onednn_verbose(VERBOSE_AVX512) == ("Intel AVX-512 with Intel DL Boost and bfloat16 support",
                                                    "jit_uni_ncsp:conv+ref:any")
    assert parse_onednn_verbose(VERBOSE_CAPPED) == ("Intel AVX2", "x64:gemm:jit")
    assert parse_onednn_verbose("nothing here") == (None, None)


def probe(*args, env_isa=None):
    import os
    env = {k: v for k, v in os.environ.items() if k not in (ONEDNN_ISA_VAR, "ONEDNN_VERBOSE")}
    if env_isa:
        env[ONEDNN_ISA_VAR] = env_isa
    proc = subprocess.run([sys.executable, "-m", "src.runtime", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_remedy_in_effect_where_the_kernels_run():
    """A fresh process through setup(): oneDNN must not pick the reference-backed convolution, on any CPU."""
    got = probe()
    assert got["onednn_isa"] and got["conv_impl"], got
    assert "ref" not in got["conv_impl"], got
    if got["avx512"]:
        assert got[ONEDNN_ISA_VAR] == "AVX2" and got["onednn_isa"] == "Intel AVX2", got


def test_off_and_environment_reach_onednn():
    """``--onednn_isa off`` leaves oneDNN's own choice (on AVX-512 CPUs: AVX-512 and the slow convolution, the trap
    this set-up avoids); a variable in the environment is what oneDNN uses."""
    got = probe("--onednn_isa", "off")
    assert got[ONEDNN_ISA_VAR] is None
    if got["avx512"]:
        assert "AVX-512" in got["onednn_isa"], got
    got = probe(env_isa="SSE41")
    assert got[ONEDNN_ISA_VAR] == "SSE41" and "SSE4.1" in got["onednn_isa"], got


# --- the device: device_target auto and named devices ---------------------------------------------------------------

def fake_backends(monkeypatch, ascend=None, gpu=None):
    """Stand-ins for MindSpore's availability query only (``device_context.<backend>.is_available`` and
    ``device_count``), since this machine has neither accelerator: None = not in the package, an int = the devices
    it sees, an exception = what device_count raises."""
    from mindspore import device_context

    for name, count in (("ascend", ascend), ("gpu", gpu)):
        backend = getattr(device_context, name)
        monkeypatch.setattr(backend, "is_available", lambda count=count: count is not None)

        def device_count(count=count):
            if isinstance(count, Exception):
                raise count
            return count
        monkeypatch.setattr(backend, "device_count", device_count)


@pytest.mark.parametrize("ascend, gpu, chosen, why", [
    (None, None, "CPU", "the only device MindSpore 2.10.0 can use here (this MindSpore package has no Ascend "
                        "support; this MindSpore package has no GPU support)"),
    (None, 2, "GPU", "MindSpore 2.10.0 sees 2 GPU device(s)"),
    (8, 2, "Ascend", "MindSpore 2.10.0 sees 8 Ascend device(s)"),
    (0, None, "CPU", "MindSpore has Ascend support but no Ascend device (it sees none)"),
    (RuntimeError("Device Ascend not exist."), 1, "GPU", "sees 1 GPU device(s)"),
])
def test_auto_takes_ascend_then_gpu_then_cpu(monkeypatch, ascend, gpu, chosen, why):
    import mindspore as ms
    from src.runtime import choose_device

    fake_backends(monkeypatch, ascend, gpu)
    target, reason = choose_device("auto")
    assert target == chosen and reason.startswith(f"device_target auto: {chosen}")
    assert why.replace("2.10.0", ms.__version__) in reason


def test_a_named_device_must_be_usable(monkeypatch):
    from src.runtime import choose_device

    fake_backends(monkeypatch, None, 2)
    assert choose_device("gpu") == ("GPU", "device_target GPU as configured (MindSpore "
                                           f"{__import__('mindspore').__version__} can use GPU (2 devices), CPU)")
    with pytest.raises(ConfigError, match=r"device_target Ascend: MindSpore \S+ cannot use Ascend here \(this "
                                          r"MindSpore package has no Ascend support\); it can use GPU \(2 devices\), "
                                          r"CPU: pass --device_target auto"):
        choose_device("Ascend")
    with pytest.raises(ConfigError, match=r"device_target 'TPU'; expected auto, Ascend, GPU or CPU"):
        choose_device("TPU")


def train_stderr(*args):
    proc = subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    return proc.returncode, [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("[WARNING]")]


def test_train_says_first_which_device_auto_chose(tmp_path):
    """The real query on this machine: train.py's first log line is the device auto chose and why, then the graph
    form and precision."""
    from src.runtime import choose_device

    status, lines = train_stderr("--data.train_dir", str(tmp_path / "missing"), "--output_dir", str(tmp_path))
    assert status == 2 and lines[-1] == f"error: {tmp_path}/missing: no such file or directory", lines
    assert f" INFO {choose_device('auto')[1]}; graph_form auto: cpu on CPU" in lines[0], lines


def test_train_refuses_a_device_mindspore_cannot_use_before_reading_data(tmp_path):
    from src.runtime import DEVICES, usable_devices

    lacking = [d for d in DEVICES if d not in usable_devices()[0]]
    if not lacking:
        pytest.skip("MindSpore can use every device here")
    status, lines = train_stderr("--device_target", lacking[0], "--data.train_dir", str(tmp_path / "missing"))
    assert status == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: device_target {lacking[0]}: MindSpore") and "it can use" in lines[0], lines
    status, lines = train_stderr("--device_target", "TPU", "--data.train_dir", str(tmp_path / "missing"))
    assert status == 2 and lines == ["error: device_target 'TPU'; expected auto, Ascend, GPU or CPU"], lines
