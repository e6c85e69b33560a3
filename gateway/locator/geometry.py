"""Geofence shapes on WGS84 and the inside/outside verdict for a position with an accuracy.

A circle is judged with geodesic distances (pyproj's ``Geod`` on the WGS84 ellipsoid). A polygon is
projected once into a local azimuthal equidistant plane centred on its vertices' mean (metres;
distances from that centre are exact and the scale error grows as (d/R)²/6, under 0.01 % at the
100 km a polygon may reach from its centre), and each position is projected into the same plane;
shapely then gives the point's distance to the boundary. The projection is computed from the
geodesic (azimuth α, distance d) from the centre, x = d·sin α, y = d·cos α, which is the definition
of the ellipsoidal azimuthal equidistant projection (PROJ's ``aeqd`` computes the same) at a fifth
of the cost of a PROJ transformation per position.

The verdict for a position ``p`` with accuracy ``a`` metres (a circle of radius ``a`` around ``p``):
INSIDE when the whole circle is inside the geofence, OUTSIDE when the whole circle is outside,
None (undecided) when it straddles the border. The caller keeps the last decided state, so a
position near the border changes nothing: that is what stops ENTER/EXIT flapping (docs/locator.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import shapely
from pyproj import Geod
from shapely.geometry import Point, Polygon

INSIDE, OUTSIDE = "INSIDE", "OUTSIDE"
MIN_RADIUS, MAX_RADIUS = 50.0, 30_000.0  # metres, as 1NCE OS allows for circles
MAX_POLYGON_EXTENT = 100_000.0  # metres from the polygon's centre to any vertex
MAX_VERTICES = 1000
MIN_AREA = 100.0  # m²: less is a line or a point, not a fence
GEOD = Geod(ellps="WGS84")


class GeometryError(ValueError):
    """A geofence shape that cannot be used; the message says which value and why."""


def _position(value: Any, where: str) -> tuple[float, float]:
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)):
        raise GeometryError(f"{where} must be [longitude, latitude] (two numbers)")
    lon, lat = float(value[0]), float(value[1])
    if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
        raise GeometryError(f"{where}: longitude {value[0]} is outside -180..180")
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise GeometryError(f"{where}: latitude {value[1]} is outside -90..90")
    return lon, lat


@dataclass(frozen=True)
class Circle:
    lon: float
    lat: float
    radius: float

    kind = "circle"

    def verdict(self, lon: float, lat: float, accuracy: float) -> str | None:
        distance = GEOD.inv(self.lon, self.lat, lon, lat)[2]
        if distance + accuracy <= self.radius:
            return INSIDE
        if distance - accuracy > self.radius:
            return OUTSIDE
        return None

    def geometry(self) -> dict[str, Any]:
        return {"center": [self.lon, self.lat], "radius": self.radius}


class PolygonShape:
    kind = "polygon"

    def __init__(self, rings: list[list[tuple[float, float]]]) -> None:
        self.rings = rings
        shell = rings[0][:-1]
        self.lon0 = sum(p[0] for p in shell) / len(shell)
        self.lat0 = sum(p[1] for p in shell) / len(shell)
        projected = [[self._to_plane(lon, lat) for lon, lat in ring] for ring in rings]
        for ring in projected:
            for x, y in ring:
                if math.hypot(x, y) > MAX_POLYGON_EXTENT:
                    raise GeometryError(f"coordinates: a vertex lies {math.hypot(x, y) / 1000:.0f} km from the "
                                        f"polygon's centre; at most {MAX_POLYGON_EXTENT / 1000:.0f} km is allowed")
        self.polygon = Polygon(projected[0], projected[1:])
        if not self.polygon.is_valid:
            raise GeometryError(f"coordinates: not a valid polygon ({shapely.is_valid_reason(self.polygon)})")
        if Polygon(rings[0]).area == 0 or self.polygon.area < MIN_AREA:
            raise GeometryError(f"coordinates: the polygon has no area to speak of (at least {MIN_AREA:.0f} m² "
                                "is needed); are its positions on one line?")
        shapely.prepare(self.polygon)
        self._boundary = self.polygon.boundary
        shapely.prepare(self._boundary)

    def _to_plane(self, lon: float, lat: float) -> tuple[float, float]:
        """Azimuthal equidistant coordinates (metres) around the polygon's centre."""
        azimuth, _, distance = GEOD.inv(self.lon0, self.lat0, lon, lat)
        angle = math.radians(azimuth)
        return distance * math.sin(angle), distance * math.cos(angle)

    def verdict(self, lon: float, lat: float, accuracy: float) -> str | None:
        point = Point(self._to_plane(lon, lat))
        if self.polygon.covers(point):
            return INSIDE if self._boundary.distance(point) >= accuracy else None
        return OUTSIDE if self.polygon.distance(point) > accuracy else None

    def geometry(self) -> dict[str, Any]:
        return {"coordinates": [[list(p) for p in ring] for ring in self.rings]}


Shape = Circle | PolygonShape


def circle(center: Any, radius: Any) -> Circle:
    """A circle from the API's ``center`` ([lon, lat]) and ``radius`` (metres)."""
    if center is None:
        raise GeometryError("center is required for a circle geofence: [longitude, latitude]")
    lon, lat = _position(center, "center")
    if not isinstance(radius, (int, float)) or isinstance(radius, bool) or not math.isfinite(radius):
        raise GeometryError("radius must be a number of metres")
    if not MIN_RADIUS <= radius <= MAX_RADIUS:
        raise GeometryError(f"radius {radius:g} m is outside {MIN_RADIUS:g}..{MAX_RADIUS:g} m")
    return Circle(lon, lat, float(radius))


def polygon(coordinates: Any) -> PolygonShape:
    """A polygon from the API's ``coordinates``: rings of [lon, lat] positions, the first the outer
    boundary and any others holes, each closed (last position = first) with at least 4 positions."""
    if not isinstance(coordinates, list) or not coordinates:
        raise GeometryError("coordinates must be a list of rings (the outer boundary first, then any holes)")
    rings: list[list[tuple[float, float]]] = []
    for r, ring in enumerate(coordinates):
        if not isinstance(ring, list) or len(ring) < 4:
            raise GeometryError(f"coordinates[{r}]: a ring needs at least 4 positions (the last equal to the first)")
        if sum(len(x) for x in rings) + len(ring) > MAX_VERTICES:
            raise GeometryError(f"coordinates: at most {MAX_VERTICES} positions in all")
        points = [_position(p, f"coordinates[{r}][{i}]") for i, p in enumerate(ring)]
        if points[0] != points[-1]:
            raise GeometryError(f"coordinates[{r}]: the ring is not closed (its last position must equal its first)")
        lons = [p[0] for p in points]
        if max(lons) - min(lons) > 180:
            raise GeometryError(f"coordinates[{r}]: the ring crosses the antimeridian, which is not supported")
        rings.append(points)
    return PolygonShape(rings)


def shape_of(kind: Any, body: dict[str, Any]) -> Shape:
    """The shape a create request describes (``type`` circle or polygon)."""
    if kind == "circle":
        if "coordinates" in body:
            raise GeometryError("a circle geofence has center and radius, not coordinates")
        return circle(body.get("center"), body.get("radius"))
    if kind == "polygon":
        if "radius" in body or "center" in body:
            raise GeometryError("a polygon geofence has coordinates, not center and radius")
        return polygon(body.get("coordinates"))
    raise GeometryError(f"type {kind!r}: a geofence is a 'circle' or a 'polygon'")


def shape_from_stored(kind: str, geometry: dict[str, Any]) -> Shape:
    return shape_of(kind, geometry)
