"""``.jsonl`` / ``.ndjson``: one article per line with ``title``, ``text``, optional ``date``
and ``id`` (``_id`` is accepted too); other fields are kept as metadata."""

from __future__ import annotations

import json
from dataclasses import replace

from ..documents import _WS, Document, Problem, _blocks, _iso_date, _valid_text

SUFFIXES = (".jsonl", ".ndjson")


def parse_jsonl(text: str, path: str) -> tuple[list[Document], list[Problem]]:
    """One article per line: ``title``, ``text``, optional ``date`` and ``id``.

    A record's key is its ``id`` (else its line number). Every record is its
    own document: a key already taken in the file is reported as a problem and
    the record kept under ``"<id> (line N)"``, so nothing is lost or merged.
    """
    docs: list[Document] = []
    problems: list[Problem] = []
    first_line: dict[str, int] = {}  # key -> the line that took it
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(where, f"not valid JSON ({exc.msg}); line skipped"))
            continue
        except (RecursionError, ValueError):
            problems.append(Problem(where, "JSON nested too deeply to read; line skipped"))
            continue
        if not isinstance(record, dict):
            problems.append(Problem(where, "not a JSON object; line skipped"))
            continue
        body = record.get("text")
        if not isinstance(body, str):
            problems.append(Problem(where, 'no "text" string; line skipped'))
            continue
        body = _valid_text(body)
        title = record.get("title")
        title = _WS.sub(" ", _valid_text(title)).strip() if isinstance(title, str) else ""
        raw_id = record.get("id", record.get("_id"))
        key = str(raw_id) if raw_id is not None else str(lineno)
        raw_date = record.get("date")
        date = _iso_date(raw_date) if isinstance(raw_date, str) else None
        fields = {
            k: v for k, v in record.items() if k not in ("text", "title", "date", "id", "_id")
        }
        if isinstance(raw_date, str) and date != raw_date:
            fields["date_raw"] = raw_date
        paragraphs = [replace(p, line=lineno) for p in _blocks(body, 0, len(body))]
        if not paragraphs:
            continue
        if key in first_line:
            taken = key
            key = f"{taken} (line {lineno})"
            while key in first_line:  # an id spelled like that exists as well
                key += "'"
            what = "id" if raw_id is not None else "key (its line number)"
            problems.append(
                Problem(
                    where,
                    f"{what} {taken!r} is already the key of line {first_line[taken]}; "
                    f"record kept as {key!r} (give each record its own id)",
                )
            )
        first_line[key] = lineno
        docs.append(
            Document(
                path=path,
                title=title,  # may be empty: a record's text is not repeated as its title
                paragraphs=paragraphs,
                date=date,
                key=key,
                format="jsonl",
                fields=fields,
            )
        )
    return docs, problems
