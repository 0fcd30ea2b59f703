"""How a query is limited to what an API key may see, as the store's queries take it.

An :data:`InScope` is a function of a column name and the query's argument list that returns a
SQL condition on that column, appending its own parameters to the list (the API's
``Scope.enterprise_sql`` and ``Scope.region_sql`` are two).
"""

from __future__ import annotations

from collections.abc import Callable

InScope = Callable[[str, list], str]
