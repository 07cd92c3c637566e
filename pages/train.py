"""Train: choose images and parameters, start / stop / resume a background job, watch it live.

Training runs as a separate process (studio.jobs); this page only reads
the run folder, so it reattaches after a refresh or a server restart.
Form defaults can be set with $DENOISE_TRAIN_DEFAULTS (a JSON object of
studio.jobs.JobParams fields).
"""

import json
from pathlib import Path

import streamlit as st
from studio import access
from studio.widgets import admin_allowed, option_input, option_label

from denoise_core import degradations

from studio import archive, charts, jobs, workspace
from denoise_core.checkpoint import CheckpointError
from denoise_core.data import DatasetError
from denoise_core.device import DEVICE_CHOICES, gpu_count
from denoise_core.history import read_events
from studio.previews import validation_previews
from denoise_core.restoration import load_model

LIVE_EVERY = 3  # seconds between refreshes of the live view while a job runs
root = workspace.data_root()
allowed = admin_allowed("train")


@st.cache_resource(max_entries=4)
def cached_model(path: str, mtime_ns: int):
    return load_model(path, "cpu")


@st.cache_data(max_entries=8, show_spinner=False)
def cached_previews(run: str, mtime_ns: int):
    return validation_previews(run, count=3, model=cached_model(str(Path(run) / workspace.BEST_FILE), mtime_ns))


@st.cache_data(max_entries=16, show_spinner=False)
def cached_recorded_estimate(params_json: str, root_dir: str, runs_seen: tuple):
    # runs_seen (run ids and their event-log sizes) changes when a run records an epoch, so a new figure shows
    return jobs.recorded_estimate(json.loads(params_json), root_dir)


st.title("Train")
try:
    defaults = jobs.default_params()
except ValueError as exc:
    st.warning(f"Ignoring {jobs.DEFAULTS_ENV}: {exc}")
    defaults = jobs.JobParams()
active = jobs.active_job(root)

# -- dataset ----------------------------------------------------------------------------
st.subheader("Images")
sources = {"samples": "Bundled sample photos", "folder": "A folder in the data root", "upload": "Upload a .zip"}
source = st.radio("Train on", list(sources), format_func=sources.get, horizontal=True, key="train_source")
dataset = None
if source == "samples":
    dataset = workspace.SAMPLES
    st.caption("The photos that ship with scikit-image: enough to see training work, too few for a good model.")
elif source == "folder":
    folders = workspace.list_datasets(root, include_samples=False)
    if folders:
        dataset = st.selectbox("Folder", [d.name for d in folders], key="train_folder",
                               format_func=lambda n: f"{n} ({next(d.images for d in folders if d.name == n)} images)")
    else:
        st.info(f"No folders yet in `{workspace.datasets_dir(root)}`: upload a .zip, or copy a folder of images there.")
else:
    upload = st.file_uploader("A .zip of images (nested folders are fine)", type=["zip"], key="train_zip")
    suggested = workspace.slugify(upload.name) if upload else ""
    name = st.text_input("Dataset name", placeholder=suggested or "from the file name", key="train_zip_name",
                         help="Letters, digits, '.', '_' and '-'; the folder created under the data root's datasets/.")
    name = name.strip() or suggested
    if st.button("Unpack", key="train_unpack", disabled=upload is None or not allowed) and allowed:
        try:
            report = archive.unpack_dataset(upload, name, root)
        except (archive.ArchiveError, workspace.WorkspaceError) as exc:
            st.error(str(exc))
        else:
            st.session_state["train_unpacked"] = report.name
            st.success(report.summary())
            if report.skipped:
                with st.expander(f"{len(report.skipped)} skipped file(s)"):
                    st.table([{"file": f, "reason": why} for f, why in report.skipped])
    dataset = st.session_state.get("train_unpacked")
    if dataset:
        st.caption(f"Training will use dataset **{dataset}**.")

# -- parameters -------------------------------------------------------------------------------
st.subheader("Parameters")
starts = {"default": "The shipped model (fine-tune it on these photos)", "scratch": "Scratch (a new model)"}
start_from = st.radio("Start from", list(starts), format_func=starts.get, horizontal=True, key="train_start_from",
                      index=0 if defaults.init_from == "default" else 1,
                      help="Fine-tuning specialises the shipped model to your photos in minutes; a model trained from "
                           "scratch on a CPU needs many hours to match it (docs/results/fine-tune.md).")
