"""`Index`: the one object a program needs to build and search an index."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from . import __version__
from .cluster import LocalRunner, Runner
from .embed import Embedder, backends, export, prompts_of
from .embed.backends import Backend, Precision
from .embed.model import SentenceTransformerEmbedder, canonical_model_name
from .embed.onnx import OnnxEmbedder
from .embed.prompts import Prompts
from .errors import (
    BackendMismatchError,
    IndexAccessError,
    IndexClosedError,
    IndexCorruptError,
    IndexNotFoundError,
    ModelLoadError,
    ModelMismatchError,
    PassageNotFoundError,
    SchemaVersionError,
    SemsearchError,
    SourceError,
    UsageError,
)
from .ingest import Problem, walk
from .ingest.passages import UNITS, Chunking, Unit
from .query import Hit, Query, check_query
from .query import language as _language
from .query import lexical as lexical_
from .query.fusion import Fusion
from .query.hits import Results, make_hit
from .query.options import Mode
from .query.rerank import Rerank
from .query.searcher import Searcher
from .query.similar import similar as _similar
from .query.spelling import Speller
from .storage import integrity
from .storage import vectors as _vectors
from .storage.lock import LOCK_NAME, WriteLock
from .storage.schema import SCHEMA_VERSION
from .storage.store import (
    DB_NAME,
    FileRow,
    PassageRow,
    StaleSnapshot,
    Store,
    delete_index_files,
    now_iso,
)
from .storage.vectors import IndexType, VectorIndex
from .update import (
    AddReport,
    FilePlan,
    Planned,
    count_changes,
    embed_hash,
    nothing_readable,
    plan_files,
    rows_under,
)

DEFAULT_INDEX = ".semsearch"
# The lexical tokenizer of a new index: `auto` picks porter for English (SciFact, Cranfield,
# BBC News and the seeds all come out English), so English collections rank as before.
DEFAULT_LEXICAL = "auto"

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(done, total)`` while passages are embedded."""

StatusCallback = Callable[[str], None]
"""Called with one line when slow work starts that no progress bar measures (loading a
model, exporting it to ONNX, calibrating int8), and when queries cannot use the index's
ONNX query model (why, and what puts it back)."""


@dataclass(frozen=True)
class _LexicalPlan:
    """The lexical tokenizer an `add` leaves the index with, and what it takes."""

    tokenizer: str  # after the run
    was: str  # the lexical table's before the run
    requested: str | None  # what was asked (auto or a tokenizer); None: nothing asked, kept
    reason: str  # why this one ("as asked", or what auto found)

    @property
    def rebuild_table(self) -> bool:
        return self.tokenizer != self.was

    @property
    def changes(self) -> bool:
        """Whether the run must commit for it (the table, or only what the manifest says)."""
        return self.requested is not None


@dataclass(frozen=True)
class IndexInfo:
    """What `Index.info` tells about an index."""

    path: str
    documents: int
    passages: int
    files: int
    model: str
    dimension: int
    index_type: str
    size_bytes: int
    created_at: str
    updated_at: str
    schema_version: int
    semsearch_version: str
    chunking: dict[str, Any]
    backend: str = "torch"
    precision: str = "fp32"
    roots: list[str] = field(default_factory=list)  # the indexed folders and files (`roots`)
    # Of size_bytes, the files other paths hold too (the ONNX query model as a hard link
    # with the model cache): deleting the index does not free them.
    shared_bytes: int = 0
    query_model: export.Storage = field(default_factory=lambda: export.Storage("none"))
    generation: int = 0  # the commit readers see now; every commit adds one
    lexical: str = lexical_.DEFAULT_TOKENIZER  # the BM25 index's tokenizer (`--lexical`)
    lexical_requested: str = lexical_.DEFAULT_TOKENIZER  # what was asked: auto or the same
    lexical_reason: str = ""  # why auto chose it ("" for an index older than the choice)
    query_prefix: str = ""  # put before each query (the model's prompt: `embed.prompts`)
    passage_prefix: str = ""  # put before each passage as it is embedded
    embedded_on: str = ""  # where the last run that embedded ran ("this process", "Ray ...")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PassageView:
    """What `Index.passage` returns: a passage in its article, with its neighbours.

    The `Hit`s carry no ranking (``rank`` 0, ``score`` 0): they say what and where
    each passage is (title, date, path, paragraph, span, line)."""

    passage: Hit
    before: list[Hit]  # the passages just before it in its article, in reading order
    after: list[Hit]  # and just after it
    position: int  # 1-based place of the passage among its article's passages
    passages: int  # how many passages its article has


