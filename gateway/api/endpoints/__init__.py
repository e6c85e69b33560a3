"""Route modules of the management API.

Every module here that defines ``routes() -> list[ApiRoute]`` is loaded at start-up (in name
order; modules whose name starts with ``_`` are helpers and are skipped). A feature adds its
routes by adding a module; see ``gateway/api/routes.py`` and docs/api.md ("Adding routes").
"""