fine_tune = start_from == "default"
c1, c2, c3, c4 = st.columns(4)
# Labels, help, ranges and steps come from TrainConfig's option descriptions (one source with the CLI).
epochs = option_input(c1, "epochs", defaults.epochs, "train_epochs")
batch_size = option_input(c2, "batch_size", defaults.batch_size, "train_batch")
learning_rate = option_input(c3, "learning_rate", defaults.learning_rate, "train_lr")
val_ratio = option_input(c4, "val_ratio", defaults.val_ratio, "train_val_ratio")
c1, c2, c3, c4 = st.columns(4)
patch_size = option_input(c1, "patch_size", defaults.patch_size, "train_patch")
# A fine-tune keeps the shipped model's architecture.
width = option_input(c2, "width", defaults.width, "train_width", disabled=fine_tune)
depth = option_input(c3, "depth", defaults.depth, "train_depth", disabled=fine_tune)
alpha = option_input(c4, "alpha", defaults.alpha, "train_alpha")
label, help_text = option_label("degradations")
chosen = st.multiselect(label, list(degradations.NAMES), default=defaults.degradations, key="train_degradations",
                        help=help_text)
c1, c2, c3, c4 = st.columns(4)
temperature = option_input(c1, "temperature", defaults.temperature, "train_temperature")
floor = option_input(c2, "floor", defaults.floor, "train_floor")
label, help_text = option_label("device")
device = c3.selectbox(label, DEVICE_CHOICES, index=DEVICE_CHOICES.index(defaults.device), key="train_device", help=help_text)
nproc = defaults.nproc
if gpu_count() > 1:
    nproc = c4.number_input("Processes (GPUs)", 1, gpu_count(), min(defaults.nproc, gpu_count()), key="train_nproc",
                            help="Data-parallel training with one process per GPU (torchrun).")
with st.expander("Advanced"):
    c1, c2, c3, c4 = st.columns(4)
    steps_per_epoch = option_input(c1, "steps_per_epoch", defaults.steps_per_epoch, "train_steps")
    crops_per_image = option_input(c2, "crops_per_image", defaults.crops_per_image, "train_crops")
    seed = option_input(c3, "seed", defaults.seed, "train_seed")
    num_workers = option_input(c4, "num_workers", defaults.num_workers, "train_workers")
    label, help_text = option_label("adaptive")
    adaptive = st.checkbox(label, defaults.adaptive, key="train_adaptive", help=help_text)
    c1, _ = st.columns(2)
    sensor_noise = option_input(c1, "sensor_noise", defaults.sensor_noise, "train_sensor_noise")

params = jobs.JobParams(
    dataset=dataset or "", epochs=int(epochs), batch_size=int(batch_size), learning_rate=float(learning_rate),
    val_ratio=float(val_ratio), patch_size=int(patch_size), crops_per_image=int(crops_per_image),
    steps_per_epoch=None if steps_per_epoch is None else int(steps_per_epoch), width=int(width), depth=int(depth),
    block=defaults.block, alpha=float(alpha), degradations=list(chosen), adaptive=bool(adaptive),
    temperature=float(temperature), floor=float(floor), sensor_noise=float(sensor_noise),
    init_from="default" if fine_tune else None, device=device, seed=int(seed),
    num_workers=None if num_workers is None else int(num_workers), nproc=int(nproc),
)

# -- expected time ------------------------------------------------------------------------------
# Before Start: a figure recorded by an earlier run with the same settings on this machine, else a few steps
# measured on request (or at Start); the run records the estimate it started with next to its epochs.
estimate_key = json.dumps(params.to_dict(), sort_keys=True)
estimate = None
if dataset and not active:
    try:
        runs_seen = tuple((r.run_id, (r.path / "events.jsonl").stat().st_size if (r.path / "events.jsonl").exists() else 0)
                          for r in workspace.list_runs(root))
        estimate = (st.session_state.get("train_estimates", {}).get(estimate_key)
                    or cached_recorded_estimate(estimate_key, str(root), runs_seen))
    except (CheckpointError, DatasetError, ValueError, OSError) as exc:
        st.caption(f"No time estimate: {exc}")
c1, c2 = st.columns([1, 5])
if estimate is not None:
    c2.info(f"Expected time: {estimate.summary()}.", icon=":material/schedule:")
elif dataset and not active:
    c2.caption("No earlier run with these settings on this machine: measure a few steps for an estimate "
               "(about 10 s on a CPU), or press Start, which measures first.")
if c1.button("Estimate time", key="train_estimate", disabled=not dataset or bool(active),
             help="Time a few training steps with these settings on this machine, now."):
    with st.spinner("Timing a few training steps…"):
        try:
            estimate = jobs.measure_estimate(params, root)
        except (CheckpointError, DatasetError, ValueError, OSError) as exc:
            st.error(f"Cannot estimate: {exc}")
        else:
            st.session_state.setdefault("train_estimates", {})[estimate_key] = estimate
            st.rerun()

