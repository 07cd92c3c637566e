"""Does the adaptive weighting help? Schemes × seeds, trained at equal budget, scored on every setting.

    .venv/bin/python bench/ablation.py run       # train + benchmark every (scheme, seed) not yet in the CSV
    .venv/bin/python bench/ablation.py report    # statistics, table and chart from the CSV

``run`` trains each (scheme, seed) with the same recipe (the stage-6 default's, without its noise prior, which is
itself a fixed weighting), data (CBSD432), validation split (from the training seed) and step budget; the schemes differ only
in how each sample's degradation is drawn (`SCHEMES`). Each finished training's ``best.pt`` is benchmarked on every
setting (methods identity and model) by the benchmark itself, with the same benchmark seed for all, so the degraded
inputs are the same images and the comparison is paired; its rows are merged into ``docs/results/ablation.csv``
(scheme, seed, setting, image, psnr, ssim; the degraded inputs as scheme ``input``), which is what the report reads
and what carries the experiment across machines. Trainings run ``--jobs`` at a time, one thread each, and resume:
rerunning ``run`` skips every (scheme, seed) whose rows are complete, continues a training from its ``last.pt`` and
a benchmark from its rows so far.

``report`` computes, per setting, each scheme's mean PSNR and its paired per-image difference to uniform with a 95 %
bootstrap interval (images resampled, both seeds of an image kept together: seeds pooled), the same for the mean over
the degraded settings, the worst setting's PSNR and the worst gain over the input, and the seed-to-seed spread (the
largest difference between the two seeds' means of any scheme on that setting). It writes ``ablation.md``, a chart
``ablation.png`` and the section of docs/design.md between ``<!-- ablation:start -->`` and ``<!-- ablation:end -->``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# Run as a script from anywhere: make the repository's package importable.
ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "design.md"  # its section between the ablation markers is the report's table
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from filelock import FileLock  # noqa: E402

from denoise_core.bench import DEGRADED, SETTINGS, parse_names, run_benchmark  # noqa: E402
from denoise_core.checkpoint import atomic_write_text  # noqa: E402

log = logging.getLogger("ablation")

COLUMNS = ["scheme", "seed", "setting", "image", "psnr", "ssim"]
INPUT = "input"  # the degraded input's rows (the benchmark's identity method)
BASELINE = "uniform"

# How each scheme draws a sample's degradation; everything else is RECIPE.
SCHEMES: dict[str, list[str]] = {
    # Fixed, equal weights: the honest baseline.
    "uniform": ["--uniform"],
    # Today's rule: weights = softmax of relative difficulty (output loss / input loss) over its mean, once an epoch.
    "softmax": ["--weight-rule", "softmax"],
    # Online group DRO (Sagawa et al. 2020; the minimax sampling over noise levels of Gnanasambandam & Chan 2020,
    # "One Size Fits All"): exponentiated-gradient ascent on the same relative difficulties, so the weights keep
    # moving toward the degradation the model repairs least for as long as it stays the worst. Step 0.025 an epoch:
    # over the 60 updates a degradation twice as hard as the mean gains e^1.5 = 4.5x the weight of an average one
    # (e^0.75 = 2.1x at half-time), against the e^1 = 2.7x the softmax rule at temperature 1 gives it at once.
    # Not tuned: there was no budget for a sweep.
    "dro": ["--weight-rule", "dro", "--dro-step", "0.025"],
}

DEGRADATIONS = "gaussian_noise,poisson_noise,salt_pepper,gaussian_blur,motion_blur,jpeg,low_light,downsample,mixed"
# The stage-6 default's recipe (denoise_core/weights/RECIPE.md) minus --prior, for 60 epochs of 205 steps = 12,300
# steps: at about 45 s an epoch on one thread of this CPU that is the study's budget, "6,000 steps or 45 CPU-minutes,
# whichever is more" (45 core-minutes; 6,000 steps would take only 22).
RECIPE = [
    "--epochs", "60", "--lr", "5e-4", "--batch-size", "16", "--patch-size", "64", "--val-ratio", "0.05",
    "--workers", "0", "--block", "res", "--width", "32", "--amp", "bf16", "--temperature", "1.0",
    "--sensor-noise", "3", "--clean-fraction", "0.1", "--loss-norm", "log", "--degradations", DEGRADATIONS,
    "--prior", "none",
]


def run_name(scheme: str, seed: int) -> str:
    return f"{scheme}-s{seed}"


# -- the CSV ------------------------------------------------------------------------------------------------------
def read_rows(csv: Path) -> pd.DataFrame:
    if not csv.is_file():
        return pd.DataFrame(columns=COLUMNS)
    return pd.read_csv(csv, dtype={"scheme": str, "setting": str, "image": str})


def merge_rows(csv: Path, new: pd.DataFrame) -> pd.DataFrame:
    """Replace the rows of ``new``'s keys (scheme, seed, setting, image) in ``csv``, atomically, under a lock."""
    csv.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(csv) + ".lock", timeout=600):
        old = read_rows(csv)
        key = ["scheme", "seed", "setting", "image"]
        both = pd.concat([old, new[COLUMNS]], ignore_index=True).drop_duplicates(key, keep="last")
        order = {s: i for i, s in enumerate(SETTINGS)}
        both = both.sort_values(key, key=lambda c: c.map(order) if c.name == "setting" else c).reset_index(drop=True)
        atomic_write_text(csv, both.to_csv(index=False))
    return both


