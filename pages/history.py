"""History: every run with its best figures; compare curves; download workbooks; deploy a run as a Space; delete a run."""

import pandas as pd
import streamlit as st
from studio import access
from studio.widgets import admin_allowed

from denoise_core import space

from studio import charts, workspace
from denoise_core.runfiles import BEST_FILE
from denoise_core.history import WORKBOOK_FILE, combined_workbook, epoch_records, history_frames, workbook_bytes

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
root = workspace.data_root()
allowed = admin_allowed("history")

st.title("History")
runs = workspace.list_runs(root)
if not runs:
    st.info("No training runs yet.")
    st.page_link("../pages/train.py", label="Start one on the Train page", icon=":material/model_training:")
    st.stop()

st.dataframe(pd.DataFrame([r.as_row() for r in runs]), hide_index=True, key="history_table")

st.subheader("Compare")
ids = [r.run_id for r in runs]
picked = st.multiselect("Runs", ids, default=ids[:1], key="history_compare")
metric = st.selectbox("Metric", list(charts.METRIC_LABELS), format_func=charts.METRIC_LABELS.get, key="history_metric")
records = {run_id: epoch_records(workspace.run_dir(root, run_id)) for run_id in picked}
st.plotly_chart(charts.compare_figure(records, metric), key="history_chart")

st.subheader("Downloads")
st.download_button(
    f"Combined workbook of the {len(picked)} compared run(s)", combined_workbook(records) if picked else b"",
    file_name="denoise-history.xlsx", mime=XLSX, key="history_dl_combined", disabled=not picked, on_click="ignore",
)
for run in runs:
    saved = run.path / WORKBOOK_FILE
    data = saved.read_bytes() if saved.is_file() else workbook_bytes(history_frames(epoch_records(run.path)))
    st.download_button(
        f"{run.run_id}: history.xlsx", data, file_name=f"{run.run_id}-history.xlsx", mime=XLSX,
        key=f"history_dl_{run.run_id}", disabled=not run.epochs_done, on_click="ignore",
    )

st.subheader("Deploy a run as a Space")
deployable = [r.run_id for r in runs if (r.path / BEST_FILE).is_file()]
chosen = st.selectbox("Run to deploy", deployable, index=None, placeholder="choose a run with a best checkpoint",
                      key="history_space_run")
st.caption("Builds a self-contained Hugging Face Space folder (the app, the library, this run's best.pt as the default "
           "model, its model card and workbook, LFS rules for the weights) as a zip.")
if st.button("Build the Space", key="history_space_build", disabled=chosen is None):
    try:
        with st.spinner("Building the Space folder…"):
            st.session_state["history_space"] = (chosen, space.space_zip(workspace.run_dir(root, chosen) / BEST_FILE,
                                                                         f"denoise-space-{chosen}"))
    except (space.SpaceError, OSError, ValueError) as exc:
        st.error(f"Cannot build the Space: {exc}")
built = st.session_state.get("history_space")
if built and built[0] == chosen:
    st.download_button(f"{chosen}: Space folder (zip)", built[1], file_name=f"denoise-space-{chosen}.zip",
                       mime="application/zip", key="history_space_download", on_click="ignore")
    st.markdown("Or build and upload it in one go (needs `huggingface-cli login` or `HF_TOKEN`):")
    st.code(f"DENOISE_DATA_ROOT={root} python -m denoise_core space denoise-space-{chosen} --checkpoint {chosen} "
            "--push USER/SPACE", language="bash")

st.subheader("Delete a run")
target = st.selectbox("Run", ids, index=None, placeholder="choose a run", key="history_delete_run")
if not allowed:
    st.caption("Deleting runs is locked on this deployment: "
               + ("set the DENOISE_ADMIN_TOKEN secret to unlock it." if access.no_way_in()
                  else "enter the admin token in the sidebar."))
if st.button("Delete…", key="history_delete", disabled=target is None or not allowed) and allowed:
    st.session_state["history_confirm"] = target
confirm = st.session_state.get("history_confirm")
if confirm:
    st.warning(f"Delete run **{confirm}** with its checkpoints and history? This cannot be undone.")
    yes, no, _ = st.columns([1, 1, 4])
    if yes.button("Yes, delete it", key="history_delete_yes", type="primary", disabled=not allowed) and allowed:
        del st.session_state["history_confirm"]
        try:
            workspace.delete_run(root, confirm)
        except workspace.WorkspaceError as exc:
            st.error(str(exc))
        else:
            st.toast(f"Deleted {confirm}")
            st.rerun()
    if no.button("Cancel", key="history_delete_no"):
        del st.session_state["history_confirm"]
        st.rerun()
