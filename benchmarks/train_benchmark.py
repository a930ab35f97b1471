"""Training-step benchmark of IPT (official sizes by default, random weights, fp32, batch 8 of 48x48 inputs).

Two MindSpore steps, each one compiled graph of src.training (Trainer.train_step), against the PyTorch model
written like the official code (``scripts/make_torch_fixtures.py``, the forward benchmark's reference) doing the same
step: forward, L1 backward, Adam (torch's default CPU threads), measured in the same run:
  finetune   single-task sr_x2 model: L1, Adam
  pretrain   the 6-task model, an sr_x2 step: L1 + 0.1 * contrastive on the body tokens, Adam over the whole model
             (the PyTorch reference step has no contrastive term: the ratio includes its cost)
Each (framework, step) runs in a fresh subprocess (``forward_benchmark.time_calls``: first call with compilation,
``--warmup`` untimed calls, median of ``--repeats`` timed calls); the two frameworks' timed steps take turns
(``forward_benchmark.run_paired``) and the ratio to PyTorch is the median over pairs of steps. Prints steps/s,
samples/s, that ratio and the cross-core round trip measured before each pair (``benchmarks/cross_core.py``: which
state of a shared host the row comes from); ``--json PATH`` also writes the results.

    .venv/bin/python benchmarks/train_benchmark.py [--steps finetune pretrain] [--batch 8] [--repeats 3] [--tiny]
"""
import argparse
import importlib.util
import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def _load(name, path):  # only to load forward_benchmark, whose load_module serves everything else
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


forward_benchmark = _load("forward_benchmark", "benchmarks/forward_benchmark.py")
progress, time_calls, median = forward_benchmark.progress, forward_benchmark.time_calls, forward_benchmark._median
STEPS = ("finetune", "pretrain")
SIX = ("sr_x2", "sr_x3", "sr_x4", "derain", "denoise_30", "denoise_50")
LR, CONTRASTIVE_WEIGHT = 5e-5, 0.1


def model_config(step, tiny):
    from src.models.ipt import IPTConfig

    return IPTConfig(tasks=SIX if step == "pretrain" else ("sr_x2",), **(forward_benchmark.TINY if tiny else {}))


def batch_arrays(batch, cfg):
    import numpy as np

    rng = np.random.default_rng(0)
    s = cfg.patch_size
    return (rng.uniform(0, 255, (batch, 3, s, s)).astype(np.float32),
            rng.uniform(0, 255, (batch, 3, 2 * s, 2 * s)).astype(np.float32))


def worker_mindspore(args):
    import numpy as np
    import mindspore as ms
    from src.config import Config
    from src.models.ipt import IPT
    from src.runtime import setup
    from src.training import Trainer

    _, form = setup(args.device_target, "float32", args.onednn_isa, graph_form=args.graph_form)
    ms.set_seed(0)
    cfg = model_config(args.step, args.tiny)
    optim = Config(lr=LR, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.0, clip_grad_norm=0.0, milestones=[],
                   gamma=0.5)
    pretrain = args.step == "pretrain"
    trainer = Trainer(IPT(cfg, graph_form=form), cfg.tasks, optim,
                      contrastive_weight=CONTRASTIVE_WEIGHT if pretrain else 0.0)
    step = trainer.train_step("sr_x2")
    lr, hr = (ms.Tensor(a) for a in batch_arrays(args.batch, cfg))

    def call():
        return step(lr, hr).asnumpy()

    out, first, times, rss, starts = time_calls(call, args, f"MindSpore {args.step} batch {args.batch}")
    if not np.isfinite(out).all():
        raise RuntimeError(f"non-finite loss {out}")
    steady = median(times)
    return {"first_call_s": first, "steady_s": steady, "compile_s": first - steady, "times_s": times, "starts": starts,
            "steps_per_s": 1 / steady, "samples_per_s": args.batch / steady, "peak_rss_gb": rss / 1e9,
            "loss": out.tolist()}


def worker_torch(args):
    import torch

    torch_ipt = forward_benchmark.load_module("torch_ipt", "scripts/make_torch_fixtures.py")
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # not the OMP_NUM_THREADS=1 that importing MindSpore sets
    torch.manual_seed(0)
    cfg = model_config(args.step, args.tiny)
    scales = [int(t.replace("sr_x", "")) if t.startswith("sr_") else 1 for t in cfg.tasks]
    net = torch_ipt.IPT(scales, cfg.num_encoder_layers, n_feats=cfg.n_feats, num_heads=cfg.num_heads).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8)
    lr, hr = (torch.from_numpy(a) for a in batch_arrays(args.batch, cfg))

    def call():
        optimizer.zero_grad()
        loss = torch.nn.functional.l1_loss(net(lr, 0), hr)
        loss.backward()
        optimizer.step()
        return loss.item()

    loss, first, times, rss, starts = time_calls(call, args,
                                                 f"PyTorch {torch.__version__} {args.step} batch {args.batch}")
    steady = median(times)
    return {"torch_version": torch.__version__, "threads": torch.get_num_threads(), "first_call_s": first,
            "steady_s": steady, "times_s": times, "starts": starts, "steps_per_s": 1 / steady,
            "samples_per_s": args.batch / steady, "peak_rss_gb": rss / 1e9, "loss": loss}


