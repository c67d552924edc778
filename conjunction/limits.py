"""Strings the database can store, as pydantic types: their columns' lengths and no NUL.

PostgreSQL refuses a string longer than its column or one holding a NUL character, where SQLite
takes both; input is checked against these types where it enters, so both databases behave
alike and nothing accepted fails later in a job. The lengths are those of conjunction/models.py.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints

DELIVERY_ID = 100  # deliveries.delivery_id
SHA = 64  # events.sha, projects.config_sha
REF = 300  # events.ref
NAME = 300  # events.pipeline, projects.name
BRANCH = 200  # projects.default_branch
FULL_NAME = 200  # owner/name on a forge: with the host it fits a 300-character project name
URL = 2000
INT32 = 2**31 - 1  # projects.installation_id is a 32-bit integer on PostgreSQL


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(no_nul)]  # for a length given where it is used
Sha = Annotated[str, StringConstraints(min_length=1, max_length=SHA), AfterValidator(no_nul)]
Ref = Annotated[str, StringConstraints(max_length=REF), AfterValidator(no_nul)]
Name = Annotated[str, StringConstraints(max_length=NAME), AfterValidator(no_nul)]
Branch = Annotated[str, StringConstraints(max_length=BRANCH), AfterValidator(no_nul)]
FullName = Annotated[
    str, StringConstraints(min_length=3, max_length=FULL_NAME), AfterValidator(no_nul)
]
Url = Annotated[str, StringConstraints(max_length=URL), AfterValidator(no_nul)]
