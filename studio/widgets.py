"""Small Streamlit helpers shared by the studio's pages (UI only; the logic lives in denoise_core)."""

import streamlit as st

from studio import access


def admin_allowed(page: str) -> bool:
    """Whether this session may change runs; asks for the admin token in the sidebar when one is configured.

    The typed token is kept across pages in session state (see SECURITY.md). On a public host without a token
    nothing unlocks them, and the sidebar says how to set one (`studio.access`).
    """
    if not access.controls_locked():
        return True
    if access.no_way_in():
        st.sidebar.warning(access.LOCKED_MESSAGE)
        return False
    typed = st.sidebar.text_input("Admin token", type="password", value=st.session_state.get("admin_secret", ""),
                                  key=f"{page}_admin_token", help="Needed here to change runs (see SECURITY.md).")
    st.session_state["admin_secret"] = typed
    return access.unlocked(typed)


def option_input(container, name: str, value, key: str, disabled: bool = False):
    """A Train-form number input for `TrainConfig` option ``name``: its label, help, range, step and format
    come from the option's description (`denoise_core.training.train_options`), like the CLI's flags."""
    from dataclasses import fields

    from denoise_core.training import TrainConfig, train_options

    option = train_options()[name]
    kind = next(f.type for f in fields(TrainConfig) if f.name == name)
    is_int = "int" in str(kind) and "float" not in str(kind)
    cast = int if is_int else float
    kwargs = {"key": key, "help": option.help[:1].upper() + option.help[1:] if option.help else None, "disabled": disabled}
    if option.minimum is not None:
        kwargs["min_value"] = cast(option.minimum)
    if option.maximum is not None:
        kwargs["max_value"] = cast(option.maximum)
    if option.step is not None:
        kwargs["step"] = cast(option.step)
    if option.fmt:
        kwargs["format"] = option.fmt
    if value is None:
        kwargs["placeholder"] = "auto"
    return container.number_input(option.label, value=None if value is None else cast(value), **kwargs)


def option_label(name: str) -> tuple[str, str]:
    """(label, help) of `TrainConfig` option ``name``, for the form's other widgets."""
    from denoise_core.training import train_options

    option = train_options()[name]
    return option.label, option.help[:1].upper() + option.help[1:]
