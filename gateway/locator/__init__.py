"""Device Locator: the cell table import, cell positions, geofence geometry and ENTER/EXIT (docs/locator.md)."""
