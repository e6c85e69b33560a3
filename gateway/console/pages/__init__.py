"""One module per console page group; each has ``add_routes(router)``."""
