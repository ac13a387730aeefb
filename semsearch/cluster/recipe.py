"""How a worker on another process or machine makes the run's embedder again.

An embedder holds a loaded model, locks and engine sessions, none of which
travel. A `Recipe` holds what it takes to make the same embedder anew: the
model's name (installed on the worker like on the driver: the bundled default,
or a name or path the worker can load), the backend and precision, and for the
ONNX and OpenVINO backends the very files the index embeds with (its ONNX
export and tokenizer, and its int8 model), sent as bytes so that a worker needs
no view of the driver's index folder. A custom embedder (one given to
`Index.open(embedder=...)`) travels as itself (Ray serialises it).

Cutting needs only a token counter: the model's fast tokenizer, as JSON.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..embed import Embedder, backends, export
from ..embed.model import SentenceTransformerEmbedder

Counter = Callable[[Sequence[str]], list[int]]


@dataclass(frozen=True)
class Recipe:
    model: str
    backend: str = "torch"
    precision: str = "fp32"
    files: dict[str, bytes] = field(default_factory=dict)  # name -> bytes, for exported engines
    query_model: dict[str, Any] | None = None
    embed_model: dict[str, Any] | None = None
    tokenizer_json: str | None = None  # the fast tokenizer that counts word pieces
    custom: Any = None  # an embedder that is none of semsearch's own: itself
    threads: int = 1

    @classmethod
    def of(cls, embedder: Embedder, threads: int = 1) -> Recipe:
        """The recipe of ``embedder`` as the run uses it (prepared, for the exported
        engines: `ExportedEmbedder.prepared` says with which files)."""
        if isinstance(embedder, backends.ExportedEmbedder):
            folder, query_model, embed_model = embedder.prepared or (None, None, None)
            files: dict[str, bytes] = {}
            if folder is not None and query_model is not None:
                names = [query_model.file, query_model.tokenizer]
                if embed_model:
                    names += [str(embed_model["file"]), str(embed_model["weights"])]
                for name in names:
                    with open(os.path.join(folder, name), "rb") as fh:
                        files[name] = fh.read()
            return cls(
                model=embedder.name,
                backend=embedder.backend,
                precision=embedder.precision,
                files=files,
                query_model=query_model.as_dict() if query_model is not None else None,
                embed_model=embed_model,
                tokenizer_json=_tokenizer_json(embedder),
                threads=threads,
            )
        if isinstance(embedder, SentenceTransformerEmbedder):
            return cls(
                model=embedder.name, tokenizer_json=_tokenizer_json(embedder), threads=threads
            )
        return cls(model=str(getattr(embedder, "name", "custom")), custom=embedder, threads=threads)

    @classmethod
    def counting(cls, embedder: Embedder) -> Recipe:
        """A recipe that only counts word pieces (for cutting): no engine files."""
        if isinstance(embedder, (backends.ExportedEmbedder, SentenceTransformerEmbedder)):
            return cls(model=embedder.name, tokenizer_json=_tokenizer_json(embedder))
        return cls(model=str(getattr(embedder, "name", "custom")), custom=embedder)

    def counter(self) -> Counter:
        """Counts word pieces as the run's embedder does."""
        if self.tokenizer_json is not None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_str(self.tokenizer_json)
            tok.no_truncation()
            tok.no_padding()

            def count(texts: Sequence[str]) -> list[int]:
                if not texts:
                    return []
                return [len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=False)]

            return count
        if self.custom is not None:
            return self.custom.count_tokens  # type: ignore[no-any-return]
        return SentenceTransformerEmbedder(self.model).count_tokens

    def embedder(self) -> Embedder:
        """The embedder, ready to embed (its engine loaded from the recipe's files)."""
        if self.custom is not None:
            return self.custom  # type: ignore[no-any-return]
        reference = SentenceTransformerEmbedder(self.model)
        if self.backend == "torch":
            _limit_torch_threads(self.threads)
            return reference
        folder = tempfile.mkdtemp(prefix="semsearch-worker-")
        for name, data in self.files.items():
            with open(os.path.join(folder, name), "wb") as fh:
                fh.write(data)
        known = export.QueryModel.from_dict(self.query_model) if self.query_model else None
        made = backends.ExportedEmbedder(reference, self.backend, self.precision, folder, known)
        made.threads = self.threads
        made.prepare(folder, known, self.embed_model, [])
        return made


def _tokenizer_json(embedder: Embedder) -> str | None:
    counter = None
    if isinstance(embedder, backends.ExportedEmbedder):
        counter = embedder.counting_tokenizer()
    elif isinstance(embedder, SentenceTransformerEmbedder):
        counter = embedder._counting_tokenizer()
    return None if counter is None else str(counter.to_str())


def _limit_torch_threads(threads: int) -> None:
    """torch computes with ``threads`` threads in this worker (the engines take theirs as
    a setting: `ExportedEmbedder.threads`)."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
