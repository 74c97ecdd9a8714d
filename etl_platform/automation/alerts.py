"""Alerts: what a failed run or a stale table tells people, by email and by webhook.

Every text that leaves the platform is scrubbed of secrets (revealed values, URL
passwords, ``password=...``) and cut to ``MAX_ERROR_CHARS``. Credentials of the mail
server and the webhook URL are references resolved only here, when sending. A channel
that cannot be reached is logged as a warning; it never fails the sensor, so one dead
channel does not silence the other.
"""

import json
import os
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage

from etl_platform.secrets import references as secrets
from etl_platform.secrets.references import MissingSecret, scrub

MAX_ERROR_CHARS = 1_500
DEFAULT_UI_URL = "http://127.0.0.1:3000"


def ui_url() -> str:
    """Where people open the Dagster UI (``ETL_UI_URL``), for links in alerts."""
    return os.environ.get("ETL_UI_URL", DEFAULT_UI_URL).rstrip("/")


@dataclass(frozen=True)
class Alert:
    subject: str
    pipeline: str
    step: str
    error: str
    link: str

    def text(self) -> str:
        return f"{self.subject}\nPipeline: {self.pipeline}\nStep: {self.step}\nError: {self.error}\nOpen: {self.link}"


def summary(error: str, extra_secrets: tuple[str, ...] = ()) -> str:
    """An error as an alert shows it: secrets masked, at most ``MAX_ERROR_CHARS`` characters."""
    text = scrub(error.strip(), extra_secrets)
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 15].rstrip() + " … (truncated)"


def send_email(email, alert: Alert) -> None:
    """Send ``alert`` through the SMTP server of ``email`` (an ``EmailSpec``)."""
    username, password = secrets.reveal(email.username), secrets.reveal(email.password)
    message = EmailMessage()
    message["Subject"] = scrub(alert.subject)
    message["From"] = email.sender
    message["To"] = ", ".join(email.to)
    message.set_content(scrub(alert.text()))  # again after revealing: the credentials themselves are masked too
    with smtplib.SMTP(email.host, email.port, timeout=email.timeout_seconds) as smtp:
        if email.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if username is not None:
            smtp.login(username, password or "")
        smtp.send_message(message)


def post_webhook(webhook, alert: Alert) -> None:
    """POST ``{"text": ...}`` (Slack's incoming-webhook shape) to the URL of ``webhook``."""
    url = secrets.reveal(webhook.url) or ""
    if not url.startswith(("http://", "https://")):
        raise ValueError("the webhook URL must start with http:// or https://")
    request = urllib.request.Request(
        url,
        data=json.dumps({"text": scrub(alert.text())}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=webhook.timeout_seconds) as response:  # noqa: S310 - scheme checked above
        response.read()


def deliver(spec, alert: Alert, warn: Callable[[str], None]) -> list[str]:
    """Send ``alert`` on every channel of ``spec`` (an ``AlertsSpec``) that is switched on.

    Returns the channels it reached; a channel that fails is reported through ``warn``.
    """
    reached = []
    channels = [("email", spec.email, send_email), ("webhook", spec.webhook, post_webhook)]
    for name, channel, send in channels:
        if channel is None or not channel.switched_on():
            continue
        try:
            send(channel, alert)
            reached.append(name)
        except (OSError, smtplib.SMTPException, urllib.error.URLError, ValueError, MissingSecret) as err:
            warn(scrub(f"alert '{alert.subject}' not sent by {name}: {type(err).__name__}: {err}"))
    return reached
