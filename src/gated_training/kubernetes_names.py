"""Names as Kubernetes and its Go components check and spell them, once for every caller: object names
(the serving settings, the InferenceService name, the compile-time secret names) by the API server's own
rules (``k8s.io/apimachinery``'s ``IsDNS1123Label``, ``IsDNS1035Label``, ``IsDNS1123Subdomain``), and HTTP
header names as Go canonicalizes them (what KServe's agent compares ``metadataHeaders`` with)."""

from __future__ import annotations

import re

DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
MAX_LABEL = 63
MAX_SUBDOMAIN = 253
_LABEL = re.compile(DNS1123_LABEL)
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(rf"{DNS1123_LABEL}(\.{DNS1123_LABEL})*")


def is_dns1123_label(value: object) -> bool:
    """A namespace or service account: lower-case letters, digits and hyphens, at most 63."""
    return isinstance(value, str) and len(value) <= MAX_LABEL and _LABEL.fullmatch(value) is not None


def is_dns1035_label(value: object) -> bool:
    """A Service (and so an InferenceService): a DNS-1123 label that starts with a letter."""
    return isinstance(value, str) and len(value) <= MAX_LABEL and _DNS1035_LABEL.fullmatch(value) is not None


def is_dns1123_subdomain(value: object) -> bool:
    """A Secret or ConfigMap: dot-separated DNS-1123 labels, at most 253 characters."""
    return isinstance(value, str) and len(value) <= MAX_SUBDOMAIN and _SUBDOMAIN.fullmatch(value) is not None


def go_header_name(name: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey``: ``x-request-id`` → ``X-Request-Id``. KServe's agent keeps a
    request header as metadata only when this spelling is listed in ``metadataHeaders``, exactly. A name with a
    character Go does not canonicalize stays as it is."""
    if not name or any(not (c.isascii() and (c.isalnum() or c in "!#$%&'*+-.^_`|~")) for c in name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))
