"""What the query options mean, said once for every front end: the command line's --help,
the HTTP API's schema and /docs, the MCP tools' descriptions. Imports nothing, so that
`semsearch --help` stays instant."""

from __future__ import annotations

OPTION_HELP = {
    "mode": "hybrid: meaning and words fused (the default); dense: meaning only; "
    "lexical: BM25 on the words only.",
    "since": "Only articles dated on or after this day (YYYY-MM-DD).",
    "until": "Only articles dated on or before this day (YYYY-MM-DD).",
    "rerank": "Re-score the top candidates with a second stage (pseudo-relevance feedback "
    "on the query's vector: the top 3 passages pull the query towards them); hybrid and dense "
    "modes, a few milliseconds more.",
    "rerank_method": "The second stage's method (prf); implies --rerank. Default: the best "
    "one available offline.",
    "rerank_depth": "How many candidates of the first ranking the second stage re-scores.",
    "path": "Only files whose path matches this glob, tried on the path as indexed and on "
    "the absolute path ('*' also matches '/'), e.g. '*/news/*' or '*.md'.",
}