def bench_rows(results: pd.DataFrame, scheme: str, seed: int) -> pd.DataFrame:
    """The benchmark's results table as CSV rows: the model's under ``scheme``, the identity's under ``input``."""
    rows = results[results["method"].isin(["model", "identity"])].copy()
    rows["scheme"] = np.where(rows["method"] == "model", scheme, INPUT)
    rows["seed"] = seed
    return rows[COLUMNS]


def is_complete(rows: pd.DataFrame, scheme: str, seed: int, n_images: int, settings: list[str]) -> bool:
    mine = rows[(rows["scheme"] == scheme) & (rows["seed"] == seed)]
    return len(mine.drop_duplicates(["setting", "image"])) >= n_images * len(settings)


# -- run: train and score ---------------------------------------------------------------------------------------
def train_command(args: argparse.Namespace, scheme: str, seed: int) -> list[str]:
    return [
        sys.executable, "-m", "denoise_core", "train", "--data", str(args.data), "--out", str(args.runs / run_name(scheme, seed)),
        *RECIPE, *SCHEMES[scheme], *args.train_args, "--seed", str(seed), "--no-progress", "--resume",
    ]


def run_one(args: argparse.Namespace, scheme: str, seed: int, n_images: int) -> None:
    """Train (or continue) one (scheme, seed), then benchmark its best.pt and merge the rows into the CSV."""
    name = run_name(scheme, seed)
    run = args.runs / name
    run.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    status = run / "status.json"
    finished = status.is_file() and json.loads(status.read_text()).get("state") == "finished"
    if not finished:
        log.info("%s: training (log: %s)", name, run / "train.log")
        with open(run / "train.log", "a") as out:
            subprocess.run(train_command(args, scheme, seed), check=True, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    log.info("%s: benchmarking", name)
    score = [sys.executable, str(Path(__file__).resolve()), "score", str(run), "--scheme", scheme, "--seed", str(seed),
             "--bench-data", str(args.bench_data), "--csv", str(args.csv), "--settings", ",".join(args.settings)]
    if args.limit:
        score += ["--limit", str(args.limit)]
    with open(run / "bench.log", "a") as out:
        subprocess.run(score, check=True, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    log.info("%s: done", name)


def run_all(args: argparse.Namespace) -> int:
    from denoise_core.data import find_images

    n_images = len(find_images(args.bench_data))
    if args.limit:
        n_images = min(n_images, args.limit)
    rows = read_rows(args.csv)
    todo = [(sc, sd) for sd in args.seeds for sc in args.schemes if not is_complete(rows, sc, sd, n_images, args.settings)]
    log.info("%d of %d trainings to run or finish: %s", len(todo), len(args.seeds) * len(args.schemes),
             ", ".join(run_name(*t) for t in todo) or "none")
    failed = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run_one, args, sc, sd, n_images): (sc, sd) for sc, sd in todo}
        for future, (sc, sd) in futures.items():
            try:
                future.result()
            except subprocess.CalledProcessError as exc:
                log.error("%s failed (exit %s): see %s", run_name(sc, sd), exc.returncode, args.runs / run_name(sc, sd))
                failed.append(run_name(sc, sd))
    if failed:
        log.error("failed: %s", ", ".join(failed))
        return 2
    return report(args)


