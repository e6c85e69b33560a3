"""The web console: server-rendered pages for the people who run the gateway (docs/console.md).

The console is a client of the management API, in the same process: every page reads and every
form writes through ``/management-api`` with the signed-in user's own bearer token
(:mod:`gateway.console.api_client`). So the console has no rules of its own to keep in step: a
role may do in the console exactly what its token may do in the API, and a forged form post is
refused by the same check that refuses a script.
"""
