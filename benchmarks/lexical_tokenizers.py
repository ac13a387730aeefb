"""What each lexical tokenizer costs: building the FTS5 table and answering queries.

    python benchmarks/lexical_tokenizers.py [FOLDER]     # default ../shared/data/bbc

Reads the folder's .txt files as paragraphs (no model: only the lexical table is
built, in memory), then times a few English queries per tokenizer, and for
trigram a query of 2-character pieces (CJK, a substring scan of every passage)
against a MATCH query. Prints milliseconds and ratios to porter.
"""

from __future__ import annotations

import pathlib
import sqlite3
import sys
import time

from semsearch.query import lexical
from semsearch.storage.schema import MIGRATIONS, replace_lexical_table

QUERIES = ["oil price rises hurt profits", "who won the australian open", "chancellor budget"]


def build(folder: pathlib.Path) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    for step in MIGRATIONS:
        step(db)
    db.execute(
        "INSERT INTO files(id, path, abspath, format, sha256, size, mtime, indexed_at) "
        "VALUES (1, 'x', 'x', 'text', '', 0, 0, '')"
    )
    for doc, path in enumerate(sorted(folder.rglob("*.txt")), start=1):
        text = path.read_text(encoding="utf-8", errors="replace")
        title, _, body = text.partition("\n")
        db.execute(
            "INSERT INTO documents(id, file_id, ordinal, key, title, fields) "
            "VALUES (?, 1, ?, '', ?, '{}')",
            (doc, doc, title.strip()),
        )
        for n, para in enumerate(p for p in body.split("\n\n") if p.strip()):
            db.execute(
                "INSERT INTO passages(document_id, paragraph, piece, pieces, start, end, text, "
                "embed_hash) VALUES (?, ?, 0, 1, 0, 0, ?, '')",
                (doc, n, para.strip()),
            )
    return db


def per_query_ms(db: sqlite3.Connection, queries: list[str], tokenizer: str) -> float:
    """Mean ms of one query's search and bound (a substring scan read afresh each time)."""
    rounds = 5
    started = time.perf_counter()
    for _ in range(rounds):
        for q in queries:
            lexical._SCANS.clear()  # as a new query would find it
            lexical.search(db, q, 10, tokenizer=tokenizer)
            lexical.bound(db, q, tokenizer=tokenizer)
    return (time.perf_counter() - started) * 1000 / (rounds * len(queries))


def main() -> None:
    folder = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/bbc")
    db = build(folder)
    passages = db.execute("SELECT count(*) FROM passages").fetchone()[0]
    print(f"{folder}: {passages} passages")
    base = None
    for tokenizer in lexical.TOKENIZERS:
        started = time.perf_counter()
        replace_lexical_table(db, tokenizer)
        built = time.perf_counter() - started
        ms = per_query_ms(db, QUERIES, tokenizer)
        base = base or ms
        ratio = ms / base
        print(f"  {tokenizer:<9} table {built:5.2f} s, query + bound {ms:6.2f} ms ({ratio:.1f}x)")
        if tokenizer == "trigram":
            scan = per_query_ms(db, ["北京大学", "oi pr"], tokenizer)  # CJK, 2-letter words: a scan
            print(f"  trigram substring scan (CJK pieces, short words) {scan:6.2f} ms "
                  f"({scan / base:.1f}x porter's query)")


if __name__ == "__main__":
    main()
