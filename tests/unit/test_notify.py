"""Webhook notifications against a receiver on loopback: what is sent, when, and that failures never raise."""

import logging

import pytest

from gated_training.errors import ConfigError
from gated_training.reports import notify
from gated_training.reports.notify import check_webhook_url, notify_failed_step, notify_outcome
from tests.mlflow_server import free_port
from tests.webhook_receiver import WebhookReceiver

BLOCKED = {
    "outcome": "blocked",
    "blocked_by": "drift",
    "skip_reason": None,
    "kfp_run_id": "run-42",
    "reasons": ["3 of 6 features drifted (50% >= max_drifted_share 30%): income, tenure_months, region"],
    "champion": {"version": "20260101T000000000000Z-abcdef01", "metrics": {}},
}


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(notify, "BACKOFF_SECONDS", 0.01)
    monkeypatch.delenv(notify.WEBHOOK_ENV, raising=False)


def test_a_blocked_run_posts_slack_json_with_reasons_and_links():
    with WebhookReceiver() as receiver:
        status = notify_outcome(
            receiver.hook_url,
            BLOCKED,
            {"drift report": "gs://b/run/drift_html", "MLflow run": "https://mlflow.example/#/runs/1"},
        )
    assert status == "sent" and len(receiver.posts) == 1
    post = receiver.posts[0]
    assert post["path"] == "/services/T000/B000/secret-token" and post["content_type"] == "application/json"
    text = post["json"]["text"]
    assert set(post["json"]) == {"text"}
    assert text.startswith("*gated-training run run-42: blocked by the drift gate*")
    assert "• 3 of 6 features drifted" in text and "20260101T000000000000Z-abcdef01" in text
    assert "drift report: gs://b/run/drift_html" in text and "<https://mlflow.example/#/runs/1|MLflow run>" in text


def test_skipped_and_failed_runs_notify_and_deployed_runs_do_not():
    with WebhookReceiver() as receiver:
        skipped = {**BLOCKED, "outcome": "skipped", "blocked_by": None, "skip_reason": "no_new_data"}
        assert notify_outcome(receiver.hook_url, skipped) == "sent"
        assert notify_outcome(receiver.hook_url, {**BLOCKED, "outcome": "deployed"}) == "not sent: outcome deployed"
        assert notify_failed_step(receiver.hook_url, "train-model", "TrackingError: MLflow down", "run-7") == "sent"
    texts = [post["json"]["text"] for post in receiver.posts]
    assert len(texts) == 2
    assert texts[0].startswith("*gated-training run run-42: skipped (no_new_data)*")
    assert (
        texts[1].startswith("*gated-training run run-7: FAILED*")
        and "train-model failed: TrackingError: MLflow down" in texts[1]
    )


def test_a_failing_step_posts_its_failure_once_and_the_error_still_ends_it(tmp_path, monkeypatch):
    """No exit handler (it needs KFP 2.14 and reads MLMD states): recorded_step posts the failure
    itself, naming the run from the artifact URI's layout, then re-raises the step's own error."""
    from gated_training.errors import DataError
    from gated_training.kubeflow import records as step_records

    monkeypatch.setenv(step_records.RECORD_DIR_ENV, str(tmp_path))
    uri = "gs://bucket/root/gated-training/8f14e45f-ceea-467f-a0e6-4c2b8e1f0a11/check-drift/1234/run_summary"
    with WebhookReceiver() as receiver:
        with pytest.raises(DataError, match="no such file"):
            with step_records.recorded_step("check-drift", notify_webhook_url=receiver.hook_url, artifact_uri=uri):
                raise DataError("gs://b/x.csv: no such file")
        with step_records.recorded_step("check-drift", notify_webhook_url=receiver.hook_url, artifact_uri=uri):
            pass  # a step that succeeds posts nothing
    assert len(receiver.posts) == 1
    text = receiver.posts[0]["json"]["text"]
    assert text.startswith("*gated-training run 8f14e45f-ceea-467f-a0e6-4c2b8e1f0a11: FAILED*")
    assert "check-drift failed: DataError: gs://b/x.csv: no such file" in text
    assert step_records.read_records(tmp_path, "notification")["check-drift"]["notification"] == "sent"


