"""The database schema: migrations are named functions applied in order on open, each in
one transaction; ``PRAGMA user_version`` counts those applied."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from ..query.lexical import DEFAULT_TOKENIZER, fts_spec

SCHEMA_VERSION = 4


def _run_script(db: sqlite3.Connection, script: str) -> None:
    """Run statements one by one: ``executescript`` would commit the open transaction."""
    statement = ""
    for part in script.split(";"):
        statement += part + ";"
        if sqlite3.complete_statement(statement):
            if statement.strip(" \n;"):
                db.execute(statement)
            statement = ""


def _m001_create_tables(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        CREATE TABLE manifest (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL            -- JSON
        );
        CREATE TABLE files (
            id         INTEGER PRIMARY KEY,
            path       TEXT NOT NULL,       -- as given at index time
            abspath    TEXT NOT NULL UNIQUE,
            format     TEXT NOT NULL,
            sha256     TEXT NOT NULL,
            size       INTEGER NOT NULL,
            mtime      REAL NOT NULL,
            indexed_at TEXT NOT NULL
        );
        CREATE TABLE documents (
            id      INTEGER PRIMARY KEY,
            file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL,       -- position in its file (JSON Lines hold several)
            key     TEXT NOT NULL,          -- the record id for JSON Lines, else ''
            title   TEXT NOT NULL,
            date    TEXT,                   -- YYYY-MM-DD or NULL
            fields  TEXT NOT NULL           -- JSON: header fields and other metadata
        );
        CREATE INDEX documents_file ON documents(file_id);
        CREATE TABLE passages (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- = the FAISS id, never reused
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            paragraph   INTEGER NOT NULL,   -- 0-based paragraph number in the article
            piece       INTEGER NOT NULL,   -- 0-based piece of a split paragraph
            pieces      INTEGER NOT NULL,   -- how many pieces the paragraph was split into
            start       INTEGER NOT NULL,   -- character span in the article
            end         INTEGER NOT NULL,
            text        TEXT NOT NULL,
            embed_hash  TEXT NOT NULL       -- sha256 of the embedded text
        );
        CREATE INDEX passages_document ON passages(document_id);
        CREATE INDEX passages_embed_hash ON passages(embed_hash);
        """,
    )


_LEXICAL_TABLE = """
    CREATE VIRTUAL TABLE passages_fts USING fts5(body, tokenize='{spec}');
    CREATE TRIGGER passages_fts_insert AFTER INSERT ON passages BEGIN
        INSERT INTO passages_fts(rowid, body) VALUES (
            new.id,
            (SELECT title FROM documents WHERE id = new.document_id) || char(10) || new.text
        );
    END;
    CREATE TRIGGER passages_fts_delete AFTER DELETE ON passages BEGIN
        DELETE FROM passages_fts WHERE rowid = old.id;
    END;
    INSERT INTO passages_fts(rowid, body)
        SELECT p.id, d.title || char(10) || p.text
        FROM passages p JOIN documents d ON d.id = p.document_id;
"""


def create_lexical_table(db: sqlite3.Connection, tokenizer: str = DEFAULT_TOKENIZER) -> None:
    """The FTS5 table over title + passage with ``tokenizer`` (one of `lexical.TOKENIZERS`),
    filled from the passages, and the triggers that keep it in step with them."""
    _run_script(db, _LEXICAL_TABLE.format(spec=fts_spec(tokenizer)))


def replace_lexical_table(db: sqlite3.Connection, tokenizer: str) -> None:
    """Make the FTS5 table anew with another tokenizer, from the passages (nothing else is
    touched: no vector changes). Inside the caller's transaction: a failure keeps the old."""
    _run_script(
        db,
        """
        DROP TRIGGER IF EXISTS passages_fts_insert;
        DROP TRIGGER IF EXISTS passages_fts_delete;
        DROP TABLE IF EXISTS passages_fts;
        """,
    )
    create_lexical_table(db, tokenizer)


def _m002_lexical_index(db: sqlite3.Connection) -> None:
    """BM25 over title + passage, kept in step with the passages by triggers."""
    create_lexical_table(db, DEFAULT_TOKENIZER)
    db.execute("CREATE INDEX documents_date ON documents(date)")


def _m003_lines_and_roots(db: sqlite3.Connection) -> None:
    """Where each passage starts in its file, and the folder each file was indexed under.

    Rows of older indexes get 0 (line and column not known) and '' (root not
    recorded): nothing is re-read or re-embedded on open; the next `add` that
    finds a file records its root, and a file's lines come with its next re-index.
    """
    columns = {
        table: {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        for table in ("passages", "files")
    }
    for table, name, kind in (
        ("passages", "line", "INTEGER NOT NULL DEFAULT 0"),  # 1-based; 0 = not known
        ("passages", "col", "INTEGER NOT NULL DEFAULT 0"),  # 1-based, UTF-8 bytes; 0 = not known
        ("files", "root", "TEXT NOT NULL DEFAULT ''"),  # the real path of the file or folder
    ):  # given to `add`; '' = not recorded
        if name not in columns[table]:  # (present when an index was downgraded by hand)
            db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def _m004_pages(db: sqlite3.Connection) -> None:
    """The page (PDF) or chapter (EPUB) each passage starts on.

    Rows of older indexes get 0 (no page), which is what their formats have:
    nothing is re-read or re-embedded on open.
    """
    columns = {r[1] for r in db.execute("PRAGMA table_info(passages)")}
    if "page" not in columns:  # (present when an index was downgraded by hand)
        db.execute("ALTER TABLE passages ADD COLUMN page INTEGER NOT NULL DEFAULT 0")  # 1-based


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _m001_create_tables,
    _m002_lexical_index,
    _m003_lines_and_roots,
    _m004_pages,
]
assert len(MIGRATIONS) == SCHEMA_VERSION
