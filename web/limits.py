"""Field length limits shared by the JSON API (:mod:`web.api.schemas`) and spreadsheet imports
(:mod:`web.importexport`), so a value refused by one is refused by the other."""

from __future__ import annotations

from typing import Final

__all__ = ["CODE_MAX", "ID_MAX", "ITEMS_MAX", "NAME_MAX", "TEXT_MAX", "TITLE_MAX"]

#: Ids (workers, enterprises, problems, skills, chains).
ID_MAX: Final = 128
#: Names and other one-line texts (a worker's name, a district, a skill, a contact).
NAME_MAX: Final = 200
#: Problem titles, notes and reasons.
TITLE_MAX: Final = 2000
#: Problem descriptions.
TEXT_MAX: Final = 200_000
#: Codes such as the unified social credit code.
CODE_MAX: Final = 64
#: Items of a list field (skills, honours, tags...).
ITEMS_MAX: Final = 200
