"""Who may change things in the studio.

Locally everyone may. On a public deployment, set ``DENOISE_ADMIN_TOKEN``: then
starting, stopping, resuming and deleting runs and unpacking datasets need that
token, while restoring photos, watching training and downloading workbooks stay
open to every visitor.
"""

from __future__ import annotations

import hmac
import os

ADMIN_TOKEN_ENV = "DENOISE_ADMIN_TOKEN"


def controls_locked() -> bool:
    """True when an admin token is configured, so changes need it."""
    return bool(os.environ.get(ADMIN_TOKEN_ENV))


def unlocked(token: str | None) -> bool:
    """Whether ``token`` allows changes (always, when no admin token is configured)."""
    expected = os.environ.get(ADMIN_TOKEN_ENV)
    if not expected:
        return True
    # Constant-time comparison: the token must not leak through response timing.
    return bool(token) and hmac.compare_digest(token.encode(), expected.encode())
