"""The 1NCE OS settings (``/v1/settings/1nceos``): both are switches of the Device Locator.

``CELL_TOWER_LOCATION`` decides whether the locator turns the cells devices report (RADIUS user
location, LwM2M object 4) into positions. 1NCE OS starts with it DISABLED because 1NCE resolves
the cells in its own service; this gateway resolves them in the operator's own cell table
(``nce-gateway cells import``), so it starts ENABLED, and turning it off stops the lookups (GPS
positions go on). Turning it on again needs the disclaimer, as in 1NCE OS.
``ADVANCED_CELL_TOWER_LOCATION`` is 1NCE's paid improvement of the resolution: stored and shown,
with no effect here (the gateway sells no credits and has no second resolver).
"""

from __future__ import annotations

ENABLED, DISABLED = "ENABLED", "DISABLED"
CELL_TOWER_LOCATION = "CELL_TOWER_LOCATION"

#: name -> (default state, whether ENABLED needs the disclaimer, description (en, de))
SETTINGS: dict[str, tuple[str, bool, str, str]] = {
    CELL_TOWER_LOCATION: (
        ENABLED, True,
        "Positions of devices from the cell they use (Device Locator), resolved with the gateway's cell table.",
        "Positionen der Geräte aus der genutzten Funkzelle (Device Locator), über die Zelltabelle des Gateways."),
    "ADVANCED_CELL_TOWER_LOCATION": (
        DISABLED, True,
        "Improves the Cell Tower Location functionality, especially for 3G, 4G and LTE-M.",
        "Verbessert die Funkzellen-Ortung, besonders für 3G, 4G und LTE-M."),
}


def state(stored: dict[str, str], name: str) -> str:
    """A setting's state: the stored one, else its default."""
    return stored.get(name, SETTINGS[name][0])
