"""Kubernetes names, one module for every caller: the API server's rules at their edges."""

import pytest

from gated_training.kubernetes_names import is_dns1035_label, is_dns1123_label, is_dns1123_subdomain


@pytest.mark.parametrize(
    ("value", "label", "dns1035", "subdomain"),
    [
        ("team-ml", True, True, True),
        ("a" * 63, True, True, True),
        ("a" * 64, False, False, True),
        ("1team", True, False, True),  # a namespace may start with a digit, a Service may not
        ("Team", False, False, False),
        ("team-", False, False, False),
        ("-team", False, False, False),
        ("team_ml", False, False, False),
        ("gcs.key", False, False, True),
        ("gcs..key", False, False, False),
        ("a." * 126 + "a", False, False, True),  # 253 characters
        ("a." * 126 + "ab", False, False, False),  # 254
        ("", False, False, False),
        ("team\n", False, False, False),  # fullmatch: no trailing newline slips through as with $
        (None, False, False, False),
        (7, False, False, False),
    ],
)
def test_names_follow_the_api_servers_rules(value, label, dns1035, subdomain):
    assert (is_dns1123_label(value), is_dns1035_label(value), is_dns1123_subdomain(value)) == (
        label,
        dns1035,
        subdomain,
    )
