"""CSV files streamed row by row: any size, never held in memory."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence

from django.http import StreamingHttpResponse


class _Echo:
    """A file-like object whose write() hands back what it is given: csv.writer then returns each line."""

    def write(self, value: str) -> str:
        return value


def csv_response(header: Sequence, rows: Iterable[Sequence], *, filename: str) -> StreamingHttpResponse:
    """A CSV attachment: `header`, then `rows` (an iterable consumed while the response streams)."""
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