def test_a_webhook_that_is_down_never_masks_the_steps_own_error(tmp_path, monkeypatch):
    from gated_training.kubeflow import records as step_records

    monkeypatch.setenv(step_records.RECORD_DIR_ENV, str(tmp_path))
    with pytest.raises(ZeroDivisionError):
        with step_records.recorded_step("train-model", notify_webhook_url=f"http://127.0.0.1:{free_port()}/hook"):
            _ = 1 / 0
    assert step_records.read_records(tmp_path, "notification")["train-model"]["notification"].startswith("failed:")


def test_server_errors_are_retried_and_client_errors_are_not():
    with WebhookReceiver(statuses=[503, 500]) as receiver:
        assert notify_outcome(receiver.hook_url, BLOCKED) == "sent"
    assert len(receiver.posts) == 3
    with WebhookReceiver(statuses=[404]) as receiver:
        assert notify_outcome(receiver.hook_url, BLOCKED) == "failed: HTTP 404"
    assert len(receiver.posts) == 1


def test_delivery_failures_are_logged_without_the_secret_and_never_raise(caplog):
    url = f"http://127.0.0.1:{free_port()}/services/T000/B000/secret-token"  # nothing listens
    with caplog.at_level(logging.WARNING, logger="gated_training.reports.notify"):
        status = notify_outcome(url, BLOCKED)
    assert status.startswith("failed: URLError") and "Connection refused" in status
    assert "not delivered after 3 attempt(s)" in caplog.text and "secret-token" not in caplog.text
    with WebhookReceiver(statuses=[500, 500, 500]) as receiver:
        assert notify_outcome(receiver.hook_url, BLOCKED) == "failed: HTTP 500"


def test_the_url_comes_from_the_parameter_or_the_environment(monkeypatch):
    assert notify_outcome("", BLOCKED) == "not configured"
    with WebhookReceiver() as receiver:
        monkeypatch.setenv(notify.WEBHOOK_ENV, receiver.hook_url)
        assert notify_outcome("", BLOCKED) == "sent"
    assert len(receiver.posts) == 1


@pytest.mark.parametrize("url", ["ftp://host/x", "hooks.slack.com/services/x", "http:///nohost"])
def test_bad_urls_are_refused_at_the_edge_and_tolerated_inside_the_run(url):
    with pytest.raises(ConfigError, match="notify_webhook_url.*not an http\\(s\\) URL"):
        check_webhook_url(url)
    assert notify_outcome(url, BLOCKED).startswith("failed: parameter notify_webhook_url")


def test_a_server_that_trickles_headers_hits_the_total_deadline(monkeypatch):
    """urllib's timeout is per read: a header line every half second would never trip it."""
    import time

    from tests.webhook_receiver import TRICKLE

    monkeypatch.setattr(notify, "TIMEOUT_SECONDS", 5.0)
    monkeypatch.setattr(notify, "TOTAL_DEADLINE_SECONDS", 2.0)
    with WebhookReceiver(statuses=[TRICKLE]) as receiver:
        started = time.monotonic()
        status = notify_outcome(receiver.hook_url, BLOCKED)
        elapsed = time.monotonic() - started
    assert status.startswith("failed: timed out: no complete answer within the 2 s deadline"), status
    assert elapsed < 4 and len(receiver.posts) == 1


@pytest.mark.parametrize("code", [301, 302, 307, 308])
def test_a_redirect_is_never_followed_nor_recorded_as_sent(code):
    with WebhookReceiver(statuses=[code]) as receiver:
        assert notify_outcome(receiver.hook_url, BLOCKED) == f"failed: HTTP {code} (redirects are not followed)"
    assert [post["path"] for post in receiver.posts] == ["/services/T000/B000/secret-token"]


