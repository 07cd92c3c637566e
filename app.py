"""The one entry point of the studio: ``streamlit run app.py`` serves everything on one port.

Streamlit (1.57+) sees the module-level FastAPI ``app`` below and serves it with
uvicorn instead of running this file as a page script. The app composes:

- ``/gradio/``  the Gradio restore UI (`studio.gradio_app.build_demo`), queue and upload limits set;
- ``/``         the Streamlit studio (`studio/navigation.py` and ``pages/``), mounted last so it catches every
                other path, including ``/_stcore/health`` and the websocket at ``/_stcore/stream``.

The Streamlit pages embed the Gradio UI with ``st.iframe("/gradio/")``: same origin, same port,
so it works unchanged behind the Hugging Face Spaces proxy. `st.App` is experimental in
Streamlit 1.67; tests/studio/test_browser.py checks this composition in a real browser.
"""

import gradio as gr
import streamlit as st
from fastapi import FastAPI

from studio.gradio_app import MAX_FILE_SIZE, build_demo

GRADIO_PATH = "/gradio"

st_app = st.App("studio/navigation.py")
# Streamlit's runtime starts and stops with the parent app's lifespan.
app = FastAPI(lifespan=st_app.lifespan(), docs_url=None, redoc_url=None, openapi_url=None)
app = gr.mount_gradio_app(app, build_demo(), path=GRADIO_PATH, max_file_size=MAX_FILE_SIZE, footer_links=["api"])
app.mount("/", st_app)
