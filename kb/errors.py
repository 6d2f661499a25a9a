"""Errors the knowledge base raises for user mistakes: each message names what is wrong."""

from __future__ import annotations

from typing import TYPE_CHECKING

from diagnostics.types import ClusterdocError, ValidationError

if TYPE_CHECKING:
    from kb.ingest import IngestReport


class KBError(ClusterdocError):
    """Base of every knowledge-base error."""


class RecordError(ValidationError, KBError):
    """A record field is missing or invalid. ``where`` names the file and line when known."""

    def __init__(self, message: str, *, where: str = "", field: str = "") -> None:
        self.where = where
        self.field = field
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}{message}")


class QueryError(ValidationError, KBError):
    """A search request is invalid (empty query, unknown filter, bad top_k)."""


class IngestError(KBError):
    """One or more files could not be ingested; files that passed were still ingested."""

    def __init__(self, message: str, report: IngestReport) -> None:
        self.report = report
        super().__init__(message)


class StoreUnavailableError(KBError):
    """The configured store cannot be reached or read (Elasticsearch down, corrupt store file)."""


class KBConfigError(ValidationError, KBError):
    """A kb config value is invalid."""
