"""Restore: the Gradio restore UI, served by app.py at /gradio/ on this same port, embedded."""

import streamlit as st

st.title("Restore")
st.caption(
    "Upload a degraded photo and get it back restored by the shipped model or any run's best checkpoint; "
    "or degrade a clean photo yourself and compare. This tab is a Gradio app served on the same port at /gradio/."
)
st.iframe("/gradio/", height=1100)
