"""Small Streamlit helpers shared by the studio's pages (UI only; the logic lives in denoise_core)."""

import streamlit as st

from studio import access


def admin_allowed(page: str) -> bool:
    """Whether this session may change runs; asks for the admin token in the sidebar when one is configured.

    The typed token is kept across pages in session state (see SECURITY.md).
    """
    if not access.controls_locked():
        return True
    typed = st.sidebar.text_input("Admin token", type="password", value=st.session_state.get("admin_secret", ""),
                                  key=f"{page}_admin_token", help="Needed here to change runs (see SECURITY.md).")
    st.session_state["admin_secret"] = typed
    return access.unlocked(typed)