# -- job controls ---------------------------------------------------------------------------------
runs = workspace.list_runs(root)
shown = active or st.session_state.get("train_run") or (runs[0].run_id if runs else None)
if shown and not workspace.run_dir(root, shown).is_dir():
    shown = runs[0].run_id if runs else None
state = workspace.run_state(workspace.run_dir(root, shown)) if shown else None

c1, c2, c3, _ = st.columns([1, 1, 1, 3])
if not allowed:
    st.caption("Training controls are locked on this deployment: "
               + ("set the DENOISE_ADMIN_TOKEN secret to unlock them." if access.no_way_in()
                  else "enter the admin token in the sidebar."))
if c1.button("Start training", key="train_start", type="primary", disabled=bool(active) or not dataset or not allowed) and allowed:
    try:
        if estimate is None and params.nproc == 1:
            with st.spinner("Timing a few training steps before the start…"):
                estimate = jobs.measure_estimate(params, root)
        st.session_state["train_run"] = jobs.start_job(params, root, estimate=estimate)
        st.rerun()
    except jobs.JobRunning as exc:
        st.session_state["train_run"] = exc.run_id
        st.warning(f"A training job is already running: **{exc.run_id}** (shown below).")
    except (jobs.JobError, ValueError, CheckpointError, DatasetError) as exc:
        st.error(str(exc))
if c2.button("Stop", key="train_stop", disabled=not (state and state.active) or not allowed) and allowed:
    jobs.stop_job(workspace.run_dir(root, shown))
    st.toast("Stopping after the current step; the last complete epoch is kept.")
resumable = state is not None and state.state in ("stopped", "died", "failed", "finished")
if c3.button("Resume", key="train_resume", disabled=bool(active) or not resumable or not allowed,
             help="Continue the run below from its last complete epoch to its own epoch count; "
                  "a finished run continues up to 'Epochs' above.") and allowed:
    try:
        jobs.resume_job(shown, epochs=int(epochs) if state.state == "finished" else None, root=root)
        st.session_state["train_run"] = shown
        st.rerun()
    except (jobs.JobError, ValueError) as exc:
        st.error(str(exc))


# -- live view ------------------------------------------------------------------------------------
def live_view(run_id: str) -> None:
    run = workspace.run_dir(root, run_id)
    state = workspace.run_state(run)
    was_active = st.session_state.get("train_was_active", False)
    st.session_state["train_was_active"] = state.active
    if was_active and not state.active:
        st.rerun(scope="app")  # the job ended: refresh the buttons and stop the timer
    events = read_events(run)
    prog = jobs.progress(run, events)
    st.progress(prog.fraction, text=f"**{run_id}** · {state.state} · {prog.label()}")
    note = jobs.estimate_note(events)
    if note:
        st.caption(note)
    if state.state == "failed":
        st.error(f"Training failed: {state.error or 'see the log below'}. Checkpoints already saved are kept.")
    elif state.state == "died":
        st.warning("The training process is gone (killed, crashed or the machine restarted). Resume continues it "
                   "from its last complete epoch.")
    records = list({int(e["epoch"]): e for e in events if e["type"] == "epoch"}.values())
    steps = [e for e in events if e["type"] == "step"]
    left, right = st.columns(2)
    left.plotly_chart(charts.loss_figure(records, steps), key="train_chart_loss")
    right.plotly_chart(charts.quality_figure(records), key="train_chart_quality")
    left.plotly_chart(charts.weights_figure(records), key="train_chart_weights")
    right.plotly_chart(charts.per_degradation_figure(records), key="train_chart_per_deg")
    st.caption("Recent log lines")
    st.code("\n".join(jobs.log_tail(run, 12 if state.state != "failed" else 40)) or "(no output yet)", language=None)
    best = run / workspace.BEST_FILE
    if best.is_file():
        st.caption("Validation samples from best.pt: degraded / restored / clean")
        try:
            previews = cached_previews(str(run), best.stat().st_mtime_ns)
        except (CheckpointError, DatasetError, OSError) as exc:
            st.info(f"No validation samples: {exc}")
            previews = []
        for p in previews:
            st.image([p.degraded, p.restored, p.clean], width=160, caption=[
                f"{p.degradation}: {p.psnr_degraded:.1f} dB", f"restored: {p.psnr_restored:.1f} dB", "clean"])


st.subheader("Run")
if shown:
    running = state is not None and state.active
    st.fragment(run_every=LIVE_EVERY if running else None)(live_view)(shown)
else:
    st.info("No run yet: choose images and parameters, then press Start training.")
