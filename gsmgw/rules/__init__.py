"""Inbound rules (issue 19): ordered ``[[rules]]`` that tag, forward (e-mail, webhook,
MQTT through the outbox), auto-reply (rate-limited per sender in the store) or run an
admin's command on each inbound SMS; STOP/START stay first."""

from gsmgw.rules.match import match, render
from gsmgw.rules.runner import RulesRunner, run_command

__all__ = ["RulesRunner", "match", "render", "run_command"]
