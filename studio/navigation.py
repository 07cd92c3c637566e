"""The Streamlit multipage script: the pages in ``pages/``, chosen with st.navigation.

Not an entry point: ``app.py`` serves it (``streamlit run app.py``), with the Gradio
restore UI at /gradio/ on the same port. The data root is $DENOISE_DATA_ROOT
(default ./data).
"""

from pathlib import Path


import streamlit as st

st.set_page_config(page_title="Denoise Studio", page_icon=":material/auto_fix_high:", layout="wide")

# st.navigation is the one multipage mechanism: calling it turns off pages/ auto-discovery.
PAGES = Path(__file__).resolve().parent.parent / "pages"
pages = [
    st.Page(PAGES / "home.py", title="Home", icon=":material/home:", default=True),
    st.Page(PAGES / "train.py", title="Train", icon=":material/model_training:"),
    st.Page(PAGES / "restore.py", title="Restore", icon=":material/photo_filter:"),
    st.Page(PAGES / "history.py", title="History", icon=":material/history:"),
]
st.navigation(pages).run()
