"""Denoise Studio, the Streamlit entry point: pages in pages/, chosen with st.navigation.

Run it through app.py (``streamlit run app.py``), which also serves the Gradio
restore UI at /gradio/ on the same port; ``streamlit run studio.py`` works too,
without the Restore page's embedded app. The data root is $DENOISE_DATA_ROOT
(default ./data).
"""

import streamlit as st

st.set_page_config(page_title="Denoise Studio", page_icon=":material/auto_fix_high:", layout="wide")

# st.navigation is the one multipage mechanism: calling it turns off pages/ auto-discovery.
pages = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/restore.py", title="Restore", icon=":material/photo_filter:"),
    st.Page("pages/history.py", title="History", icon=":material/history:"),
]
st.navigation(pages).run()