@dataclass(frozen=True)
class IndexedFile:
    """One file an index holds (`Index.files`)."""

    path: str  # as given when it was indexed (relative to where that run was started)
    abspath: str  # where it lies (absolute; see `Index.files` for a moved index)
    root: str  # the indexed folder (or file) it was found under, absolute
    format: str  # text, seed, markdown, html, jsonl, or empty (no text)
    size: int  # bytes, when indexed
    modified: str  # its modification time when indexed (ISO 8601, UTC)
    indexed_at: str  # when its passages were made (ISO 8601, UTC)
    documents: int
    passages: int
    exists: bool  # whether it is still on disk (`Index.remove` forgets one that is not)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IndexedRoot:
    """A folder (or file) given to `Index.add`, with what the index holds from it."""

    root: str  # absolute
    files: int
    documents: int
    passages: int
    indexed_at: str  # the latest of its files' (ISO 8601, UTC)
    exists: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DropReport:
    """What `Index.drop` deleted."""

    path: str
    files_deleted: int
    bytes_freed: int
    kept: list[str]  # other files found in the folder, left there with it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Index:
    """A semsearch index in a folder.

    >>> index = Index.open(".semsearch", create=True)   # doctest: +SKIP
    >>> index.add(["seeds/"])                           # doctest: +SKIP
    >>> index.search("who attends the parade", k=5)     # doctest: +SKIP
    """

    def __init__(
        self, folder: str, store: Store | None, embedder: Embedder | None, wanted: str | None
    ) -> None:
        self.folder = folder
        self._store = store
        self._embedder = embedder
        self._given_embedder = embedder is not None  # queries use it too, not the export
        self._wanted = wanted
        # Readers share these; each is replaced whole, never changed in place:
        # generation -> its vectors (the newest two), and the query embedder with the
        # manifest entries it was made for.
        self._generations: dict[int, VectorIndex] = {}
        self._query_model: tuple[str, Embedder] | None = None
        self._speller = Speller()  # the lexical vocabulary of the newest generation read
        self._lock = threading.RLock()  # one thread loads vectors or a model at a time
        self._closed = False
        self._fingerprint_checked = False
        self._broken: SemsearchError | None = None  # why the existing index could not open
        self._wanted_unit: str | None = None
        self._created_db = False  # this add() made the database (discard it if nothing commits)
        self._wanted_type: str | None = None
        self._wanted_backend: str | None = None
        self._wanted_precision: str | None = None
        self._wanted_lexical: str | None = None
        self._wanted_prefixes: tuple[str | None, str | None] = (None, None)  # query, passage
        self._status: StatusCallback | None = None

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] = DEFAULT_INDEX,
        *,
        create: bool = False,
        model: str | None = None,
        embedder: Embedder | None = None,
        unit: Unit | None = None,
        index_type: IndexType | None = None,
        backend: Backend | None = None,
        precision: Precision | None = None,
        status: StatusCallback | None = None,
        lexical: str | None = None,
        query_prefix: str | None = None,
        passage_prefix: str | None = None,
    ) -> Index:
        """Open the index in ``path``; with ``create=True`` one is made on the first `add`.

        ``model`` is a sentence-transformers name or path (default all-MiniLM-L6-v2
        for a new index, the index's own model for an existing one). Searching or
        extending an index with another model than the one that built it raises
        `ModelMismatchError`; ``add(..., rebuild=True)`` switches models.
        ``embedder`` replaces the model altogether (tests, custom backends).
        ``unit`` is how a new index cuts articles: ``"paragraph"`` (default) or
        ``"document"`` (one passage per article, the BEIR protocol).
        ``index_type`` is ``"auto"`` (default: exact up to 100,000 passages, IVF
        above), ``"flat"``, ``"hnsw"``, ``"ivf"``, ``"ivfpq"`` or ``"ivfpq-disk"``; the next
        `add` converts an existing index to it without re-embedding anything.
        ``backend`` embeds passages with ``"torch"`` (sentence-transformers, the
        default), ``"onnx"`` or ``"openvino"``; ``precision="int8"`` (OpenVINO
        only) quantises the model, calibrated on the passages of the first run.
        An index keeps its backend: another one is refused unless rebuilding.
        ``status`` is told, in one line, of slow work about to start that no
        progress callback measures (``"Loading all-MiniLM-L6-v2 (torch)..."``) and
        why queries fall back to the model itself when they do.
        ``lexical`` is the tokenizer of the BM25 index: ``"auto"`` (default for a
        new index: chosen from the passages' text, see `query.language`),
        ``"porter"`` (English, stemmed), ``"unicode61"`` (any language written with
        spaces, accents folded, no stemming) or ``"trigram"`` (substrings: Chinese,
        Japanese, Korean, Thai). An existing index keeps its own unless another is
        given: the next `add` then rebuilds the lexical index alone, from the stored
        passages, in its atomic commit (nothing is re-embedded).
        ``query_prefix`` and ``passage_prefix`` replace the model's own prompts
        (see `embed.prompts`; ``""`` for none) in a new index or a rebuild; an
        existing index keeps those it was built with, and refuses others.
        """
        if unit is not None and unit not in UNITS:
            raise UsageError(f"unit must be one of {', '.join(UNITS)} (got {unit!r})")
        if index_type is not None and index_type not in _vectors.INDEX_TYPES:
            raise UsageError(
                f"index type must be one of {', '.join(_vectors.INDEX_TYPES)} (got {index_type!r})"
            )
        backends.check_choice(backend, precision)
        if lexical is not None and lexical not in lexical_.LEXICAL_CHOICES:
            raise UsageError(
                f"lexical must be one of {', '.join(lexical_.LEXICAL_CHOICES)} (got {lexical!r})"
            )
        folder = os.fspath(path)
        store: Store | None = None
        broken: SemsearchError | None = None
        try:
            if Store.exists(folder) or not create:
                store = Store.open(folder)  # raises: not found, damaged, or newer
        except (IndexCorruptError, SchemaVersionError) as exc:
            if not create:
                raise
            broken = exc  # only add(..., rebuild=True) may go on: it sets the old files aside
        if embedder is not None:
            wanted: str | None = embedder.name
        else:
            wanted = canonical_model_name(model) if model else None
        opened = cls(folder, store, embedder, wanted)
        opened._broken = broken
        opened._wanted_unit = unit
        opened._wanted_type = index_type
        opened._wanted_backend = backend
        opened._wanted_precision = precision
        opened._wanted_lexical = lexical
        opened._wanted_prefixes = (query_prefix, passage_prefix)
        opened._status = status
        return opened

    def close(self) -> None:
        """Release the index; searches still running in other threads end with an error."""
        self._closed = True
        if self._store is not None:
            self._store.close()
            self._store = None
        self._generations = {}

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def model(self) -> str:
        """The model of this index: the one that built it, else the one asked for."""
        self._check_open()
        if self._store is not None:
            built_with = self._store.manifest().get("model")
            if built_with:
                return str(built_with)
        return self._wanted or canonical_model_name(None)

    @property
    def exists(self) -> bool:
        """True once something has been committed to the folder."""
        self._check_open()
        return self._store is not None

    # ------------------------------------------------------------------ embedder

    def _check_model(self) -> None:
        """Refuse to use an index with another model than the one that built it."""
        if self._store is None or self._wanted is None:
            return
        built_with = self._store.manifest().get("model")
        if built_with and built_with != self._wanted:
            raise ModelMismatchError(
                f"the index in {self.folder} was built with {built_with}, not {self._wanted}: "
                "leave out --model to use the index's own model, or switch models with "
                f"`semsearch index --rebuild --model {self._wanted} PATH`"
            )

    def _get_embedder(self, name: str) -> Embedder:
        if self._embedder is None or self._embedder.name != name:
            self._embedder = self._announced(self._load_model(name))
        return self._embedder

    def _say(self, message: str) -> None:
        if self._status is not None:
            self._status(message)

    def _announced(self, embedder: Embedder, purpose: str = "") -> Embedder:
        """``embedder``, telling `status` when its weights start loading (seconds)."""
        if isinstance(embedder, SentenceTransformerEmbedder) and self._status is not None:
            name = _short_name(embedder.name)
            embedder.on_load = lambda: self._say(f"Loading {name} (torch){purpose}...")
        return embedder

    @staticmethod
    def _load_model(name: str) -> Embedder:
        """A model by name or path (its weights are loaded once per process)."""
        return SentenceTransformerEmbedder(name)

    def _query_embedder(self, manifest: dict[str, Any]) -> Embedder:
        """The embedder for queries on the generation whose manifest is ``manifest``.

        The index's exported ONNX model when it has one: it needs neither torch
        nor sentence-transformers, so a query from a fresh process answers in
        well under a second; otherwise the model itself. It is kept apart from
        the embedder that `add` uses, so an add (even a rebuild with another
        model) in one thread never changes what queries in others embed with.
        """
        self._check_model()
        if self._given_embedder:
            with self._lock:  # the embedder given to `open`, checked once
                return self._checked_embedder()
        key = json.dumps(
            [manifest.get("model"), manifest.get("model_fingerprint"), manifest.get("query_model")],
            sort_keys=True,
        )
        cached = self._query_model
        if cached is not None and cached[0] == key:
            return cached[1]
        with self._lock:
            cached = self._query_model
            if cached is not None and cached[0] == key:
                return cached[1]
            recorded = manifest.get("query_model")
            exported = export.usable(self.folder, recorded)
            embedder: Embedder
            if exported is not None:
                loaded = OnnxEmbedder.load(
                    str(manifest.get("model") or self.model),
                    str(manifest.get("model_fingerprint", "")),
                    self.folder,
                    exported,
                )
                # a damaged file no checksum was recorded for: the model itself answers
                embedder = loaded if loaded is not None else self._model_for(manifest)
            else:
                if recorded:
                    self._say(_fallback_note(self.folder, recorded))
                embedder = self._model_for(manifest)
            self._query_model = (key, embedder)
            return embedder

    def _model_for(self, manifest: dict[str, Any]) -> Embedder:
        """The model of the generation whose manifest is ``manifest``, checked against it, for
        queries (a model is loaded once per process, however many embedders name it)."""
        model = self._announced(
            self._load_model(str(manifest.get("model") or self.model)), " for queries"
        )
        self._check_against(manifest, model)
        return model

    def _check_against(self, manifest: dict[str, Any], embedder: Embedder) -> None:
        """Refuse an embedder whose weights or dimension are not those that built the index."""
        recorded = manifest.get("model_fingerprint")
        if recorded and embedder.fingerprint != recorded:
            raise ModelMismatchError(
                f"the files of model {embedder.name} differ from those that built the index in "
                f"{self.folder}: rebuild it with `semsearch index --rebuild PATH`"
            )
        if int(manifest.get("dimension", embedder.dimension)) != embedder.dimension:
            raise ModelMismatchError(
                f"model {embedder.name} gives vectors of dimension {embedder.dimension}, the "
                f"index holds {manifest.get('dimension')}: rebuild it with "
                "`semsearch index --rebuild PATH`"
            )

    def _checked_embedder(self, wrap: Callable[[Embedder], Embedder] | None = None) -> Embedder:
        """The index's embedder, after checking it is the very model that built the index.

        ``wrap`` puts an indexing backend around the model before the checks.
        """
        self._check_model()
        embedder = self._get_embedder(self.model)
        if wrap is not None:
            embedder = wrap(embedder)
        if self._store is not None and not self._fingerprint_checked:
            self._check_against(self._store.manifest(), embedder)
            self._fingerprint_checked = True
        return embedder

    def _backend(self, manifest: dict[str, Any], starting: bool) -> tuple[str, str]:
        """The backend and precision of this run: the index's own unless it starts afresh."""
        if starting:
            backend = self._wanted_backend or str(manifest.get("backend") or "torch")
            if backend not in backends.BACKENDS:
                backend = "torch"  # an index built by a custom embedder
            precision = self._wanted_precision or (
                str(manifest.get("precision") or "fp32") if backend == "openvino" else "fp32"
            )
            backends.check_choice(backend, precision)
            return backend, precision
        held = (str(manifest.get("backend") or "torch"), str(manifest.get("precision") or "fp32"))
        said = " ".join(held)
        backend = self._wanted_backend or held[0]
        same = held[1] if backend == held[0] else "fp32"
        wanted = (backend, self._wanted_precision or same)
        if wanted != held and held[0] in backends.BACKENDS:
            switch = f"--backend {wanted[0]}" + (" --precision int8" if wanted[1] == "int8" else "")
            raise BackendMismatchError(
                f"the index in {self.folder} was embedded with {said}, not "
                f"{' '.join(wanted)}, and their vectors must not mix: leave out "
                "--backend/--precision to use the index's own, or re-embed everything with "
                f"`semsearch index --rebuild {switch} PATH`"
            )
        return held

    @staticmethod
    def _with_backend(
        embedder: Embedder,
        backend: str,
        precision: str,
        folder: str | None = None,
        known: export.QueryModel | None = None,
    ) -> Embedder:
        """``embedder`` on another engine; ``known`` (the index's export) spares loading torch."""
        if backend == "torch" or not isinstance(embedder, SentenceTransformerEmbedder):
            return embedder
        return backends.ExportedEmbedder(embedder, backend, precision, folder, known)

    # ------------------------------------------------------------------ reading

    def _check_open(self) -> None:
        if self._closed:
            raise IndexClosedError(
                f"the index in {self.folder} has been closed: open it again with Index.open"
            )

    def _store_or_raise(self) -> Store:
        self._check_open()
        if self._broken is not None:
            raise self._broken
        if self._store is None:
            raise IndexNotFoundError(
                f"no index in {self.folder}: run `semsearch index PATH` first to build one"
            )
        return self._store

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """One committed generation of the index, for as many reads as the block makes.

        Every read inside sees the same generation: its database rows and its
        vectors, however other threads or processes commit meanwhile. `search`
        opens one per query; a server can open one to answer several calls alike.
        """
        store = self._store_or_raise()
        for _attempt in range(5):
            with store.reading():
                manifest = store.manifest(fresh=True)
                try:
                    vectors = self._vectors_of(store, manifest)
                except StaleSnapshot:
                    continue  # later commits pruned this generation: read a newer one
                yield Snapshot(self, store, manifest, vectors)
                return
        raise IndexCorruptError(f"the index in {self.folder} kept changing while being read")

    def _vectors_of(self, store: Store, manifest: dict[str, Any]) -> VectorIndex:
        """The vectors of the generation ``manifest`` names (read inside its snapshot)."""
        generation = int(manifest.get("generation", 0))
        vectors = self._generations.get(generation)
        if vectors is not None:
            return vectors
        with self._lock:
            vectors = self._generations.get(generation)
            if vectors is None:
                vectors = store.load_vectors(mmap=True)  # IVF lists stay on disk
                self._keep_generation(generation, vectors)
            return vectors

    def _keep_generation(self, generation: int, vectors: VectorIndex) -> None:
        """Remember ``vectors`` as those of ``generation``, with the newest one before it."""
        kept = {g: v for g, v in self._generations.items() if g != generation}
        newest = sorted(kept, reverse=True)[:1]
        self._generations = {g: kept[g] for g in newest} | {generation: vectors}

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        mode: Mode | None = None,
        min_score: float | None = None,
        since: str | None = None,
        until: str | None = None,
        path: str | None = None,
        by_article: bool = False,
        collapse: bool = True,
        highlight: bool = False,
        fusion: Fusion | None = None,
        correct: bool = True,
        rerank: bool | str | Rerank | None = None,
        rerank_depth: int | None = None,
    ) -> Results:
        """The ``k`` passages that best match ``query``, best first.

        ``mode`` is ``"hybrid"`` (default: dense and BM25 rankings fused),
        ``"dense"`` (embeddings only; scores are cosines) or ``"lexical"``
        (BM25 only). ``since``/``until`` (YYYY-MM-DD) and ``path`` (a glob)
        filter before ranking. ``by_article`` keeps the best passage of each
        article; ``collapse`` folds near-identical passages into one hit (the
        others listed in ``hit.also_in``); ``highlight=True`` marks the best
        sentences (``hit.highlights``; it embeds each sentence of the hits, so
        it costs a few milliseconds more).

        A word the lexical index does not know (a typo: "chancelor") is searched for
        as the closest word it does ("chancellor"), by every mode; the result, a
        list of `Hit`, then has ``corrected_query``, the query as searched for (None
        when nothing was corrected). ``correct=False`` searches for the words as
        given. See `query.spelling` for what counts as close.

        ``rerank=True`` (or a method name, see `query.rerank.METHODS`) re-scores the top
        ``rerank_depth`` (default 50) candidates with a second stage before grouping;
        hybrid and dense modes only.
        """
        q = check_query(
            query,
            k,
            min_score,
            mode=mode,
            since=since,
            until=until,
            path=path,
            by_article=by_article,
            collapse=collapse,
            highlight=highlight,
            fusion=fusion,
            correct=correct,
            rerank=rerank,
            rerank_depth=rerank_depth,
        )
        with self.snapshot() as snap:
            return snap.run([q])[0]

    def search_many(
        self, queries: Sequence[str], k: int = 10, *, batch_size: int = 64, **options: Any
    ) -> list[Results]:
        """`search` for many queries at once, embedding them in batches (for evaluation)."""
        checked = [check_query(text, k, **options) for text in queries]
        if not checked:
            return []
        with self.snapshot() as snap:
            return snap.run(checked, batch_size=batch_size)

    def similar(
        self,
        passage_ids: int | Sequence[int],
        k: int = 10,
        *,
        min_score: float | None = None,
        since: str | None = None,
        until: str | None = None,
        path: str | None = None,
        by_article: bool = False,
        collapse: bool = True,
    ) -> list[Hit]:
        """The ``k`` passages nearest to a stored one (``hit.passage_id``), best first.

        From the passage's stored vector: nothing is embedded and no model is
        loaded. Several ids stand for their mean (a paragraph in pieces, a whole
        file: see `passages_of`). The given passages and every passage
        near-identical to one of them (what `search` collapses) are left out.
        Scores are cosines; the other options are `search`'s. An id the index
        does not hold raises `UsageError`.
        """
        _passage_id_list(passage_ids)  # bad arguments before any read
        with self.snapshot() as snap:
            return snap.similar(
                passage_ids,
                k,
                min_score=min_score,
                since=since,
                until=until,
                path=path,
                by_article=by_article,
                collapse=collapse,
            )

    def passages_of(
        self,
        file: str | os.PathLike[str],
        *,
        paragraph: int | None = None,
        key: str | None = None,
        part: str | None = None,
    ) -> list[int]:
        """The ids of an indexed file's passages, in order: all of them, or those of one
        paragraph (1-based, as hits number them) and/or one record (``key``, the id of a
        JSON Lines record), for `similar`.

        ``part`` is what follows the ``#`` of a hit's ``PATH#KEY`` or a
        ``PATH#PARAGRAPH``, when the caller cannot tell which: the record of that key
        when the file holds one (record ids may be numbers: ``n.jsonl#123``), else a
        paragraph number. It goes without ``paragraph`` and ``key``.

        ``file`` is a path as for `remove` (relative or absolute, also when the file
        is gone from disk). A path nothing is indexed at raises `SourceError`; a
        folder, a paragraph or a record the file does not have, `UsageError`.
        """
        given = os.fspath(file)
        if part is not None and (paragraph is not None or key is not None):
            raise UsageError("give part alone, or paragraph and/or key")
        if paragraph is not None and (
            isinstance(paragraph, bool) or not isinstance(paragraph, int) or paragraph < 1
        ):
            raise UsageError(f"paragraph must be a whole number of at least 1 (got {paragraph!r})")
        store = self._store_or_raise()
        with store.reading():
            moved_from = store.moved_from()
            relocate = _relocator(store, moved_from)
            under = rows_under(store.files().values(), given, relocate)
            if not under:
                raise SourceError(self._not_indexed(given, store))
            if len(under) > 1:
                raise UsageError(
                    f"{given} is a folder of {len(under)} indexed files: give one file (see "
                    f"`semsearch list{self._index_option()}`)"
                )
            rows = sorted(
                store.passages(store.passage_ids([under[0].id]).tolist()).values(),
                key=lambda r: (r.document_id, r.paragraph, r.piece),
            )
        if part is not None:  # a record's key first: the hit display `PATH#KEY` round-trips
            if part.isdigit() and not any(r.key == part for r in rows):
                paragraph = int(part)
                if paragraph < 1:
                    raise UsageError(f"paragraph must be a whole number of at least 1 (got {part})")
            else:
                key = part
        return [r.id for r in _pick_passages(given, rows, paragraph, key)]

    def passage(self, passage_id: int, *, context: int = 2) -> PassageView:
        """One stored passage (``hit.passage_id``) with up to ``context`` passages of its
        article before and after it, in reading order (reads no vectors, loads no model).

        An id the index does not hold raises `PassageNotFoundError` (a `UsageError`).
        """
        pid = _passage_id_list(passage_id)[0]
        if isinstance(context, bool) or not isinstance(context, int) or not 0 <= context <= 50:
            raise UsageError(f"context must be a whole number from 0 to 50 (got {context!r})")
        store = self._store_or_raise()
        with store.reading():
            found = store.passages([pid])
            if pid not in found:
                raise PassageNotFoundError(
                    f"the index in {self.folder} holds no passage {pid}: passage ids are the "
                    "passage_id of the hits of `semsearch query --json`"
                )
            row = found[pid]
            order = store.document_passage_ids(row.document_id)
            at = order.index(pid)
            near = order[max(0, at - context) : at] + order[at + 1 : at + 1 + context]
            rows = store.passages(near)

        def as_hit(r: PassageRow) -> Hit:
            return make_hit(0, 0.0, r)

        return PassageView(
            passage=as_hit(row),
            before=[as_hit(rows[i]) for i in order[max(0, at - context) : at] if i in rows],
            after=[as_hit(rows[i]) for i in order[at + 1 : at + 1 + context] if i in rows],
            position=at + 1,
            passages=len(order),
        )

    def info(self) -> IndexInfo:
        """Counts, model and settings of the index (reads no vectors)."""
        store = self._store_or_raise()
        with store.reading():
            m = store.manifest(fresh=True)
            return IndexInfo(
                path=self.folder,
                documents=store.document_count(),
                passages=store.passage_count(),
                files=store.file_count(),
                model=str(m.get("model", "")),
                dimension=int(m.get("dimension", 0)),
                index_type=str(m.get("index_type", "")),
                size_bytes=store.size_on_disk(),
                created_at=str(m.get("created_at", "")),
                updated_at=str(m.get("updated_at", "")),
                schema_version=store.schema_version(),
                semsearch_version=str(m.get("semsearch_version", "")),
                chunking=dict(m.get("chunking", {})),
                backend=str(m.get("backend") or "torch"),
                precision=str(m.get("precision") or "fp32"),
                roots=[r.root for r in self.roots()],
                shared_bytes=export.shared_bytes(self.folder),
                query_model=export.storage(self.folder, m.get("query_model")),
                generation=int(m.get("generation", 0)),
                lexical=store.lexical_tokenizer(),
                lexical_requested=str(m.get("lexical_requested") or store.lexical_tokenizer()),
                lexical_reason=str(m.get("lexical_reason", "")),
                query_prefix=Prompts.from_manifest(m).query,
                passage_prefix=Prompts.from_manifest(m).passage,
                embedded_on=str(m.get("embedded_on", "")),
            )

    def files(self) -> list[IndexedFile]:
        """Every file the index holds, with its counts and dates, by absolute path.

        ``abspath`` is where the file lies now: for an index folder moved (or
        copied) together with its documents, the file at the same place relative
        to the index's new location, when there is one (see `Store.relocate` and
        README, "Moving an index"). ``exists`` is False for a file gone from disk.
        """
        return self._files(look=True)

    def _files(self, look: bool) -> list[IndexedFile]:
        """`files`; without ``look``, ``exists`` is left True (no file is looked at)."""
        store = self._store_or_raise()
        with store.reading():
            rows = store.file_stats()
            moved_from = store.moved_from()
        out = []
        for r in rows:
            abspath = store.relocate(r.abspath, moved_from, r.root)
            out.append(
                IndexedFile(
                    path=r.path,
                    abspath=abspath,
                    root=store.relocate(r.root, moved_from, r.root) or os.path.dirname(abspath),
                    format=r.format,
                    size=r.size,
                    modified=_iso_time(r.mtime),
                    indexed_at=r.indexed_at,
                    documents=r.documents,
                    passages=r.passages,
                    exists=os.path.exists(abspath) if look else True,
                )
            )
        return sorted(out, key=lambda f: f.abspath)

    def roots(self) -> list[IndexedRoot]:
        """The folders and files given to `add` that the index holds files from, with their
        counts. (Files indexed by a semsearch older than roots count under their folder
        until the next `add` that finds them records theirs.)"""
        groups: dict[str, list[IndexedFile]] = {}
        for f in self._files(look=False):
            groups.setdefault(f.root, []).append(f)
        return [
            IndexedRoot(
                root=root,
                files=len(fs),
                documents=sum(f.documents for f in fs),
                passages=sum(f.passages for f in fs),
                indexed_at=max(f.indexed_at for f in fs),
                exists=os.path.exists(root),
            )
            for root, fs in sorted(groups.items())
        ]

    @classmethod
    def check_folder(cls, path: str | os.PathLike[str] = DEFAULT_INDEX) -> integrity.CheckReport:
        """`check` of the index in ``path``, also when it is too damaged to open: the reason it
        cannot be opened is then the report's one problem."""
        try:
            with cls.open(path) as index:
                return index.check()
        except IndexCorruptError as exc:
            return integrity.CheckReport(path=os.fspath(path), problems=[str(exc)])

    def check(self) -> integrity.CheckReport:
        """Verify everything: every file's sha256, SQLite's and FTS5's own checks, foreign keys,
        and the database against the vectors id by id (``semsearch check``).

        Returns a `CheckReport` listing the problems (``report.ok`` when there
        are none); ``report.raise_for_problems()`` raises `IndexCorruptError`.
        """
        return integrity.check_index(self._store_or_raise())

    # ------------------------------------------------------------------ writing

    def add(
        self,
        paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
        *,
        rebuild: bool = False,
        batch_size: int | None = None,
        progress: ProgressCallback | None = None,
        runner: Runner | None = None,
    ) -> AddReport:
        """Index the articles under ``paths``, embedding only what is new or changed.

        Files that have disappeared from a folder being indexed are removed.
        The whole run is one atomic commit: if it fails or is interrupted, the
        index is as it was before. ``rebuild=True`` starts from scratch (in the
        same atomic way). ``runner`` does the parsing and embedding elsewhere
        (`semsearch.cluster.connect("local:2")`: on Ray); this process plans the
        run and writes the index either way, and the caller closes the runner.
        """
        self._check_open()  # (it would open the store again, behind the caller's back)
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        started = time.perf_counter()
        created_folder = not os.path.isdir(self.folder)
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError as exc:
            raise IndexAccessError(
                f"cannot create the index folder {self.folder} ({exc.strerror}): choose another "
                "with --index DIR"
            ) from exc
        lock = WriteLock(self.folder)
        try:
            lock.acquire()
        except BaseException:
            if created_folder:  # only if still empty: another writer may be building it
                with contextlib.suppress(OSError):
                    os.rmdir(self.folder)
            raise
        self._created_db = False
        try:
            report = self._add_locked(
                list(paths),
                rebuild=rebuild,
                batch_size=batch_size,
                progress=progress,
                runner=runner if runner is not None else LocalRunner(),
            )
        except BaseException:
            if (self._created_db or created_folder) and not self._has_commit():
                self._discard_new_store(created_folder)  # leave no half-made index behind
            raise
        finally:
            lock.release()
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def remove(
        self, paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str]
    ) -> AddReport:
        """Remove the files at ``paths`` from the index: files, or folders with everything
        indexed under them, also when they are no longer on disk.

        One atomic commit, like `add`; nothing is embedded and no model is loaded. A
        path under which nothing is indexed raises `SourceError` (saying what is) and
        nothing is removed. Returns what went (``files_removed``, ``documents_removed``,
        ``passages_removed``). The files stay on disk: indexing their folder again
        brings back those still there.
        """
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        given = [os.fspath(p) for p in paths]
        if not given:
            raise UsageError("give at least one file or folder to remove from the index")
        if any(not p.strip() for p in given):  # an unset shell variable: never "everything here"
            raise UsageError(
                "an empty path was given to remove: name the files or folders to take out "
                "(`.` for everything under the current directory)"
            )
        started = time.perf_counter()
        store = self._store_or_raise()
        with WriteLock(self.folder):
            try:
                report = self._remove_locked(store, given)
            finally:
                store.forget_manifest()  # readers go on from what is committed
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _remove_locked(self, store: Store, given: list[str]) -> AddReport:
        manifest = store.manifest(fresh=True)
        rows = list(store.files().values())
        moved_from = store.moved_from()
        relocate = _relocator(store, moved_from)
        doomed: dict[int, FileRow] = {}
        for path in given:
            under = rows_under(rows, path, relocate)
            if not under:
                raise SourceError(self._not_indexed(path, store))
            doomed.update((r.id, r) for r in under)
        ids = sorted(doomed)
        passage_ids = store.passage_ids(ids)
        report = AddReport(
            documents_removed=store.document_count_in(ids),
            passages_removed=len(passage_ids),
            files_removed=sorted(
                store.relocate(r.abspath, moved_from, r.root) for r in doomed.values()
            ),
        )
        index = store.load_vectors()  # this writer's own copy
        requested = str(manifest.get("index_type_requested", "auto"))
        with store.transaction():
            index.remove(passage_ids)
            store.delete_files(ids)
            index = _vectors.adapt(index, requested)  # auto: exact again once small
            # the rows keep their paths, so the paths hold from where they did (see relocate)
            location = manifest.get("location") or store.real_folder
            generation = store.commit(
                index, {"semsearch_version": __version__, "location": location}
            )
        store.forget_manifest()
        self._committed(store, generation, index)
        report.documents_unchanged = store.document_count()
        report.passages_unchanged = store.passage_count()
        report.files_unchanged = store.file_count()
        return report

    def _not_indexed(self, path: str, store: Store) -> str:
        """Why ``path`` cannot be removed: nothing under it is indexed; what is, instead."""
        with store.reading():
            files = store.file_count()
        if not files:
            return f"nothing at or under {path} is indexed: the index in {self.folder} is empty"
        roots = [r.root for r in self.roots()]
        shown = ", ".join(roots[:3]) + (f" and {len(roots) - 3} more" if len(roots) > 3 else "")
        return (
            f"nothing at or under {path} is indexed: the index in {self.folder} holds "
            f"{files} file{'s' if files != 1 else ''} from {shown} "
            f"(see `semsearch list{self._index_option()}`)"
        )

    def _refuse_vanished(self, store: Store, given: str) -> None:
        """A path to index that is gone from disk but still indexed: say how to remove it."""
        try:
            held = rows_under(store.files().values(), given)
        except (IndexCorruptError, IndexAccessError):
            return  # the walk's own error says the path is missing
        if held:
            some = "1 file" if len(held) == 1 else f"{len(held)} files"
            raise SourceError(
                f"{given}: no such file or folder, but the index in {self.folder} still holds "
                f"{some} from it: remove {'it' if len(held) == 1 else 'them'} with "
                f"`semsearch remove{self._index_option()} {given}`"
            )

    def _index_option(self) -> str:
        """`` --index DIR`` for a command told to the user, unless DIR is the default."""
        return "" if os.path.normpath(self.folder) == DEFAULT_INDEX else f" --index {self.folder}"

    @classmethod
    def drop(cls, path: str | os.PathLike[str] = DEFAULT_INDEX) -> DropReport:
        """Delete the index in ``path``: the files semsearch made there, then the folder
        itself when nothing else is left in it.

        Only a folder holding a semsearch index is touched (its database or vector
        files), and only semsearch's own files in it are deleted: anything else is
        left (listed in ``kept``). Waits for no writer: one at work makes it raise
        `IndexLockedError`. Raises `IndexNotFoundError` when there is no index.
        """
        folder = os.fspath(path)
        if not (Store.exists(folder) or Store.has_vector_files(folder)):
            raise IndexNotFoundError(f"no index in {folder}: nothing was deleted")
        try:
            with WriteLock(folder):
                deleted, freed, kept = delete_index_files(folder)
        except OSError as exc:
            raise IndexAccessError(
                f"cannot delete the index in {folder} ({exc.strerror}): check that you may "
                "write to that folder"
            ) from exc
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(folder, LOCK_NAME))
            deleted += 1
        if not kept:
            with contextlib.suppress(OSError):  # (something appeared meanwhile: it stays)
                os.rmdir(folder)
        return DropReport(path=folder, files_deleted=deleted, bytes_freed=freed, kept=kept)

    def _has_commit(self) -> bool:
        if self._store is None:
            return False
        try:
            return int(self._store.manifest(fresh=True).get("generation", 0)) > 0
        except IndexCorruptError:
            return False

    def _discard_new_store(self, created_folder: bool) -> None:
        """Remove the database this run created before it committed anything."""
        if self._store is not None:
            self._store.close()
            self._store = None
        if created_folder:
            shutil.rmtree(self.folder, ignore_errors=True)
            return
        for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.folder, name))

    def _open_for_write(self, rebuild: bool) -> tuple[Store, VectorIndex | None]:
        """The store to write to and its current vectors (None when starting afresh)."""
        if self._broken is not None:
            if not rebuild:
                raise self._broken
            _set_aside(self.folder, self._broken)
            self._broken = None
        if self._store is None and Store.exists(self.folder):
            self._store = Store.open(self.folder)  # another process created it meanwhile
        if self._store is None:
            if not rebuild and Store.has_vector_files(self.folder):
                Store.open(self.folder)  # raises: the database is gone but vectors remain
            self._store = Store.create(self.folder)
            self._created_db = True
            return self._store, None
        store = self._store
        if rebuild:
            try:
                store.migrate()
                store.manifest(fresh=True)
                store.passage_count()
            except (IndexCorruptError, SchemaVersionError):
                self._store = None
                store.close()
                _set_aside(self.folder, None)
                self._store = Store.create(self.folder)
            return self._store, None
        store.migrate()
        if int(store.manifest(fresh=True).get("generation", 0)) == 0:
            return store, None
        return store, store.load_vectors()

    def _lexical_plan(
        self,
        store: Store,
        manifest: dict[str, Any],
        rebuild: bool,
        fresh: bool,
        planned: Sequence[Planned],
    ) -> _LexicalPlan:
        """The lexical tokenizer after this run: the index's own unless another is asked for
        (``auto`` decides once, when the index starts, or when first asked for)."""
        now = store.lexical_tokenizer()
        recorded = str(manifest.get("lexical_requested") or now)
        wanted = self._wanted_lexical
        if rebuild or fresh:
            built = int(manifest.get("generation", 0)) > 0
            asked: str | None = wanted or (recorded if rebuild and built else DEFAULT_LEXICAL)
        else:
            asked = wanted if wanted is not None and wanted != recorded else None
        if asked is None:
            return _LexicalPlan(now, now, None, str(manifest.get("lexical_reason", "")))
        if asked == "auto":
            texts = [] if (rebuild or fresh) else store.sample_texts(_language.SAMPLE_PASSAGES)
            texts += [x.text for p in planned for _, ps in p.docs for x in ps]
            choice = _language.choose_tokenizer(_language.sample(texts))
            return _LexicalPlan(choice.tokenizer, now, asked, choice.reason)
        return _LexicalPlan(asked, now, asked, "as asked")

    def _check_prefixes(self, built: Prompts) -> None:
        """Refuse prefixes other than those an index was built with: its vectors would mix."""
        for option, wanted, held in (
            ("--query-prefix", self._wanted_prefixes[0], built.query),
            ("--passage-prefix", self._wanted_prefixes[1], built.passage),
        ):
            if wanted is not None and wanted != held:
                said, asked = json.dumps(held), json.dumps(wanted)
                raise UsageError(
                    f"the index in {self.folder} was built with {option} {said}, not {asked}: "
                    "leave it out to keep the index's own, or re-embed everything with "
                    f"`semsearch index --rebuild {option} {asked} PATH`"
                )

    def _chunking(
        self, manifest: dict[str, Any], embedder: Embedder | None, prompts: Prompts
    ) -> Chunking:
        """How articles become passages: the index's own settings, or new ones (the room the
        passage prefix takes left out, so that no passage loses its end to it)."""
        recorded = dict(manifest.get("chunking") or {})
        if embedder is None:  # an existing index: its recorded settings
            return Chunking(max_tokens=int(recorded["max_tokens"]), unit=str(recorded["unit"]))
        unit = self._wanted_unit or str(recorded.get("unit", "paragraph"))
        taken = embedder.count_tokens([prompts.passage])[0] if prompts.passage else 0
        return Chunking(max_tokens=max(1, embedder.max_tokens - taken), unit=unit)

    def _add_locked(
        self,
        paths: list[str | os.PathLike[str]],
        *,
        rebuild: bool,
        batch_size: int | None,
        progress: ProgressCallback | None,
        runner: Runner,
    ) -> AddReport:
        if not paths:
            raise SourceError("give at least one file or folder to index")
        for given in paths:
            if not os.path.exists(given) and self._store is not None:
                self._refuse_vanished(self._store, os.fspath(given))
        found = walk(paths, exclude=[self.folder])
        if not found.files:
            raise SourceError(nothing_readable(paths, found, 0, []))
        if not (rebuild or self._store is None):
            self._check_model()
        store, current = self._open_for_write(rebuild)
        fresh = current is None
        manifest = store.manifest(fresh=True)
        embedder: Embedder | None = None
        backend, precision = self._backend(manifest, rebuild or fresh)
        early_export: export.QueryModel | None = None
        looked_in_cache = False
        if rebuild or fresh:
            self._fingerprint_checked = False
            name = self._wanted or str(manifest.get("model") or canonical_model_name(None))
            model = self._get_embedder(name)
            if backend != "torch" and isinstance(model, SentenceTransformerEmbedder):
                early_export = _cached_export(model, self.folder)  # spares loading torch
                looked_in_cache = True
            embedder = self._with_backend(model, backend, precision, self.folder, early_export)
            own = prompts_of(model)  # the new model's own, recorded with the index
            query, passage = self._wanted_prefixes
            prompts = Prompts(
                own.query if query is None else query, own.passage if passage is None else passage
            )
        else:
            prompts = Prompts.from_manifest(manifest)  # those the index was built with
            self._check_prefixes(prompts)
            built_unit = dict(manifest.get("chunking") or {}).get("unit", "paragraph")
            if self._wanted_unit and built_unit != self._wanted_unit:
                raise UsageError(
                    f"the index in {self.folder} has one passage per {built_unit}: switch with "
                    f"`semsearch index --rebuild --unit {self._wanted_unit} PATH`"
                )
        chunking = self._chunking(manifest, embedder, prompts)

        # 1. Which files are new, changed, unchanged or gone (no model needed).
        report = AddReport(files_skipped=found.skipped, problems=list(found.problems))
        stored_rows = store.files()
        moved_from = store.moved_from()
        files = plan_files(
            found,
            {} if (rebuild or fresh) else stored_rows,
            relocate=_relocator(store, moved_from),
        )
        changed, unchanged_ids, renamed = files.changed, files.unchanged_ids, files.renamed
        relinked, gone, unreadable = files.relinked, files.gone, files.unreadable
        rerooted = files.rerooted
        report.problems += unreadable
        _name_files(report, files, stored_rows if rebuild else {})
        # The query model's files gone (links into a model cache that was cleared): put
        # back before anything reads them; a commit only if they come back other files.
        put_back = None if (rebuild or fresh) else self._put_back_query_model(manifest)

        # 2. Parse and cut the changed files (the model's tokenizer counts tokens).
        if changed and embedder is None:
            held = export.usable(self.folder, put_back or manifest.get("query_model"))
            embedder = self._checked_embedder(
                lambda e: self._with_backend(e, backend, precision, self.folder, held)
            )
            _check_precision(manifest, embedder, self.folder)
        planned: list[Planned] = []
        passed_over: list[Problem] = []  # why each file that gave no article gave none
        if changed:
            assert embedder is not None
            cuts = runner.cut([source for source, _, _ in changed], chunking, embedder)
            for (source, digest, old_id), (cut, problems) in zip(changed, cuts, strict=True):
                report.problems += problems
                if not cut and problems:
                    passed_over.append(problems[-1])
                planned.append(Planned(source, digest, cut, old_id))
        replaced_ids = [p.old_id for p in planned if p.old_id is not None]
        removed_file_ids = [r.id for r in gone]
        if not (unchanged_ids or replaced_ids or gone or any(p.docs for p in planned)):
            raise SourceError(
                nothing_readable(
                    paths, found, len(changed) - len(passed_over), unreadable, passed_over
                )
            )
        requested = self._wanted_type or str(manifest.get("index_type_requested", "auto"))
        retype = requested != manifest.get("index_type_requested", "auto")
        _vectors.check_convertible(current, requested)  # before anything is embedded
        lexical = self._lexical_plan(store, manifest, rebuild, fresh, planned)
        if not (
            rebuild or fresh or planned or gone or renamed or retype or relinked or rerooted
            or put_back or lexical.changes
        ):
            report.documents_unchanged = store.document_count_in(unchanged_ids)
            report.passages_unchanged = len(store.passage_ids(unchanged_ids))
            return report  # nothing changed: no new generation, no model loaded
        assert embedder is not None or not planned

        # 3. A torch-free query model beside a new index (see embed.export); the onnx
        #    and openvino backends embed passages with it too.
        texts = [x.embed_text for p in planned for _, ps in p.docs for x in ps]
        hashes = [embed_hash(t) for t in texts]
        reusable: dict[str, int] = {}
        if current is not None and _vectors.lossless(current):  # else re-embed: no decoded codes
            reusable = store.ids_by_embed_hash(replaced_ids + removed_file_ids)
        to_embed = [i for i, h in enumerate(hashes) if h not in reusable]
        reuse_rows = [i for i, h in enumerate(hashes) if h in reusable]
        query_model: dict[str, Any] | None = put_back or manifest.get("query_model")
        refresh = rebuild or fresh or "query_model" not in manifest
        reference = (
            embedder.reference if isinstance(embedder, backends.ExportedEmbedder) else embedder
        )
        if refresh and isinstance(reference, SentenceTransformerEmbedder):
            exported = early_export if looked_in_cache else _cached_export(reference, self.folder)
            if exported is None:
                exported = self._export(reference)
            query_model = exported.as_dict() if exported is not None else None
        embed_model: dict[str, Any] | None = None if refresh else manifest.get("embed_model")
        if to_embed and isinstance(embedder, backends.ExportedEmbedder):
            graph = export.usable(self.folder, query_model)
            if graph is None and query_model:
                raise IndexCorruptError(
                    f"the ONNX model of the index in {self.folder} ({query_model.get('file')}) is "
                    "missing or damaged: rebuild it with "
                    f"`semsearch index --rebuild --index {self.folder} PATH`"
                )
            if embedder.precision == "int8" and not embed_model:
                self._say(f"Quantising {_short_name(embedder.name)} to int8 on your passages...")
            embed_model = embedder.prepare(
                self.folder, graph, embed_model, [prompts.passage + texts[i] for i in to_embed]
            )

        # 4. Embed what is new; reuse the vectors of passages whose text is unchanged
        #    (edited, moved or renamed files).
        dimension = embedder.dimension if embedder is not None else int(manifest["dimension"])
        vecs = np.zeros((len(texts), dimension), dtype=np.float32)
        if to_embed:
            assert embedder is not None
            vecs[to_embed] = self._embed(
                [prompts.passage + texts[i] for i in to_embed],
                embedder,
                batch_size,
                progress,
                runner,
            )
        if reuse_rows and current is not None:
            vecs[reuse_rows] = current.reconstruct(
                np.asarray([reusable[hashes[i]] for i in reuse_rows], dtype=np.int64)
            )
        kept_old = {reusable[hashes[i]] for i in reuse_rows}

        # 5. What the run does, in the words of the report.
        if lexical.requested is not None:
            report.lexical_tokenizer = lexical.tokenizer
            report.lexical_reason = lexical.reason
            if not (rebuild or fresh) and lexical.rebuild_table:
                report.lexical_replaced = lexical.was
        old_docs = store.document_signatures(replaced_ids + removed_file_ids + unchanged_ids)
        count_changes(report, old_docs, planned, unchanged_ids, gone)
        report.passages_unchanged = len(store.passage_ids(unchanged_ids)) + len(reuse_rows)
        report.passages_added = len(to_embed)
        report.passages_embedded = len(to_embed)
        if planned:
            report.embedded_by = runner.description

        # 6. One transaction: rows, vectors, manifest.
        index = current if current is not None else _vectors.create(requested, dimension)
        try:
            with store.transaction():
                if rebuild:
                    report.passages_removed = store.passage_count()
                    report.documents_removed = store.document_count()
                    store.delete_all()
                else:
                    doomed = store.passage_ids(replaced_ids + removed_file_ids)
                    report.passages_removed = len(set(doomed.tolist()) - kept_old)
                    index.remove(doomed)
                    store.delete_files(removed_file_ids + replaced_ids)
                    for file_id, real in relinked:
                        store.update_file_abspath(file_id, real)
                    for file_id, path in renamed:
                        store.update_file_path(file_id, path)
                    for file_id, root in rerooted:
                        store.update_file_root(file_id, root)
                new_ids: list[int] = []
                for p in planned:
                    new_ids += self._insert(store, p)
                if isinstance(index, _vectors.DiskIVFIndex):
                    index.map_shards = runner.map  # its shards filled by the run's workers
                index.add(np.asarray(new_ids, dtype=np.int64), vecs)
                # auto: exact while small, IVF above (an on-disk index's shards filled by the
                # run's workers)
                index = _vectors.adapt(index, requested, map_shards=runner.map)
                if lexical.rebuild_table:  # from the passages as they now are
                    store.replace_lexical(lexical.tokenizer)
                values: dict[str, Any] = {
                    "semsearch_version": __version__,
                    "index_type_requested": requested,
                }
                if lexical.requested is not None:
                    values.update(
                        lexical_tokenizer=lexical.tokenizer,
                        lexical_requested=lexical.requested,
                        lexical_reason=lexical.reason,
                    )
                if refresh:  # a custom embedder has no export: none may stay recorded
                    values["query_model"] = (
                        query_model if isinstance(reference, SentenceTransformerEmbedder) else None
                    )
                elif put_back:
                    values["query_model"] = put_back
                values["embed_model"] = embed_model
                if to_embed:  # where the last passages it added were embedded
                    values["embedded_on"] = runner.description
                if rebuild or fresh:
                    assert embedder is not None
                    values.update(
                        schema_version=SCHEMA_VERSION,
                        model=embedder.name,
                        model_fingerprint=embedder.fingerprint,
                        normalized=True,
                        metric="inner_product",
                        chunking=chunking.as_dict(),
                        backend=embedder.backend,
                        precision=embedder.precision,
                        created_at=now_iso(),
                        created_by=__version__,
                        **prompts.as_manifest(),
                    )
                generation = store.commit(index, values)
        finally:
            # Whatever happened, readers go on from what is committed.
            store.forget_manifest()
        if embedder is not None:
            self._wanted = embedder.name if self._wanted else None
            self._fingerprint_checked = True
        self._committed(store, generation, index)
        return report

    def _committed(self, store: Store, generation: int, index: VectorIndex) -> None:
        """After a commit: share its vectors with readers, delete the files it no longer names."""
        # The new generation's vectors, as committed: never changed again (the next
        # write reads its own copy), so readers may share them.
        with self._lock:
            self._keep_generation(generation, index)
        with contextlib.suppress(OSError):  # files the committed manifest no longer names
            store.prune()
            backends.prune(self.folder, store.manifest().get("embed_model"))
            export.prune(self.folder, store.manifest().get("query_model"))

    def _export(self, model: SentenceTransformerEmbedder) -> export.QueryModel | None:
        """``model`` exported to ONNX for this index: once per model and user, the export is
        kept in the model cache and shared (see `embed.export`)."""
        weights = model.model  # loaded first, saying so
        name = _short_name(model.name)
        self._say(f"Exporting {name} to ONNX for fast queries (once a machine)...")
        return export.export(weights, self.folder, model.export_key())

    def _put_back_query_model(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Put back the query model files a manifest names when they are gone (say, symbolic
        links into a model cache that was cleared): from the cache when it holds them again,
        else exported anew. Returns the manifest entry to commit when the files came back
        under other names (another export), else None; nothing is re-embedded."""
        recorded = manifest.get("query_model")
        if not export.missing(self.folder, recorded):
            return None
        model = self._get_embedder(self.model)
        if not isinstance(model, SentenceTransformerEmbedder):
            return None
        try:
            if manifest.get("model_fingerprint") not in (None, "", model.fingerprint):
                return None  # not the model of the index: the add refuses it further on
            placed = _cached_export(model, self.folder) or self._export(model)
        except ModelLoadError:
            return None  # the model is gone too: nothing to put the export back from
        if placed is None or recorded is None:
            return None
        names = (recorded.get("file"), recorded.get("tokenizer"))
        return None if names == (placed.file, placed.tokenizer) else placed.as_dict()

    @staticmethod
    def _embed(
        texts: list[str],
        embedder: Embedder,
        batch_size: int | None,
        progress: ProgressCallback | None,
        runner: Runner,
    ) -> npt.NDArray[np.float32]:
        done = 0

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, len(texts))

        if progress is not None:
            progress(0, len(texts))
        if batch_size is None:  # each engine's fastest here: torch 16, OpenVINO 8
            batch_size = embedder.batch_size
        return runner.embed(texts, embedder, batch_size, tick)

    @staticmethod
    def _insert(store: Store, p: Planned) -> list[int]:
        """Write one file's rows; returns the new passage ids in order."""
        file_id = store.upsert_file(
            path=p.source.path,
            abspath=p.source.abspath,
            fmt=p.docs[0][0].format if p.docs else "empty",
            sha256=p.sha256,
            size=p.source.size,
            mtime=p.source.mtime,
            root=p.source.root,
        )
        ids: list[int] = []
        for ordinal, (doc, ps) in enumerate(p.docs):
            doc_id = store.insert_document(
                file_id=file_id,
                ordinal=ordinal,
                key=doc.key,
                title=doc.title,
                date=doc.date,
                fields=doc.fields,
            )
            ids += store.insert_passages(
                doc_id,
                [
                    (
                        x.paragraph,
                        x.piece,
                        x.pieces,
                        x.start,
                        x.end,
                        x.text,
                        embed_hash(x.embed_text),
                        x.line,
                        x.column,
                        x.page,
                    )
                    for x in ps
                ],
            )
        return ids


def _iso_time(seconds: float) -> str:
    return _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc).replace(microsecond=0).isoformat()


