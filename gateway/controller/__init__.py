"""The Device Controller for UDP and CoAP (docs/device-controller.md): :mod:`.requests` checks and
shapes requests, :mod:`.service` stores, schedules and sends them."""

from .requests import METHODS, PROTOCOLS, ControllerError, coap_target, describe, new_record, to_api, validate
from .service import REQUEST_FAILED, DeviceController

__all__ = ["METHODS", "PROTOCOLS", "REQUEST_FAILED", "ControllerError", "DeviceController", "coap_target",
           "describe", "new_record", "to_api", "validate"]
