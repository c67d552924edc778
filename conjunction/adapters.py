"""Which adapter serves a project: its code host by host name, its runner by its `trigger:`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from conjunction.codehost import CodeHost
from conjunction.config.repo_config import Trigger
from conjunction.names import host_of
from conjunction.runner import Runner

WEBHOOK = "webhook"


@dataclass
class Adapters:
    hosts: dict[str, CodeHost] = field(default_factory=dict)  # by host name, e.g. github.com
    runners: dict[str, Runner] = field(default_factory=dict)  # by kind, e.g. webhook

    @classmethod
    def of(cls, *hosts: CodeHost, runners: Mapping[str, Runner] | None = None) -> Adapters:
        return cls({host.host.lower(): host for host in hosts}, dict(runners or {}))

    def host(self, project: str) -> CodeHost | None:
        return self.hosts.get(host_of(project))

    def runner(self, project: str, trigger: Trigger) -> Runner | None:
        """A webhook trigger's runner, else the project's code host when it runs pipelines."""
        if trigger.webhook is not None:
            return self.runners.get(WEBHOOK)
        host = self.host(project)
        return host if isinstance(host, Runner) else None
