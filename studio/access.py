"""Who may change things in the studio.

Locally everyone may. With ``DENOISE_ADMIN_TOKEN`` set, starting, stopping, resuming and deleting runs and
unpacking datasets need that token, while restoring photos, watching training and downloading workbooks stay
open to every visitor. On a public host (a Hugging Face Space, whose ``SPACE_ID`` is set, or ``DENOISE_PUBLIC=1``)
with no token, the studio fails closed: those controls are locked for everyone until the token is set, unless
``DENOISE_OPEN=1`` says it is open on purpose (``space --push --open``).
"""

from __future__ import annotations

import hmac
import os

ADMIN_TOKEN_ENV = "DENOISE_ADMIN_TOKEN"
PUBLIC_ENV = "DENOISE_PUBLIC"
OPEN_ENV = "DENOISE_OPEN"
SPACE_ENV = "SPACE_ID"  # set by Hugging Face in every Space
LOCKED_MESSAGE = ("This studio is public and has no admin token, so starting, stopping and deleting runs and unpacking "
                  "datasets are locked. To unlock them, set the `DENOISE_ADMIN_TOKEN` secret (on a Space: Settings → "
                  "Variables and secrets) and restart. Restoring, watching and downloading stay open.")


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def public_host() -> bool:
    """True on a Hugging Face Space (``SPACE_ID``) or with ``DENOISE_PUBLIC`` set to 1, true or yes, unless
    ``DENOISE_OPEN`` opens it on purpose."""
    return (_flag(PUBLIC_ENV) or bool(os.environ.get(SPACE_ENV))) and not _flag(OPEN_ENV)


def no_way_in() -> bool:
    """True when changes are locked for everyone: a public host with no admin token configured."""
    return public_host() and not os.environ.get(ADMIN_TOKEN_ENV)


def controls_locked() -> bool:
    """True when changes need the admin token, or are locked outright (`no_way_in`)."""
    return bool(os.environ.get(ADMIN_TOKEN_ENV)) or public_host()


def unlocked(token: str | None) -> bool:
    """Whether ``token`` allows changes: always locally without an admin token, never on a public host without one."""
    expected = os.environ.get(ADMIN_TOKEN_ENV)
    if not expected:
        return not public_host()
    # Constant-time comparison: the token must not leak through response timing.
    return bool(token) and hmac.compare_digest(token.encode(), expected.encode())
