"""The forges Conjunction speaks to, one driver each (`conjunction.forges.driver`). This is the one
list of them: the service's routes, jobs and code hosts, the command line, the setup check and the
texts all read it. A new forge is a package of its own and one line here."""

from __future__ import annotations

from conjunction.forges import gitea, github, gitlab

DRIVERS = (github.DRIVER, gitlab.DRIVER, gitea.DRIVER)