def run_step(args, step, kinds):
    """Fresh workers for ``step``, one per framework in ``kinds``, their timed steps taking turns
    (``forward_benchmark.run_paired_workers``); returns the row."""
    def command(kind, path):
        return ([sys.executable, os.path.abspath(__file__), "--_worker", kind, "--_step", step, "--batch",
                 str(args.batch), "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--device_target",
                 args.device_target, "--onednn_isa", args.onednn_isa, "--graph_form", args.graph_form,
                 "--_result", path]
                + (["--tiny"] if args.tiny else []))

    results, cross_core, ratios = forward_benchmark.run_paired_workers(kinds, command, args.repeats, step)
    row = {"step": step, "cross_core_ns": cross_core, **results}
    if ratios is not None:
        row["pair_ratios"] = ratios
        row["speed_vs_torch"] = median(ratios)
    return row


def format_table(rows, batch, tiny):
    head = (f"{'step':<9} {'compile s':>10} {'s/step':>8} {'steps/s':>8} {'samples/s':>10} {'torch samples/s':>16} "
            f"{'vs torch':>9} {'peak RSS GB':>12} {'x-core ns':>10}")
    lines = [f"IPT training step, batch {batch} of 48x48 ({'tiny test sizes' if tiny else 'official sizes'}), fp32 "
             f"graph mode, Adam; PyTorch reference: forward, L1 backward, Adam", head, "-" * len(head)]
    for r in rows:
        ms_, th = r["mindspore"], r.get("torch")
        lines.append(f"{r['step']:<9} {ms_['compile_s']:>10.1f} {ms_['steady_s']:>8.3f} {ms_['steps_per_s']:>8.3f} "
                     f"{ms_['samples_per_s']:>10.3f} "
                     + (f"{th['samples_per_s']:>16.3f} {r['speed_vs_torch']:>8.2f}x" if th else f"{'-':>16} {'-':>9}")
                     + f" {ms_['peak_rss_gb']:>12.2f} "
                     + forward_benchmark.format_ns(forward_benchmark._median_or_none(r["cross_core_ns"])))
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS), help="which training steps to time")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--warmup", type=int, default=forward_benchmark.WARMUP_CALLS,
                   help="untimed steps after the first one (see forward_benchmark.WARMUP_CALLS)")
    p.add_argument("--repeats", type=int, default=3, help="timed steps; the median is reported")
    p.add_argument("--device_target", default="CPU", choices=("CPU", "GPU", "Ascend"))
    p.add_argument("--tiny", action="store_true", help="the test suite's tiny sizes instead of the official ones")
    p.add_argument("--reference", choices=("auto", "torch", "none"), default="auto",
                   help="also time the PyTorch step (auto: when torch is installed)")
    p.add_argument("--onednn_isa", default="auto", help="CPU: src.runtime.setup's oneDNN ISA setting")
    p.add_argument("--graph_form", choices=("auto", "native", "cpu"), default="auto",
                   help="MindSpore graph form (src/models/forms.py); auto: cpu on CPU, native on GPU and Ascend")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON (atomically)")
    p.add_argument("--_worker", choices=("mindspore", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--_step", choices=STEPS, help=argparse.SUPPRESS)
    p.add_argument("--_result", help=argparse.SUPPRESS)
    p.add_argument("--_turns", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args._worker:
        args.step = args._step
        result = (worker_mindspore if args._worker == "mindspore" else worker_torch)(args)
        with open(args._result, "w") as f:
            json.dump(result, f)
        return 0
    if args.batch < 1 or args.repeats < 1 or args.warmup < 0:
        raise SystemExit("--batch and --repeats must be >= 1, --warmup >= 0")
    if args.reference == "torch" and not forward_benchmark.torch_available():
        raise SystemExit("--reference torch: PyTorch is not installed in this environment (README.md, Installation, "
                         "says how to add it)")
    with_torch = args.reference == "torch" or (args.reference == "auto" and forward_benchmark.torch_available())
    machine = forward_benchmark.describe_machine(args) if args.device_target == "CPU" else {}
    rows = []
    for step in args.steps:
        row = run_step(args, step, ("mindspore", "torch") if with_torch else ("mindspore",))
        progress(f"{step}: MindSpore {row['mindspore']['samples_per_s']:.3f} samples/s"
                 + (f", PyTorch {row['torch']['samples_per_s']:.3f}: {row['speed_vs_torch']:.2f}x (median of "
                    f"{len(row['pair_ratios'])} paired steps)" if with_torch else ""))
        rows.append(row)
    print(format_table(rows, args.batch, args.tiny))
    print("\n".join(forward_benchmark.format_machine(machine)))
    if args.json:
        forward_benchmark.write_json_atomic(args.json, {
            "batch": args.batch, "tiny": args.tiny, "device_target": args.device_target,
            "graph_form": args.graph_form, "lr": LR,
            "contrastive_weight": CONTRASTIVE_WEIGHT, "warmup": args.warmup, "repeats": args.repeats, "rows": rows,
            "machine": machine,
            "host": platform.node(), "cpu_count": os.cpu_count(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
        progress(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(forward_benchmark.run_script(main))
