"""Which database errors are worth retrying: the connection or server, not the data or the SQL."""

from __future__ import annotations

import asyncpg

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,  # includes ConnectionDoesNotExistError
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.TooManyConnectionsError,
)

DATA_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,  # includes invalid text (a NUL), out-of-range values
    asyncpg.IntegrityConstraintViolationError,  # check, not-null, foreign key (unique is handled first)
    asyncpg.exceptions.ProgramLimitExceededError,  # e.g. an index row too large
)
"""Errors caused by the rows themselves: the batch is bisected so only the refused rows are set aside."""

LOOP_ERRORS: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, asyncpg.PostgresError)
"""What a background loop of the store outlives: a failed round is logged and the next one runs."""
