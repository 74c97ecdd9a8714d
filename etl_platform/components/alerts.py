"""The Alerts component type: who hears about failed runs and stale tables, and how.

    type: etl_platform.components.Alerts
    attributes:
      pipelines: [shop_orders, shop_customers]     # leave out for every pipeline
      email:
        host: smtp.example.com
        port: 587
        from: etl@example.com
        to: [data-team@example.com]
        username: {secret: smtp_user}
        password: {secret: smtp_password}
      webhook:
        url: {secret: slack_webhook_url}

Credentials and the webhook URL stay references in the definitions; they are resolved
only when an alert is sent. Host and addresses may use Dagster's templates, e.g.
``host: "{{ env('ETL_SMTP_HOST', '') }}"``; an empty host switches email off.
"""

import os

import dagster as dg
from pydantic import Field, ValidationError

from etl_platform.automation.alert_sensors import run_failure_alerts, stale_table_alerts
from etl_platform.connectors.connections import resolve_templates
from etl_platform.secrets.references import EnvRef, SecretRef
from etl_platform.spec.base import SpecModel
from etl_platform.spec.errors import SpecLocator


class EmailSpec(SpecModel):
    """An SMTP server that sends the alert emails."""

    host: str = Field("", description="SMTP server's host name. Empty switches email alerts off.")
    port: int = Field(587, ge=1, le=65535, description="SMTP port: 587 with STARTTLS, 25 without.")
    starttls: bool = Field(True, description="Upgrade the connection with STARTTLS before logging in.")
    sender: str = Field("etl@localhost", alias="from", description="Sender address of the alert emails.")
    to: list[str] = Field(default_factory=list, description="Recipient addresses.")
    username: SecretRef | str | None = Field(None, description="Login name, plain or as {env: VAR} / {secret: name}.")
    password: SecretRef | None = Field(
        None, description="Login password, as {env: VAR} or {secret: name}; never a value."
    )
    timeout_seconds: float = Field(10, gt=0, description="Give up on the server after this long.")

    def switched_on(self) -> bool:
        return bool(self.host.strip() and self.to)


class WebhookSpec(SpecModel):
    """A URL that receives alerts as JSON {"text": ...} (Slack, Mattermost, Teams workflows, ...)."""

    url: SecretRef | str = Field(
        "", description="The webhook URL, plain or (as most embed a token) {env: VAR} / {secret: name}. Empty: off."
    )
    timeout_seconds: float = Field(10, gt=0, description="Give up on the webhook after this long.")

    def switched_on(self) -> bool:
        if isinstance(self.url, EnvRef):
            return bool(os.environ.get(self.url.env))  # an unset variable means: not configured here
        return bool(self.url)


class AlertsSpec(SpecModel):
    pipelines: list[str] | None = Field(
        None, description="Pipelines whose failures and stale tables are alerted on. Leave out for all."
    )
    email: EmailSpec | None = Field(None, description="Send alerts by email.")
    webhook: WebhookSpec | None = Field(None, description="Post alerts to a webhook.")
    min_interval_seconds: int = Field(30, ge=5, description="How often the alert sensors look for news, in seconds.")


class Alerts(dg.Component):
    """Alerts on failed runs and on tables whose freshness turns to FAIL, by email and/or webhook."""

    def __init__(self, spec: AlertsSpec):
        self.spec = spec

    @classmethod
    def get_model_cls(cls) -> type[AlertsSpec]:
        return AlertsSpec

    @classmethod
    def load(cls, attributes: AlertsSpec | None, context: dg.ComponentLoadContext) -> "Alerts":
        if attributes is None:
            return cls(AlertsSpec())
        raw = attributes.model_dump(mode="json", by_alias=True, exclude_none=True)
        try:
            return cls(AlertsSpec.model_validate(resolve_templates(raw, context.resolution_context)))
        except ValidationError as err:
            first = err.errors()[0]
            locate = SpecLocator(context.resolution_context.source_position_tree, fallback=str(context.path))
            # pydantic's error quotes the input, which may be a password or a webhook URL with its token: dropped
            raise locate.error([str(p) for p in first["loc"]], first["msg"]) from None

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return dg.Definitions(sensors=[run_failure_alerts(self.spec), stale_table_alerts(self.spec)])
