"""Home: what the studio does, the device, the current or last run, the model Restore uses."""

import streamlit as st

from studio import jobs, workspace
from denoise_core.device import describe_device

root = workspace.data_root()

st.title("Denoise Studio")
st.markdown(
    "Train a small U-Net that removes **noise, blur, JPEG artefacts, bad exposure and colour casts** from photos. "
    "It learns from clean images degraded on the fly by eleven synthetic degradations; an adaptive sampler "
    "draws more often the degradations the model still handles worst. Then restore your own photos with it."
)

left, right = st.columns(2)
with left:
    st.subheader("Device")
    st.write(describe_device())
    st.caption(f"Data root: `{root}`")
with right:
    st.subheader("Model used by Restore")
    model = workspace.restore_model(root)
    st.write(model[0] if model else "none yet: train a run first (its best.pt is then used)")

st.subheader("Training")
runs = workspace.list_runs(root)
active = jobs.active_job(root)
if active:
    run = workspace.run_dir(root, active)
    st.info(f"Run **{active}** is {workspace.run_state(run).state}: {jobs.progress(run).label()}")
elif runs:
    last = runs[0]
    st.write(f"Last run **{last.run_id}** ({last.dataset}): **{last.status}**, {last.epochs_done}/{last.epochs_total or '?'} epochs"
             + (f", best validation PSNR {last.best_val_psnr:.2f} dB" if last.best_val_psnr is not None else ""))
    if last.error:
        st.error(last.error)
else:
    st.write("No training run yet.")

st.subheader("Pages")
st.page_link("../pages/train.py", label="Train: pick images, set parameters, start and watch a run", icon=":material/model_training:")
st.page_link("../pages/restore.py", label="Restore: upload a photo, get it restored", icon=":material/photo_filter:")
st.page_link("../pages/history.py", label="History: compare runs, download workbooks", icon=":material/history:")
