"""1NCE OS settings and agreements (1nce-os.json, ``/v1/settings/1nceos``, ``/v1/agreements/1nceos``).

The settings are feature switches of the customer, stored (``os_settings``) with who changed
them; every change is in the administration logs like any other. The gateway knows the settings
in :data:`SETTINGS`: turning a location setting on needs ``readAndAcceptedDisclaimer: true``
(1NCE's disclaimer about processing cell-tower data), as in 1NCE OS. The agreement route records
the first acceptance of the 1NCE OS terms (who, when); ``accepted: false`` answers 400, since the
agreements can only be accepted.
"""

from __future__ import annotations

import logging

from aiohttp import web

from inspector import os_state

from ...locator.settings import SETTINGS, state
from ..errors import bad_request
from ..routes import PURCHASE, READ, ApiRoute, body_of, gateway_of, json_response, params_of, principal_of
from ._common import page_count
from .admin_logs import CUSTOMER_ID

log = logging.getLogger("nce.api.settings")

AGREEMENT = "1NCE_OS_TERMS_AND_DPA"


async def list_settings(request: web.Request) -> web.Response:
    params = params_of(request)
    stored = await gateway_of(request).read(os_state.settings, gateway_of(request).store)
    german = params.get("language") == "de"
    items = [{"name": name, "state": state(stored, name), "description": de if german else en}
             for name, (_, _, en, de) in SETTINGS.items()]
    size, page = params["pageSize"], params["page"]
    return json_response({"page": page, "pageAmount": page_count(len(items), size),
                          "items": items[(page - 1) * size:page * size]})


async def patch_setting(request: web.Request) -> web.Response:
    name = params_of(request)["name"]
    body = body_of(request)
    if name not in SETTINGS:
        raise bad_request(f"name: unknown setting {name!r}; settings: {', '.join(SETTINGS)}", "name")
    if body["state"] == "ENABLED" and SETTINGS[name][1] and body.get("readAndAcceptedDisclaimer") is not True:
        raise bad_request(f"readAndAcceptedDisclaimer: enabling {name} needs the disclaimer read and accepted "
                          "(readAndAcceptedDisclaimer: true)", "readAndAcceptedDisclaimer")
    gateway = gateway_of(request)
    by = principal_of(request).username
    await gateway.committer.write(os_state.set_setting, gateway.store, name, body["state"], by)
    await gateway.locator.reload_settings()  # in force here at once; other processes follow it
    log.info("1NCE OS setting changed", extra={"event": "os_setting_changed", "setting": name,
                                               "state": body["state"], "by": by})
    return json_response({"customerId": CUSTOMER_ID, "name": name, "state": body["state"]})


async def accept_agreements(request: web.Request) -> web.Response:
    body = body_of(request) or {"accepted": True}
    if body.get("accepted") is not True:
        raise bad_request("accepted: the agreements can only be accepted (true)", "accepted")
    gateway = gateway_of(request)
    by = principal_of(request).username
    await gateway.committer.write(os_state.accept_agreement, gateway.store, AGREEMENT, by)
    log.info("1NCE OS agreements accepted", extra={"event": "os_agreements_accepted", "by": by})
    return web.Response(status=201)


def _patch_list(operation: dict) -> None:
    operation["description"] += (" nce-gateway: the settings " + ", ".join(SETTINGS) + "; `details` (credits) "
                                 "is never present: the gateway sells no credits.")


def _patch_setting(operation: dict) -> None:
    operation["description"] += (" nce-gateway: Owner and Admin (like the agreements: contractual choices); an unknown name answers 400; ENABLED for a location setting "
                                 "needs `readAndAcceptedDisclaimer: true` (else 400). Stored and in the "
                                 "administration logs.")


def _patch_agreement(operation: dict) -> None:
    operation["description"] += (" nce-gateway: the first acceptance is stored with who gave it (Owner and "
                                 "Admin); `accepted: false` answers 400.")


def routes() -> list[ApiRoute]:
    os_ = "1nce-os"
    return [
        ApiRoute("GET", "/v1/settings/1nceos", list_settings, READ, spec=os_, patch=_patch_list),
        ApiRoute("PATCH", "/v1/settings/1nceos/{name}", patch_setting, PURCHASE, spec=os_, patch=_patch_setting),
        ApiRoute("POST", "/v1/agreements/1nceos", accept_agreements, PURCHASE, spec=os_, patch=_patch_agreement),
    ]
