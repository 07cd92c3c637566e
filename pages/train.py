"""Train: choose images and parameters, start / stop / resume a background job, watch it live.

Training runs as a separate process (studio.jobs); this page only reads
the run folder, so it reattaches after a refresh or a server restart.
Form defaults can be set with $DENOISE_TRAIN_DEFAULTS (a JSON object of
studio.jobs.JobParams fields).
"""

from pathlib import Path

import streamlit as st
from studio.widgets import admin_allowed

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
c1, c2, c3, c4 = st.columns(4)
epochs = c1.number_input("Epochs", 1, 10_000, defaults.epochs, key="train_epochs",
                         help="Passes over the training images (each image gives 'crops per image' random crops).")
batch_size = c2.number_input("Batch size", 1, 1024, defaults.batch_size, key="train_batch",
                             help="Crops per optimisation step (per process with several GPUs).")
learning_rate = c3.number_input("Learning rate", 1e-6, 1.0, defaults.learning_rate, step=1e-5, format="%.1e", key="train_lr",
                                help="AdamW; warm-up, then cosine decay to 1% of it.")
val_ratio = c4.number_input("Validation ratio", 0.01, 0.9, defaults.val_ratio, step=0.05, key="train_val_ratio",
                            help="Share of the images held out for validation (at least one).")
c1, c2, c3, c4 = st.columns(4)
patch_size = c1.number_input("Patch size", 8, 512, defaults.patch_size, step=8, key="train_patch",
                             help="Side of the square training crops, in pixels.")
width = c2.number_input("Model width", 4, 256, defaults.width, step=4, key="train_width",
                        help="Channels of the first U-Net level (doubles at each level).")
depth = c3.number_input("Model depth", 1, 6, defaults.depth, key="train_depth", help="Down-sampling levels of the U-Net.")
alpha = c4.number_input("Loss alpha", 0.0, 1.0, defaults.alpha, step=0.05, key="train_alpha",
                        help="loss = alpha x MSE + (1 - alpha) x (1 - SSIM)")
chosen = st.multiselect("Degradations", list(degradations.NAMES), default=defaults.degradations, key="train_degradations",
                        help="The synthetic degradations drawn for training crops.")
c1, c2, c3, c4 = st.columns(4)
temperature = c1.number_input("Sampler temperature", 0.01, 10.0, defaults.temperature, step=0.1, key="train_temperature",
                              help="Lower: weights follow difficulty more sharply. Higher: closer to uniform.")
floor = c2.number_input("Sampler floor", 0.0, 0.09, defaults.floor, step=0.01, format="%.2f", key="train_floor",
                        help="Minimum weight of every degradation, so none is forgotten.")
device = c3.selectbox("Device", DEVICE_CHOICES, index=DEVICE_CHOICES.index(defaults.device), key="train_device",
                      help="auto: the GPU when there is one, else the CPU.")
nproc = defaults.nproc
if gpu_count() > 1:
    nproc = c4.number_input("Processes (GPUs)", 1, gpu_count(), min(defaults.nproc, gpu_count()), key="train_nproc",
                            help="Data-parallel training with one process per GPU (torchrun).")
with st.expander("Advanced"):
    c1, c2, c3, c4 = st.columns(4)
    steps_per_epoch = c1.number_input("Steps per epoch", 1, 1_000_000, defaults.steps_per_epoch, placeholder="auto",
                                      key="train_steps", help="Empty: images x crops per image / batch size.")
    crops_per_image = c2.number_input("Crops per image", 1, 1000, defaults.crops_per_image, key="train_crops")
    seed = c3.number_input("Seed", 0, 2**31 - 1, defaults.seed, key="train_seed")
    num_workers = c4.number_input("Loader workers", 0, 32, defaults.num_workers, placeholder="auto", key="train_workers")
    adaptive = st.checkbox("Adaptive degradation weights", defaults.adaptive, key="train_adaptive",
                           help="Off: every degradation is drawn equally often.")
    c1, c2 = st.columns(2)
    sensor_noise = c1.number_input("Sensor noise (max sigma, 0-255)", 0.0, 10.0, defaults.sensor_noise, step=0.5,
                                   key="train_sensor_noise",
                                   help="Faint noise added to every crop, so a little grain alone does not read as low light.")
    fine_tune = c2.checkbox("Fine-tune the shipped model", defaults.init_from == "default", key="train_fine_tune",
                            help="Start from the default model's weights (its width and depth) instead of a fresh model.")

params = jobs.JobParams(
    dataset=dataset or "", epochs=int(epochs), batch_size=int(batch_size), learning_rate=float(learning_rate),
    val_ratio=float(val_ratio), patch_size=int(patch_size), crops_per_image=int(crops_per_image),
    steps_per_epoch=None if steps_per_epoch is None else int(steps_per_epoch), width=int(width), depth=int(depth),
    block=defaults.block, alpha=float(alpha), degradations=list(chosen), adaptive=bool(adaptive),
    temperature=float(temperature), floor=float(floor), sensor_noise=float(sensor_noise),
    init_from="default" if fine_tune else None, device=device, seed=int(seed),
    num_workers=None if num_workers is None else int(num_workers), nproc=int(nproc),
)

# -- job controls ---------------------------------------------------------------------------------
runs = workspace.list_runs(root)
shown = active or st.session_state.get("train_run") or (runs[0].run_id if runs else None)
if shown and not workspace.run_dir(root, shown).is_dir():
    shown = runs[0].run_id if runs else None
state = workspace.run_state(workspace.run_dir(root, shown)) if shown else None

c1, c2, c3, _ = st.columns([1, 1, 1, 3])
if not allowed:
    st.caption("Training controls are locked on this deployment: enter the admin token in the sidebar.")
if c1.button("Start training", key="train_start", type="primary", disabled=bool(active) or not dataset or not allowed) and allowed:
    try:
        st.session_state["train_run"] = jobs.start_job(params, root)
        st.rerun()
    except jobs.JobRunning as exc:
        st.session_state["train_run"] = exc.run_id
        st.warning(f"A training job is already running: **{exc.run_id}** (shown below).")
    except (jobs.JobError, ValueError) as exc:
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