def score(args: argparse.Namespace) -> int:
    """Benchmark one finished run's best.pt (resumable) and merge its rows; record its training facts."""
    run = Path(args.run)
    results = run_benchmark(args.bench_data, run / "bench" / "ablation", checkpoint=run / "best.pt", settings=args.settings,
                            methods=["identity", "model"], limit=args.limit, seed=0, progress=False, resume=True)
    merge_rows(args.csv, bench_rows(results, args.scheme, args.seed))
    from denoise_core.history import epoch_records

    records = epoch_records(run)
    best = min(records, key=lambda r: r["val_loss"])
    facts_file = args.csv.with_name(args.csv.stem + "-runs.json")
    with FileLock(str(facts_file) + ".lock", timeout=600):
        facts = json.loads(facts_file.read_text()) if facts_file.is_file() else {}
        facts[run_name(args.scheme, args.seed)] = {
            "scheme": args.scheme, "seed": args.seed, "epochs": len(records),
            "steps": sum(int(r["steps"]) for r in records),
            "train_seconds": round(sum(float(r["seconds"]) for r in records), 1),
            "best_epoch": int(best["epoch"]), "best_val_psnr": round(float(best["val_psnr"]), 3),
            "final_weights": {k: round(float(v), 4) for k, v in records[-1]["next_weights"].items()},
        }
        atomic_write_text(facts_file, json.dumps(facts, indent=1, sort_keys=True) + "\n")
    return 0


# -- report: statistics -----------------------------------------------------------------------------------------
def _table(rows: pd.DataFrame) -> pd.DataFrame:
    """PSNR indexed by (setting, seed, image), one column per scheme (the input included)."""
    t = rows.pivot_table(index=["setting", "seed", "image"], columns="scheme", values="psnr", aggfunc="first")
    return t.replace([np.inf, -np.inf], np.nan)