def test_text_from_the_data_cannot_add_slack_links_or_mentions():
    hostile = {
        **BLOCKED,
        "reasons": [
            "critical rule x on column '<!channel>' failed: observed ['<http://evil|APPROVE DEPLOY>', 'a & b']"
        ],
        "kfp_run_id": "<!here>",
    }
    with WebhookReceiver() as receiver:
        assert notify_outcome(receiver.hook_url, hostile, {"summary": "https://kfp.example/run|<x>"}) == "sent"
    text = receiver.posts[0]["json"]["text"]
    assert "<!channel>" not in text and "<!here>" not in text and "<http://evil" not in text
    assert "&lt;!channel&gt;" in text and "&lt;http://evil|APPROVE DEPLOY&gt;" in text and "a &amp; b" in text
    assert "kfp.example" not in text  # a link whose URL would break out of <url|name> is left out
    import re

    assert re.findall(r"<[^>]*>", text) == []  # no Slack control sequence survives


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/a\r\nX-Evil: 1",
        "https://hooks.example.com/a\nb",
        "https://hooks.example.com/a\tb",
        "https://hooks.example.com/a b",
        "https://hooks.example.com/\x00",
        "https://hooks.example.com/\u2028",
    ],
)
def test_control_characters_are_refused_with_the_parameters(url):
    with pytest.raises(ConfigError, match="notify_webhook_url: holds a control character or a space"):
        check_webhook_url(url)


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("169.254.169.254", "169.254.169.254 is a cloud metadata server"),
        ("2852039166", "169.254.169.254 is a cloud metadata server"),  # decimal
        ("0xa9fea9fe", "169.254.169.254 is a cloud metadata server"),  # hexadecimal
        ("0251.0376.0251.0376", "169.254.169.254 is a cloud metadata server"),  # octal
        ("169.254.43518", "169.254.169.254 is a cloud metadata server"),  # the two-part form
        ("[::ffff:169.254.169.254]", "169.254.169.254 is a cloud metadata server (inside ::ffff:a9fe:a9fe)"),
        ("[fd00:ec2::254]", "fd00:ec2::254 is a cloud metadata server"),
        ("100.100.100.200", "100.100.100.200 is a cloud metadata server"),
        ("metadata.google.internal", "metadata.google.internal is a cloud metadata server"),
        ("169.254.10.1", "169.254.10.1 is a link-local address"),
        ("[fe80::1]", "fe80::1 is a link-local address"),
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("127.1", "127.0.0.1 is a loopback address"),
        ("[::1]", "::1 is a loopback address"),
        ("0.0.0.0", "0.0.0.0 is an unspecified address"),
        ("localhost", "localhost resolves to 127.0.0.1 is a loopback address"),  # a name that resolves there
    ],
)
def test_local_and_metadata_addresses_are_refused_in_every_spelling(monkeypatch, host, problem):
    monkeypatch.delenv(notify.ALLOWED_HOSTS_ENV)
    with pytest.raises(ConfigError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        check_webhook_url(f"http://{host}:8080/hook")


def test_private_addresses_are_allowed_by_default_and_an_allowlist_is_exclusive(monkeypatch):
    monkeypatch.delenv(notify.ALLOWED_HOSTS_ENV)
    for url in (
        "http://10.0.4.7:9093/hook",
        "http://alert-relay.monitoring.svc.cluster.local/hook",
        "https://192.168.1.20/x",
        "https://hooks.slack.com/services/T/B/x",
    ):
        assert check_webhook_url(url) == url
    monkeypatch.setenv(notify.ALLOWED_HOSTS_ENV, "hooks.slack.com, 127.0.0.1")
    assert check_webhook_url("http://127.0.0.1:9/x")  # named explicitly: allowed, even loopback
    with pytest.raises(ConfigError, match=r"host 10.0.4.7 is not in GATED_TRAINING_WEBHOOK_ALLOWED_HOSTS"):
        check_webhook_url("http://10.0.4.7/hook")


def test_a_name_that_resolves_to_a_refused_address_at_send_time_is_not_posted_to(monkeypatch):
    """DNS may answer differently at send time than when the run was checked: the post checks every
    address it is about to use, and never retries a refusal."""
    monkeypatch.delenv(notify.ALLOWED_HOSTS_ENV)
    import ipaddress

    monkeypatch.setattr(notify, "resolved_addresses", lambda host, port=443: [ipaddress.ip_address("169.254.169.254")])
    status = notify.post_json("https://hooks.example.com/T/B/x", {"text": "x"})
    assert status == "failed: refused: hooks.example.com resolves to 169.254.169.254 is a cloud metadata server"


def test_the_connection_goes_to_the_checked_address_with_the_host_name_kept():
    with WebhookReceiver() as receiver:
        # "localhost" resolves to the receiver's loopback address; the request still says Host: localhost.
        url = receiver.hook_url.replace("127.0.0.1", "localhost")
        assert notify.post_json(url, {"text": "pinned"}) == "sent"
    assert receiver.posts[0]["json"] == {"text": "pinned"} and receiver.posts[0]["host"].startswith("localhost:")
