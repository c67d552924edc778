"""A forge of the tests, Acme, as a forge's package holds it: its driver here, its settings,
server part and command beside it. A line in `conjunction.forges.DRIVERS` is all it takes."""

from __future__ import annotations

from conjunction.forges.driver import Driver
from tests.acme.settings import AcmeSettings

DRIVER = Driver(
    name="acme",
    display_name="Acme Forge",
    package=__name__,
    settings=AcmeSettings,
    joined_by="Acme Forge (python app.py acme add)",
    command="Acme Forge repositories",
)