def _name_files(report: AddReport, files: FilePlan, replaced: dict[str, FileRow]) -> None:
    """Name the files a run adds, updates and removes in ``report``; ``replaced`` holds the
    rows a rebuild replaces (its plan, made without them, calls every file new)."""
    for source, _digest, old_id in files.changed:
        known = old_id is not None or source.abspath in replaced
        (report.files_updated if known else report.files_added).append(source.abspath)
    twins = {r.id for r in files.twins}
    report.files_removed = [r.abspath for r in files.gone if r.id not in twins]
    if replaced:
        found = {source.abspath for source, _, _ in files.changed}
        report.files_removed += sorted(set(replaced) - found)
    report.files_unchanged = len(files.unchanged_ids)


def _passage_id_list(passage_ids: int | Sequence[int]) -> list[int]:
    """``passage_ids`` as a list of ids, once each; raises `UsageError` for anything else."""
    given = [passage_ids] if isinstance(passage_ids, (int, np.integer)) else list(passage_ids)
    if not given:
        raise UsageError("give at least one passage id")
    for i in given:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise UsageError(f"a passage id is a whole number (got {i!r})")
        if not 0 < int(i) < 2**63:
            raise PassageNotFoundError(f"no passage has id {int(i)}: ids are whole numbers from 1")
    return list(dict.fromkeys(int(i) for i in given))


