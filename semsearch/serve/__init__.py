"""semsearch as a service: one open `Index` answering HTTP (the API and the search page)
and MCP (agents), kept fresh by a watcher.

`service.Service` is the one layer between an `Index` and every front end: it
takes request values, calls the library and returns the JSON-ready answers that
the command line prints too. `app.create_app` puts the HTTP API and the page
over it; `agent` (MCP) uses the same calls. Importing this package is cheap:
FastAPI, uvicorn and the MCP SDK are imported by the modules that need them.
"""
