"""1NCE Connect in the gateway: RADIUS accounting from the mobile core, address bindings,
usage, quotas, blocks, Disconnect-Requests (docs/connectivity.md)."""