def _pick_passages(
    file: str, rows: list[PassageRow], paragraph: int | None, key: str | None
) -> list[PassageRow]:
    """The passages of one file's ``rows`` that ``paragraph`` and ``key`` name."""
    if key is not None:
        keys = list(dict.fromkeys(r.key for r in rows if r.key))
        rows = [r for r in rows if r.key == key]
        if not rows:
            known = ", ".join(keys[:5]) + (" ..." if len(keys) > 5 else "")
            held = f": its records are {known}" if keys else ": it holds no records"
            raise UsageError(f"{file} has no record {key!r}{held}")
    if not rows:
        raise UsageError(f"{file} is indexed but holds no passage (an empty file?)")
    if paragraph is None:
        return rows
    documents = {r.document_id for r in rows}
    if len(documents) > 1:
        raise UsageError(
            f"{file} holds {len(documents)} records: name one, as {file}#KEY#{paragraph} "
            "(KEY as hits show it), or give the passage's id with --id"
        )
    chosen = [r for r in rows if r.paragraph + 1 == paragraph]
    if not chosen:
        last = max((r.paragraph + 1 for r in rows), default=0)
        raise UsageError(f"{file} has no paragraph {paragraph}: it has paragraphs 1 to {last}")
    return chosen


def _check_precision(manifest: dict[str, Any], embedder: Embedder, folder: str) -> None:
    """Refuse to add vectors of another precision (say int8) to an index of fp32 ones."""
    held = str(manifest.get("precision", "fp32"))
    wanted = embedder.precision
    if held != wanted:
        raise ModelMismatchError(
            f"the index in {folder} holds {held} vectors ({manifest.get('backend', '?')}); this "
            f"run would add {wanted} vectors ({embedder.backend}), which do not "
            "compare with them: rebuild it with `semsearch index --rebuild PATH`"
        )


