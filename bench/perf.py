"""Speed and memory figures for Denoise Studio (figures, not tests): prints a Markdown table.

    .venv/bin/python bench/perf.py            # about 15 minutes on 2 cores
    .venv/bin/python bench/perf.py --quick    # smaller images, fewer steps and repeats

Rows:
- inference ms per megapixel on one image restored whole: PyTorch eager (NCHW,
  as a plain ``model(x)``), PyTorch optimised (channels_last, inference_mode),
  onnxruntime, the default path (`denoise_core.restoration`, backend "auto"), and
  BM3D (`bm3d.bm3d_rgb`, sigma 25/255) on the same image for scale;
- the bf16 network's ms per megapixel and page faults per pass with glibc's malloc as it comes and
  tuned (`denoise_core.allocator`), in alternating fresh processes;
- a 12-megapixel restore through the default path in a fresh process, malloc tuned and as it comes:
  seconds, peak RSS and the RSS left after it;
- training steps/s of the real loop with the real data pipeline (the default DataLoader
  workers, and in the main process) vs the same loop fed pre-made batches held in memory,
  interleaved every 2 steps so that load changes hit all three alike (the pipeline is not
  the bottleneck when the ratio is close to 1);
- training steps/s with 1 process (all threads, or half) and 2 gloo processes under
  torchrun (same per-process batch);
- achieved GFLOP/s of the model during inference (FLOPs counted with
  ``torch.utils.flop_counter``) next to a large matrix product's, in fp32, bf16 autocast, and
  bf16 with oneDNN's fused convolutions (`denoise_core.fused`, the bf16 backend for residual models).

The model is ``denoise_core/weights/default.pt`` when it exists, else a freshly
initialised default-config model (the output says which). Run it on an idle
machine for stable figures: everything here competes for the same cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from denoise_core.checkpoint import save_checkpoint  # noqa: E402
from denoise_core.fused import FusedUNet, fusable  # noqa: E402
from denoise_core.model import build_model  # noqa: E402
from denoise_core.restoration import DEFAULT_CHECKPOINT  # noqa: E402


def _checkpoint(tmp: Path) -> tuple[Path, str]:
    if DEFAULT_CHECKPOINT.is_file():
        return DEFAULT_CHECKPOINT, f"shipped model {DEFAULT_CHECKPOINT.relative_to(ROOT)}"
    torch.manual_seed(0)
    model = build_model({})
    path = tmp / "fresh.pt"
    save_checkpoint(path, {"model": model.state_dict(), "model_config": model.config.to_dict()})
    return path, "freshly initialised default-config model (no shipped model yet)"


def _photo(h: int, w: int, sigma: float = 25 / 255) -> tuple[np.ndarray, np.ndarray]:
    """A real photo (scikit-image's astronaut) resized to h x w, clean and noisy, float32 (H, W, 3) in [0, 1]."""
    from PIL import Image
    from skimage import data

    clean = np.asarray(Image.fromarray(data.astronaut()).resize((w, h), Image.BICUBIC), dtype=np.float32) / 255
    noise = np.random.default_rng(0).normal(0, sigma, clean.shape).astype(np.float32)
    return clean, np.clip(clean + noise, 0, 1)


def _time(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up call."""
    return _time_interleaved({"f": fn}, repeats)["f"]


def _time_interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds per function, calling them in turn ``repeats`` times (after a warm-up
    round), so that a change in the machine's load hits every variant alike."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def inference_rows(ckpt: Path, size: int, repeats: int) -> tuple[list[tuple[str, str]], dict]:
    from denoise_core.export import onnx_model_bytes
    from denoise_core.inference import OnnxRunner
    from denoise_core.inference import TorchRunner, load_runner
    from denoise_core.restoration import load_model, restore

    _, noisy = _photo(size, size)
    x = torch.from_numpy(noisy).permute(2, 0, 1)[None].contiguous()
    mp = size * size / 1e6
    eager = build_model(load_model(ckpt, "cpu").config)
    eager.load_state_dict(load_model(ckpt, "cpu").state_dict())
    eager.eval()
    if eager.config.noise_map:  # the network's own input: the photo and its noise map (sigma 25 reads 1)
        x = torch.cat([x, torch.ones_like(x[:, :1])], 1)

    def run_eager():
        with torch.inference_mode():
            eager(x)

    optimised = build_model(eager.config)
    optimised.load_state_dict(eager.state_dict())
    optimised = TorchRunner(optimised.eval().to(memory_format=torch.channels_last))
    onnx = OnnxRunner(onnx_model_bytes(eager))
    default = load_runner(ckpt, "auto", "auto")
    t = _time_interleaved({
        "torch eager": run_eager,
        "torch channels_last": lambda: optimised(x),
        "onnxruntime": lambda: onnx(x),
        f"default path (restore(), backend {default.backend})": lambda: restore(noisy, ckpt),
    }, repeats)
    import bm3d

    t["cbm3d (bm3d package, sigma 25)"] = _time(lambda: bm3d.bm3d_rgb(noisy, 25 / 255), max(1, repeats // 2))
    base = t["torch eager"]
    rows = [(f"inference {name}, {size}x{size} whole", f"{s / mp * 1000:,.0f} ms/MP ({base / s:.2f}x eager)") for name, s in t.items()]
    return rows, {"seconds": t, "x": x, "model": eager, "mp": mp, "default_backend": default.backend}


def flops_rows(info: dict, repeats: int) -> list[tuple[str, str]]:
    from torch.utils.flop_counter import FlopCounterMode

    model, x = info["model"], info["x"]
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    flops = counter.get_total_flops()
    rows = [("model FLOPs (convolutions)", f"{flops / 1e9 / info['mp']:.0f} GFLOP per megapixel")]

    def matmul_gflops(dtype: torch.dtype) -> float:
        n = 2048
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        return 2 * n**3 / _time(lambda: a @ b, max(3, repeats)) / 1e9

    mm32 = matmul_gflops(torch.float32)
    for name in ("torch channels_last", "onnxruntime"):
        achieved = flops / info["seconds"][name] / 1e9
        rows.append((f"achieved fp32, {name}", f"{achieved:.1f} GFLOP/s = {achieved / mm32:.0%} of a 2048^3 fp32 matmul ({mm32:.0f} GFLOP/s)"))
    mm16 = matmul_gflops(torch.bfloat16)
    bf = build_model(model.config)
    bf.load_state_dict(model.state_dict())
    bf = bf.eval().to(memory_format=torch.channels_last)
    xc = x.contiguous(memory_format=torch.channels_last)

    def run_bf16():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return bf(xc)

    seconds = _time(run_bf16, repeats)
    with torch.inference_mode():
        err = (run_bf16().float() - model(x)).abs().max().item()
    achieved = flops / seconds / 1e9
    rows.append(("achieved bf16 (autocast), torch channels_last",
                 f"{achieved:.1f} GFLOP/s = {achieved / mm16:.0%} of a 2048^3 bf16 matmul ({mm16:.0f} GFLOP/s); "
                 f"{seconds / info['mp'] * 1000:,.0f} ms/MP; max abs error vs fp32 {err:.3f}"))
    if fusable(bf):
        fused = FusedUNet(model)
        auto_seconds, seconds = seconds, _time(lambda: fused(xc), repeats)
        with torch.inference_mode():
            err = (fused(xc) - model(x)).abs().max().item()
        achieved = flops / seconds / 1e9
        rows.append(("achieved bf16 (oneDNN fused conv+ReLU, conv+add; the bf16 backend), torch",
                     f"{achieved:.1f} GFLOP/s = {achieved / mm16:.0%} of a 2048^3 bf16 matmul ({mm16:.0f} GFLOP/s); "
                     f"{seconds / info['mp'] * 1000:,.0f} ms/MP = {auto_seconds / seconds:.2f}x autocast; "
                     f"max abs error vs fp32 {err:.3f}"))
    return rows


RSS_CHILD = """
import json, resource, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from denoise_core.restoration import restore
from denoise_core.inference import load_runner
h, w = int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(0)
yy, xx = np.mgrid[0:h, 0:w]
img = (127 + 60 * np.sin(xx / 37.0)[..., None] * np.cos(yy / 53.0)[..., None] + rng.normal(0, 25, (h, w, 3))).clip(0, 255).astype(np.uint8)
del yy, xx
run = load_runner(sys.argv[2], "auto", "auto")
t = time.perf_counter()
out = restore(img, sys.argv[2])
seconds = time.perf_counter() - t
del out
import os
rss_after = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_after_mb": rss_after, "backend": run.backend, "shared_stats": bool(run.stat_layout)}))
"""


def _child_env(malloc: str) -> dict[str, str]:
    """The environment for a child process with ``malloc`` "tuned" (`denoise_core.allocator`) or "system"."""
    env = dict(os.environ)
    env.pop("DENOISE_MALLOC", None)
    if malloc == "system":
        env["DENOISE_MALLOC"] = "system"
    return env


def rss_rows(ckpt: Path, h: int, w: int) -> list[tuple[str, str]]:
    rows = []
    mp = h * w / 1e6
    for malloc in ("tuned", "system"):
        proc = subprocess.run([sys.executable, "-c", RSS_CHILD, str(ROOT), str(ckpt), str(h), str(w)],
                              capture_output=True, text=True, check=True, env=_child_env(malloc))
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append((f"restore {w}x{h} ({mp:.0f} MP), default path ({r['backend']}), fresh process, malloc {malloc}",
                     f"peak RSS {r['peak_rss_mb']:,.0f} MB, {r['rss_after_mb']:,.0f} MB after; {r['seconds']:.0f} s = "
                     f"{r['seconds'] / mp * 1000:,.0f} ms/MP "
                     + ("(512 px tiles, 2 passes: shared statistics, then output)" if r["shared_stats"]
                        else "(512 px tiles, one pass: the model has no global statistics to share)")))
    return rows


MALLOC_CHILD = """
import json, resource, statistics, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from denoise_core.inference import load_runner
size, repeats = int(sys.argv[3]), int(sys.argv[4])
run = load_runner(sys.argv[2], "cpu", "bf16")
x = np.random.default_rng(0).random((1, 3 + run.noise_map, size, size), dtype=np.float32)
run(x)
times, f0 = [], resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(repeats):
    t = time.perf_counter()
    run(x)
    times.append(time.perf_counter() - t)
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / repeats
print(json.dumps({"seconds": statistics.median(times), "faults": faults}))
"""


def malloc_rows(ckpt: Path, size: int, repeats: int, rounds: int) -> list[tuple[str, str]]:
    """The bf16 network's time per pass with glibc's malloc as it comes and tuned (`denoise_core.allocator`):
    fresh processes, alternated ``rounds`` times so that load changes hit both alike."""
    from denoise_core.device import cpu_has_bf16

    if not cpu_has_bf16():
        return [("malloc tuned vs system", "skipped: no native bf16 on this CPU")]
    got: dict[str, list[dict]] = {"system": [], "tuned": []}
    for _ in range(rounds):
        for malloc in got:
            proc = subprocess.run([sys.executable, "-c", MALLOC_CHILD, str(ROOT), str(ckpt), str(size), str(repeats)],
                                  capture_output=True, text=True, check=True, env=_child_env(malloc))
            got[malloc].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    mp = size * size / 1e6
    med = {k: statistics.median(r["seconds"] for r in v) for k, v in got.items()}
    rows = [(f"bf16 network {size}x{size}, malloc {k}, {rounds} fresh processes",
             f"{med[k] / mp * 1000:,.0f} ms/MP; {statistics.median(r['faults'] for r in v):,.0f} page faults per pass")
            for k, v in got.items()]
    rows.append(("malloc tuned vs system (same run)", f"{med['system'] / med['tuned']:.2f}x faster"))
    return rows


def pipeline_rows(steps: int, rounds: int) -> list[tuple[str, str]]:
    from torch.utils.data import DataLoader

    from denoise_core.samples import sample_image_dir
    from denoise_core.training import TrainConfig, Trainer

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(image_dir=str(sample_image_dir()), save_path=tmp, steps_per_epoch=steps,
                          epochs=1 + 3 * rounds, log_every=10**6, warmup_steps=1)
        trainer = Trainer(cfg)
        trainer.setup()
        real = trainer.loader
        workers = real.num_workers
        inline = DataLoader(real.dataset, batch_sampler=real.batch_sampler, num_workers=0)
        trainer.epoch_sampler.set_epoch(0)
        premade = list(inline)  # the same loop, fed batches already in memory
        loaders = {f"real pipeline ({workers} worker)": real, "real pipeline (in the main process)": inline, "pre-made batches": premade}
        epoch = 1
        trainer._train_epoch(epoch, None)  # warm-up: starts the workers, first-call allocations
        seconds = dict.fromkeys(loaders, 0.0)
        for _ in range(rounds):
            for name, loader in loaders.items():
                epoch += 1
                trainer.loader = loader
                t = time.perf_counter()
                trainer._train_epoch(epoch, None)
                seconds[name] += time.perf_counter() - t
    rate = {k: steps * rounds / v for k, v in seconds.items()}
    ref = rate["pre-made batches"]
    return [(f"training steps/s, batch {cfg.batch_size} x {cfg.patch_size} px, width {cfg.width}",
             "; ".join(f"{k} {v:.2f}" + ("" if k == "pre-made batches" else f" (ratio {v / ref:.2f})") for k, v in rate.items()))]


DDP_DRIVER = """
import json, sys
from denoise_core.training import train
train(sys.argv[1], save_path=sys.argv[2], **json.loads(sys.argv[3]))
"""


def ddp_rows(steps: int) -> list[tuple[str, str]]:
    from denoise_core.history import read_events
    from denoise_core.samples import sample_image_dir

    cores = os.cpu_count() or 1
    opts = dict(epochs=1, steps_per_epoch=steps, log_every=1, warmup_steps=1, num_workers=0, batch_size=8, val_max_crops=22)
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        driver = Path(tmp) / "driver.py"
        driver.write_text(DDP_DRIVER)
        for n, threads in ((1, cores), (1, max(1, cores // 2)), (2, max(1, cores // 2))):
            out = Path(tmp) / f"run{n}_{threads}"
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
            subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n),
                            str(driver), str(sample_image_dir()), str(out), json.dumps(opts)],
                           env=env, check=True, capture_output=True)
            t = [e["seconds"] for e in read_events(out) if e["type"] == "step"]
            result[n, threads] = (len(t) - 1) / (t[-1] - t[0])  # from the first step's end: no start-up
    b = opts["batch_size"]
    return [(f"torchrun gloo, batch {b} per process, width 32",
             "; ".join(f"{n} process{'es' if n > 1 else ''} x {k} thread{'s' if k > 1 else ''}: {v:.2f} steps/s ({v * n * b:.1f} images/s)"
                       for (n, k), v in result.items()))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller image, fewer steps and repeats")
    parser.add_argument("--checkpoint", default=None, help="model to measure (default: the shipped one, else a fresh model)")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: inference,flops,malloc,rss,pipeline,ddp")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    size, repeats, steps, rounds = (256, 2, 2, 4) if args.quick else (512, 5, 2, 12)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, what = (Path(args.checkpoint), f"checkpoint {args.checkpoint}") if args.checkpoint else _checkpoint(Path(tmp))
        print(f"model: {what}")
        print(f"machine: {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads, "
              f"{torch.backends.cpu.get_cpu_capability()}), load average at start {os.getloadavg()[0]:.1f}")
        rows: list[tuple[str, str]] = []
        info = None
        if not skip & {"inference", "flops"}:
            r, info = inference_rows(ckpt, size, repeats)
            rows += r if "inference" not in skip else []
        if info is not None and "flops" not in skip:
            rows += flops_rows(info, repeats)
        if "malloc" not in skip:
            rows += malloc_rows(ckpt, size, repeats + 2, 3 if args.quick else 5)
        if "rss" not in skip:
            rows += rss_rows(ckpt, 3000, 4000)
        if "pipeline" not in skip:
            rows += pipeline_rows(steps, rounds)
        if "ddp" not in skip:
            rows += ddp_rows(24 if not args.quick else 8)
    print(f"load average at end {os.getloadavg()[0]:.1f}\n")
    width = max(len(k) for k, _ in rows)
    print(f"| {'measure':<{width}} | figure |\n|{'-' * (width + 2)}|--------|")
    for k, v in rows:
        print(f"| {k:<{width}} | {v} |")


if __name__ == "__main__":
    main()
