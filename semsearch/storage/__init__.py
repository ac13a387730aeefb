"""The index on disk: SQLite (files, documents, passages, FTS5, the manifest) beside the
FAISS vectors of each committed generation.

- `schema`: the tables and their migrations, one named function each;
- `store`: rows and reads (one connection per thread, one read snapshot per
  query) and the generation commit (vectors written, fsynced and renamed, then
  one SQLite transaction names them; older files pruned after it);
- `lock`: the one-writer lock;
- `integrity`: durable renames, write failures as one error, checksums of every
  file, and the full `check`;
- `vectors`: the FAISS side behind one narrow interface (flat, HNSW, IVF, IVF-PQ).
"""