def _short_name(model: str) -> str:
    """A model's name as a status line shows it: all-MiniLM-L6-v2, not its path or owner."""
    return os.path.basename(model.rstrip("/\\")) or model


def _fallback_note(folder: str, recorded: dict[str, Any]) -> str:
    """Why queries use the model itself, and what gives them back the ONNX query model."""
    if export.missing(folder, recorded):
        remedy = "the next `semsearch index` run puts it back"
    else:
        remedy = "`semsearch check` tells more; `semsearch index --rebuild PATH` replaces it"
    why = export.why_unusable(folder, recorded)
    return f"{why}: queries use the model itself (torch, slower); {remedy}"


def _cached_export(
    model: SentenceTransformerEmbedder, folder: str
) -> export.QueryModel | None:
    """The model's checked ONNX export from the user's cache, shared into ``folder``."""
    key = model.export_key()
    return export.from_cache(key, folder) if key is not None else None


def _set_aside(folder: str, why: SemsearchError | None) -> None:
    """Move an index's files into a subfolder (kept, not deleted) before a rebuild.

    ``damaged-<time>/`` for a damaged index, ``newer-<time>/`` for one written
    by a newer semsearch (it may still be opened by that version).
    """
    kind = "newer" if isinstance(why, SchemaVersionError) else "damaged"
    target = os.path.join(folder, f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}")
    with integrity.writing(folder, f"{os.path.basename(target)}/ (the old files, set aside)"):
        os.makedirs(target, exist_ok=True)
        for name in os.listdir(folder):
            if name.startswith(("semsearch.db", "vectors.")):
                integrity.durable_replace(os.path.join(folder, name), os.path.join(target, name))


