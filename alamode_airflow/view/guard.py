"""Protection of the rebuild form against cross-site requests.

Airflow's UI authenticates the browser by its ``_token`` cookie, which the browser
attaches to any request to the api-server, even one a page of another site makes
(Airflow sets it SameSite=Lax, which stops cross-site POSTs in current browsers, but
not a request from a sibling subdomain, which counts as same-site). So a rebuild POST
must pass two checks:

- **Same origin.** A browser names the page a POST comes from in ``Origin`` (or, for
  older ones, says in ``Sec-Fetch-Site`` whether it is same-origin): either must name
  this server (the request's own scheme and host, or ``[api] base_url``). A request
  without both headers (a script with a token) passes this check.
- **A token from the confirmation page.** The form carries an HMAC, under the api
  server's ``[api] secret_key`` (shared by its workers), of the user, the DAG and the
  time it was made; a POST without one that is valid for that user and DAG, and less
  than an hour old, is refused. Another site cannot read the form to copy it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from urllib.parse import urlsplit

#: How long a confirmation page's form may be submitted.
TOKEN_SECONDS = 3600
_FALLBACK = secrets.token_bytes(32)  # without a configured key: valid in this process only


def _key() -> bytes:
    from alamode_airflow._compat import conf

    configured = conf.get("api", "secret_key", fallback="") or ""
    return configured.encode() if configured else _FALLBACK


def _mac(user: str, dag_id: str, issued: int) -> str:
    message = f"alamode-rebuild\0{user}\0{dag_id}\0{issued}".encode()
    return hmac.new(_key(), message, hashlib.sha256).hexdigest()


def make_token(user: str, dag_id: str, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    return f"{issued}.{_mac(user, dag_id, issued)}"


#: A token as ``make_token`` writes it: ASCII only (``compare_digest`` refuses other
#: strings with a TypeError, and ``int`` raises on Unicode digits ``isdigit`` accepts).
TOKEN = re.compile(r"[0-9]{1,12}\.[0-9a-f]{64}", re.ASCII)


def token_ok(token: str, user: str, dag_id: str, now: float | None = None) -> bool:
    if TOKEN.fullmatch(token or "") is None:
        return False
    issued, _, mac = token.partition(".")
    age = (time.time() if now is None else now) - int(issued)
    if not 0 <= age <= TOKEN_SECONDS:
        return False
    return hmac.compare_digest(mac, _mac(user, dag_id, int(issued)))


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(headers, own: list[str]) -> bool:
    """Whether a request with ``headers`` comes from one of the origins ``own`` (or
    from no page at all: no ``Origin`` and no ``Sec-Fetch-Site``)."""
    origin = headers.get("origin")
    if origin is not None:
        return origin.lower() in {origin_of(o) for o in own if o}
    site = headers.get("sec-fetch-site")
    return site is None or site in ("same-origin", "none")