def paired_stats(rows: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict:
    """Per-setting means, paired differences to uniform with bootstrap 95 % intervals, and the summary figures.

    Returns ``{"settings": DataFrame, "summary": DataFrame, "schemes": [...]}``. The bootstrap draws images (the
    same draw for every setting and both seeds, so the mean-over-settings interval is paired too).
    """
    t = _table(rows)
    schemes = [s for s in SCHEMES if s in t.columns] + sorted(set(t.columns) - set(SCHEMES) - {INPUT})
    settings = [s for s in SETTINGS if s in t.index.get_level_values("setting")]
    degraded = [s for s in settings if s in DEGRADED]
    images = sorted(t.index.get_level_values("image").unique())
    seeds = sorted(t.index.get_level_values("seed").unique())
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(images), size=(n_boot, len(images)))

    # cube[scheme][setting] -> array (seeds, images) of PSNR
    def cube(scheme: str) -> dict[str, np.ndarray]:
        out = {}
        for s in settings:
            sub = t.loc[s][scheme] if scheme in t.columns else pd.Series(dtype=float)
            out[s] = np.array([[sub.get((sd, im), np.nan) for im in images] for sd in seeds], dtype=float)
        return out

    data = {sc: cube(sc) for sc in schemes}
    inp = cube(INPUT) if INPUT in t.columns else None

    def boot_mean(diff: np.ndarray) -> tuple[float, float, float]:
        """Mean over seeds and images, and its percentile interval over image resamples."""
        per_image = np.nanmean(diff, axis=0)  # seeds pooled: an image's seeds stay together
        boots = np.nanmean(per_image[draws], axis=1)
        return float(np.nanmean(per_image)), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))

    recs = []
    for s in settings:
        gaps = [abs(np.nanmean(data[sc][s][0]) - np.nanmean(data[sc][s][1])) for sc in schemes if _both_seeds(data[sc][s])]
        spread = max(gaps) if gaps else np.nan  # from the schemes with both seeds done (all, once the set is complete)
        for sc in schemes:
            rec = {"setting": s, "scheme": sc, "psnr": float(np.nanmean(data[sc][s])),
                   "input": float(np.nanmean(inp[s])) if inp is not None and s in degraded else np.nan,
                   "seed_spread": spread}
            for i, sd in enumerate(seeds):
                rec[f"psnr_seed{sd}"] = float(np.nanmean(data[sc][s][i])) if np.isfinite(data[sc][s][i]).any() else np.nan
            if sc != BASELINE and BASELINE in data:
                rec["diff"], rec["lo"], rec["hi"] = boot_mean(data[sc][s] - data[BASELINE][s])
            recs.append(rec)
    per_setting = pd.DataFrame(recs)

    # Summary figures per scheme over the degraded settings, each with a paired interval against uniform.
    def figures(sc: str, idx: np.ndarray | None) -> dict[str, float]:
        """Mean over settings, worst setting PSNR, worst gain; on the image draw ``idx`` (None: all images)."""
        means, gains = [], []
        for s in degraded:
            a = data[sc][s] if idx is None else data[sc][s][:, idx]
            means.append(np.nanmean(a))
            if inp is not None:
                b = inp[s] if idx is None else inp[s][:, idx]
                gains.append(np.nanmean(a) - np.nanmean(b))
        return {"mean": float(np.mean(means)), "worst_psnr": float(np.min(means)),
                "worst_gain": float(np.min(gains)) if gains else np.nan}

    summ = []
    for sc in schemes:
        f = figures(sc, None)
        worst_setting = degraded[int(np.argmin([np.nanmean(data[sc][s]) for s in degraded]))]
        worst_gain_setting = degraded[int(np.argmin([np.nanmean(data[sc][s]) - np.nanmean(inp[s]) for s in degraded]))] \
            if inp is not None else ""
        rec = {"scheme": sc, **f, "worst_setting": worst_setting, "worst_gain_setting": worst_gain_setting}
        if len(seeds) > 1 and all(_both_seeds(data[sc][s]) for s in degraded):
            per_seed = []
            for i in range(len(seeds)):
                per_seed.append(np.mean([np.nanmean(data[sc][s][i]) for s in degraded]))
            rec["mean_seed_spread"] = float(abs(per_seed[0] - per_seed[1]))
        if sc != BASELINE and BASELINE in data:
            base = figures(BASELINE, None)
            boots = np.array([[figures(sc, d)[k] - figures(BASELINE, d)[k] for k in ("mean", "worst_psnr", "worst_gain")]
                              for d in draws[: max(200, n_boot // 10)]])
            for j, k in enumerate(("mean", "worst_psnr", "worst_gain")):
                rec[f"{k}_diff"] = f[k] - base[k]
                rec[f"{k}_lo"], rec[f"{k}_hi"] = (float(np.nanpercentile(boots[:, j], q)) for q in (2.5, 97.5))
        summ.append(rec)
    done = {sc: [sd for i, sd in enumerate(seeds) if all(np.isfinite(data[sc][s][i]).any() for s in settings)] for sc in schemes}
    return {"settings": per_setting, "summary": pd.DataFrame(summ), "schemes": schemes, "seeds": seeds,
            "n_images": len(images), "done": done}


def _both_seeds(a: np.ndarray) -> bool:
    """Whether the (seeds, images) array holds scores for its first two seeds."""
    return a.shape[0] > 1 and bool(np.isfinite(a[0]).any() and np.isfinite(a[1]).any())


def _beyond(diff: float, lo: float, hi: float, spread: float) -> str:
    """Marks: * the interval excludes 0; † the difference also exceeds the seed-to-seed spread."""
    mark = "*" if lo > 0 or hi < 0 else ""
    if mark and np.isfinite(spread) and abs(diff) > spread:
        mark += "†"
    return mark


def markdown(stats: dict) -> str:
    ps, summ, schemes = stats["settings"], stats["summary"], stats["schemes"]
    others = [s for s in schemes if s != BASELINE]
    head = "| setting | input | " + " | ".join(schemes) + " | " + " | ".join(f"{s} − uniform [95 % CI]" for s in others) + " | seed spread |"
    lines = [head, "|---|---:|" + "---:|" * len(schemes) + "---:|" * len(others) + "---:|"]
    for s in dict.fromkeys(ps["setting"]):
        sub = ps[ps["setting"] == s].set_index("scheme")
        inp = sub["input"].iloc[0]
        cells = [f"{sub.loc[sc, 'psnr']:.2f}" for sc in schemes]
        diffs = []
        for sc in others:
            r = sub.loc[sc]
            if "diff" in r and np.isfinite(r.get("diff", np.nan)):
                diffs.append(f"{r['diff']:+.2f} [{r['lo']:+.2f}, {r['hi']:+.2f}]{_beyond(r['diff'], r['lo'], r['hi'], r['seed_spread'])}")
            else:
                diffs.append("")
        spread = sub["seed_spread"].iloc[0]
        lines.append(f"| {s} | {'' if not np.isfinite(inp) else f'{inp:.2f}'} | " + " | ".join(cells) + " | "
                     + " | ".join(diffs) + f" | {'' if not np.isfinite(spread) else f'{spread:.2f}'} |")
    srows = ["| scheme | mean over degraded settings | worst setting (PSNR) | worst gain over input | mean: seed spread |",
             "|---|---:|---:|---:|---:|"]
    spreads = summ["mean_seed_spread"].dropna() if "mean_seed_spread" in summ else pd.Series(dtype=float)
    mean_spread = float(spreads.max()) if len(spreads) else np.nan
    for _, r in summ.iterrows():
        def cell(k: str, fmt: str = "{:.2f}") -> str:
            text = fmt.format(r[k])
            if f"{k}_diff" in r and np.isfinite(r.get(f"{k}_diff", np.nan)):
                d, lo, hi = r[f"{k}_diff"], r[f"{k}_lo"], r[f"{k}_hi"]
                text += f" ({d:+.2f} [{lo:+.2f}, {hi:+.2f}]{_beyond(d, lo, hi, mean_spread if k == 'mean' else np.nan)})"
            return text
        spread = r.get("mean_seed_spread", np.nan)
        srows.append(f"| {r['scheme']} | {cell('mean')} | {cell('worst_psnr')} {r['worst_setting']} | "
                     f"{cell('worst_gain', '{:+.2f}')} {r['worst_gain_setting']} | {'' if not np.isfinite(spread) else f'{spread:.2f}'} |")
    done = "; ".join(f"{sc} seed{'s' if len(v) > 1 else ''} {', '.join(map(str, v))}" for sc, v in stats["done"].items())
    return "\n".join([
        f"PSNR in dB on {stats['n_images']} images, mean over the seeds trained so far ({done}). Differences are paired per image "
        "(same degraded input), seeds pooled, with a 95 % bootstrap interval over images; * the interval excludes 0, "
        "† the difference is also larger than the seed spread (the largest gap between two seeds' means of any scheme "
        "on that setting).", "", *lines, "",
        "In brackets: the difference to uniform and its 95 % interval (the same image draws for every setting); on the "
        "mean, † compares with the largest seed-to-seed gap of any scheme's mean.", "",
        *srows, "",
    ])


def chart(stats: dict, path: Path) -> None:
    """Per-setting difference to uniform with its interval, one marker per scheme."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ps = stats["settings"]
    others = [s for s in stats["schemes"] if s != BASELINE]
    settings = list(dict.fromkeys(ps["setting"]))
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=110)
    x = np.arange(len(settings))
    for i, sc in enumerate(others):
        sub = ps[ps["scheme"] == sc].set_index("setting").reindex(settings)
        off = (i - (len(others) - 1) / 2) * 0.25
        ax.errorbar(x + off, sub["diff"], yerr=[sub["diff"] - sub["lo"], sub["hi"] - sub["diff"]], fmt="o", capsize=3, label=f"{sc} − uniform")
    spread = ps.drop_duplicates("setting").set_index("setting").reindex(settings)["seed_spread"]
    if spread.notna().any():
        ax.fill_between(x, -spread, spread, step="mid", color="0.85", label="± seed spread", zorder=0)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x, settings, rotation=35, ha="right")
    ax.set_ylabel("PSNR difference to uniform (dB)")
    ax.set_title("Degradation weighting schemes vs uniform, paired per image, 95 % bootstrap CI")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def report(args: argparse.Namespace) -> int:
    rows = read_rows(args.csv)
    if rows.empty:
        print(f"no rows in {args.csv} yet: run `bench/ablation.py run` first", file=sys.stderr)
        return 2
    stats = paired_stats(rows)
    text = markdown(stats)
    out = args.csv.with_suffix(".md")
    atomic_write_text(out, "# Degradation weighting: ablation\n\n" + text)
    chart(stats, args.csv.with_suffix(".png"))
    if args.doc and args.doc.is_file():
        doc = args.doc.read_text()
        start, end = "<!-- ablation:start -->", "<!-- ablation:end -->"
        if start in doc and end in doc:
            before, rest = doc.split(start, 1)
            after = rest.split(end, 1)[1]
            atomic_write_text(args.doc, f"{before}{start}\n{text}{end}{after}")
    print(text)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    csv = dict(type=Path, default=ROOT / "docs" / "results" / "ablation.csv", help="the rows (default: %(default)s)")
    settings = dict(type=lambda s: parse_names(s, SETTINGS, "setting"), default=list(SETTINGS), help="comma-separated (default: all)")
    r = sub.add_parser("run", help="train and score every (scheme, seed) not yet complete, then report")
    r.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "train" / "CBSD432")
    r.add_argument("--bench-data", type=Path, default=ROOT.parent / "shared" / "data" / "bench" / "CBSD68")
    r.add_argument("--runs", type=Path, default=ROOT / "runs" / "ablation", help="training folders (default: %(default)s)")
    r.add_argument("--schemes", type=lambda s: parse_names(s, SCHEMES, "scheme"), default=list(SCHEMES))
    r.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1])
    r.add_argument("--jobs", type=int, default=2, help="trainings side by side (default: %(default)s)")
    r.add_argument("--threads", type=int, default=1, help="threads per training (default: %(default)s)")
    r.add_argument("--limit", type=int, default=None, help="benchmark images (default: all)")
    r.add_argument("--settings", **settings)
    r.add_argument("--train-args", default="", help="extra train flags after the recipe (tests: a tiny model)")
    r.add_argument("--csv", **csv)
    r.add_argument("--doc", type=Path, default=DOC, help="the document whose ablation section is rewritten (default: %(default)s)")
    s = sub.add_parser("score", help="benchmark one finished run and merge its rows (used by run)")
    s.add_argument("run")
    s.add_argument("--scheme", required=True)
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--bench-data", type=Path, required=True)
    s.add_argument("--limit", type=int, default=None)
    s.add_argument("--settings", **settings)
    s.add_argument("--csv", **csv)
    rep = sub.add_parser("report", help="statistics, table, chart and the docs/design.md section from the CSV")
    rep.add_argument("--csv", **csv)
    rep.add_argument("--doc", type=Path, default=DOC, help="the document whose ablation section is rewritten (default: %(default)s)")
    args = p.parse_args(argv)
    if args.command == "run":
        args.train_args = args.train_args.split()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.command == "run":
        return run_all(args)
    if args.command == "score":
        return score(args)
    return report(args)


if __name__ == "__main__":
    raise SystemExit(main())
