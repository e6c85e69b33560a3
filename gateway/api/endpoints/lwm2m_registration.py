"""``GET /v1/integrate/devices/{deviceId}/registration``: a device's LwM2M registration and its
object tree (the gateway's own route; 1NCE OS shows the same in its portal only).

The tree lists every object instance the client registered, with the object's name and its
resources (name, operations, type, units) from the object definitions the gateway knows, so a
console or script can offer read, write, execute and observe where the definition allows them.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import conflict, not_found
from ..routes import READ, ApiRoute, gateway_of, json_response, params_of


def _resource_json(resource: Any) -> dict[str, Any]:
    out = {"id": resource.id, "name": resource.name, "operations": resource.operations.value,
           "units": resource.units, "multiple": resource.multiple}
    if resource.type is not None:  # executable resources have no type
        out["type"] = resource.type.value
    return out


def object_tree(links: Any, objects: Any) -> list[dict[str, Any]]:
    tree = []
    for oid in sorted(links.objects):
        definition = objects.object(oid)
        entry: dict[str, Any] = {"objectId": oid, "instances": list(links.objects[oid].instances),
                                 "resources": [_resource_json(r) for _, r in sorted(definition.resources.items())]
                                 if definition else []}
        if definition is not None:
            entry["name"] = definition.name
        if links.objects[oid].version is not None:
            entry["version"] = links.objects[oid].version
        tree.append(entry)
    return tree


async def get_registration(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    lwm2m = getattr(gateway, "lwm2m", None)
    if lwm2m is None:
        raise conflict("LwM2M is disabled on this gateway ([lwm2m] enabled = false, or neither CoAP nor CoAPs is on)")
    iccid = params_of(request)["deviceId"]
    registration = await lwm2m.registration_of(iccid)  # on any worker (docs/operations.md)
    if registration is None:
        raise not_found(f"device {iccid} has no LwM2M registration")
    links = lwm2m.registrations.parsed_links(registration.links)
    body = {k: v for k, v in registration.to_dict().items() if v is not None}
    body["objects"] = object_tree(links, lwm2m.objects)
    return json_response(body)


_RESOURCE = {"type": "object", "properties": {
    "id": {"type": "integer"}, "name": {"type": "string"}, "operations": {"type": "string"},
    "type": {"type": "string", "description": "absent for executable resources"}, "units": {"type": "string"}, "multiple": {"type": "boolean"}}}
SCHEMAS = {"LwM2MRegistration": {"type": "object", "properties": {
    "registrationId": {"type": "string"}, "endpoint": {"type": "string"}, "lifetime": {"type": "integer"},
    "lwm2mVersion": {"type": "string"}, "binding": {"type": "string"}, "queueMode": {"type": "boolean"},
    "sms": {"type": "string"}, "objectLinks": {"type": "string"},
    "transport": {"type": "string", "enum": ["coap", "coaps"]}, "ip": {"type": "string"}, "port": {"type": "integer"},
    "expires": {"type": "integer", "description": "epoch ms"},
    "objects": {"type": "array", "items": {"type": "object", "properties": {
        "objectId": {"type": "integer"}, "name": {"type": "string", "description": "absent for unknown objects"},
        "version": {"type": "string"},
        "instances": {"type": "array", "items": {"type": "integer"}},
        "resources": {"type": "array", "items": _RESOURCE}}}}}}}
OPERATION = {
    "tags": ["LwM2M"], "summary": "A device's LwM2M registration and object tree",
    "description": "The registration of the device (endpoint name = ICCID) with every registered object "
                   "instance and the resources its definition names. 404 when the device is not registered.",
    "parameters": [{"name": "deviceId", "in": "path", "required": True, "schema": {"type": "string"}}],
    "responses": {"200": {"description": "OK", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/LwM2MRegistration"}}}},
        "404": {"description": "not registered"}, "409": {"description": "LwM2M disabled"}},
}


def routes() -> list[ApiRoute]:
    return [ApiRoute("GET", "/v1/integrate/devices/{deviceId}/registration", get_registration, READ,
                     operation=OPERATION, schemas=SCHEMAS)]
