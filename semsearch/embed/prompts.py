"""The texts a model was trained to see before queries and passages.

Some models embed a query and a passage differently: e5 was trained on
``"query: ..."`` and ``"passage: ..."``, bge (English) on an instruction before
queries only. Without them such a model still answers, but worse. A
sentence-transformers model that knows its own says so in
``config_sentence_transformers.json`` (``"prompts": {"query": ..., "passage":
...}``); those come first. Otherwise the families below are known by name; any
other model (all-MiniLM-L6-v2, the default, and all-mpnet-base-v2 among them)
gets none, so its texts are embedded as they are.

An index records the prefixes it was built with (``query_prefix``,
``passage_prefix`` in the manifest), and queries use the recorded ones, on
every engine (torch or the ONNX export). An index made before they were
recorded has none.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_FILE = "config_sentence_transformers.json"
_QUERY_KEYS = ("query", "search_query")
_PASSAGE_KEYS = ("passage", "document", "corpus", "search_document")

BGE_EN_QUERY = "Represent this sentence for searching relevant passages: "
_FAMILIES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"(^|[/_-])(multilingual-)?e5([/_-]|$)"), "query: ", "passage: "),
    (re.compile(r"(^|[/_-])bge-(small|base|large)-en([/_-]|$)"), BGE_EN_QUERY, ""),
    (re.compile(r"(^|[/_-])nomic-embed-text"), "search_query: ", "search_document: "),
)


@dataclass(frozen=True)
class Prompts:
    """What goes before a query and before a passage ("" for nothing)."""

    query: str = ""
    passage: str = ""

    def as_manifest(self) -> dict[str, str]:
        return {"query_prefix": self.query, "passage_prefix": self.passage}

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> Prompts:
        """The prefixes an index recorded; none for an index made before they were."""
        query, passage = manifest.get("query_prefix"), manifest.get("passage_prefix")
        return cls(
            query if isinstance(query, str) else "", passage if isinstance(passage, str) else ""
        )


NO_PROMPTS = Prompts()


def from_config(model_dir: Path) -> Prompts | None:
    """The prompts a sentence-transformers folder names, or None when it names none."""
    try:
        config = json.loads((model_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    prompts = config.get("prompts") if isinstance(config, dict) else None
    if not isinstance(prompts, dict) or not prompts:
        return None

    def first(keys: tuple[str, ...]) -> str:
        return next((str(prompts[k]) for k in keys if isinstance(prompts.get(k), str)), "")

    if not any(k in prompts for k in (*_QUERY_KEYS, *_PASSAGE_KEYS)):
        return None  # prompts for other tasks only (classification, ...)
    return Prompts(first(_QUERY_KEYS), first(_PASSAGE_KEYS))


def by_family(name: str) -> Prompts | None:
    """The prompts of a known model family, from its name or folder; None for others."""
    lower = name.lower().rstrip("/")
    for pattern, query, passage in _FAMILIES:
        if pattern.search(lower):
            return Prompts(query, passage)
    return None


def prompts_for(name: str, model_dir: Path | None) -> Prompts:
    """The prompts of a model: its folder's own, else its family's, else none."""
    if model_dir is not None:
        own = from_config(model_dir)
        if own is not None:
            return own
    return by_family(name) or NO_PROMPTS
