"""The HTTP side of the gateway: operations endpoints and the management API."""
