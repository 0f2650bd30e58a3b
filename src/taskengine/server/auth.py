"""Bearer-token auth: one shared API token, compared in constant time.

The token comes from `server.api_token` in the settings, which `TASKENGINE_API_TOKEN`, the config
file or `${secret:name}` (the encrypted secret store) fill in. Without a token the server is open,
so bind it to 127.0.0.1 (the default) or set one.
"""

from __future__ import annotations

import hmac

__all__ = ["PUBLIC_PATHS", "bearer_ok"]

#: Routes that answer without a token: liveness probes and version checks need no secret.
#: `/docs` and `/openapi.json` stay behind the token like every other route.
PUBLIC_PATHS = frozenset({"/health", "/version"})


def bearer_ok(header: bytes | None, token: str) -> bool:
    """True when an `Authorization: Bearer <token>` header carries exactly `token`."""
    if not header:
        return False
    scheme, _, value = header.partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    # compare_digest on bytes of any length; its time does not depend on where they differ
    return hmac.compare_digest(value.strip(), token.encode("utf-8"))
