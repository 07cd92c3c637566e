"""The studio's services and UI pieces: training jobs, the data root, uploads, previews, charts, the Gradio
restore app and the Streamlit navigation and widgets.

The studio imports the library (`denoise_core`); the library never imports the studio
(`tests/library/test_structure.py` checks both directions from the import graph). The one entry
point is ``app.py`` at the top of the repository.
"""
