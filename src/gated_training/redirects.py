"""The one redirect rule for this package's own HTTP calls (webhooks, the MLflow experiment probe): none is
followed. urllib would resend the request's headers, credentials included, to wherever a redirect points."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, never followed: the opener raises it as an ``HTTPError`` with its 3xx code."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        raise urllib.error.HTTPError(req.full_url, code, f"redirect to another URL not followed ({msg})", headers, fp)