class Snapshot:
    """One committed generation of an index: see `Index.snapshot`."""

    def __init__(
        self, index: Index, store: Store, manifest: dict[str, Any], vectors: VectorIndex
    ) -> None:
        self._index = index
        self._store = store
        self._vectors = vectors
        self.manifest = manifest
        self.generation = int(manifest.get("generation", 0))
        # its rows are read through the opening thread's read transaction
        self._thread = threading.get_ident()

    def _check_thread(self) -> None:
        if threading.get_ident() != self._thread:
            raise UsageError(
                "a snapshot reads through the thread that opened it: open one per thread "
                "with `with index.snapshot() as snap:`"
            )

    @property
    def embedder(self) -> Embedder:
        """What embeds queries on this generation (the ONNX export when the index has one)."""
        return self._index._query_embedder(self.manifest)

    @property
    def vector_index(self) -> VectorIndex:
        """The vector index of this generation (shared by readers: never change it)."""
        return self._vectors

    def passage_ids(self) -> npt.NDArray[np.int64]:
        """Every passage id of this generation, ascending."""
        return np.sort(self._vectors.ids())

    def vectors(self, passage_ids: Sequence[int]) -> npt.NDArray[np.float32]:
        """The stored vectors of these passages, in order (unit length)."""
        return self._vectors.reconstruct(np.asarray(list(passage_ids), dtype=np.int64))

    def search(self, query: str, k: int = 5, **options: Any) -> Results:
        """`Index.search` on this generation."""
        return self.run([check_query(query, k, **options)])[0]

    def similar(self, passage_ids: int | Sequence[int], k: int = 10, **options: Any) -> list[Hit]:
        """`Index.similar` on this generation."""
        self._check_thread()
        ids = _passage_id_list(passage_ids)
        # the query's options, checked as a search's (its text is never searched for)
        q = check_query(f"like passage {ids[0]}", k, mode="dense", **options)
        rows = self._store.passages(ids)
        missing = [i for i in ids if i not in rows]
        if missing:
            raise PassageNotFoundError(
                f"the index in {self._index.folder} holds no passage {missing[0]}: passage ids "
                "are the passage_id of the hits of `semsearch query --json`"
            )
        return _similar(self._store, self._vectors, [rows[i] for i in ids], q)

    def run(self, queries: Sequence[Query], batch_size: int = 64) -> list[Results]:
        """Checked queries (all of one mode) on this generation."""
        self._check_thread()
        if not queries:
            return []
        mode = queries[0].mode
        embedder = None if mode == "lexical" else self._index._query_embedder(self.manifest)
        prompts = Prompts.from_manifest(self.manifest)  # those the passages were embedded with
        searcher = Searcher(
            self._store, self._vectors, embedder, self._index._speller, prompts=prompts
        )
        fixes = [searcher.spelling(q) for q in queries]
        qvecs = None
        if embedder is not None and len(queries) > 1:
            qvecs = embedder.embed([prompts.query + f.text for f in fixes], batch_size=batch_size)
        return [
            searcher.search(q, None if qvecs is None else qvecs[n], fixes[n])
            for n, q in enumerate(queries)
        ]


def _relocator(store: Store, moved_from: str | None) -> Callable[[str, str], str] | None:
    """`Store.relocate` for the rows of one operation (each root looked for once), or None
    when the index has not moved."""
    if not moved_from:
        return None
    roots_found: dict[str, bool] = {}
    return lambda path, root: store.relocate(path, moved_from, root, roots_found)
