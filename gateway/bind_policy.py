"""Protected mode (as Redis has it): no anonymous access on a non-loopback address by default."""

from __future__ import annotations

import ipaddress

from gateway.settings import GatewaySettings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def anonymous_bind_refusal(settings: GatewaySettings) -> str:
    """Why the gateway must not start with these settings ('' if it may)."""
    if settings.datapilot_api_keys.get_secret_value() or settings.datapilot_allow_anonymous:
        return ""
    if is_loopback(settings.gateway_host):
        return ""
    return (
        f"refusing to serve anonymous access on {settings.gateway_host}: set DATAPILOT_API_KEYS "
        "(tenant:key,...) or, to allow it on purpose, DATAPILOT_ALLOW_ANONYMOUS=true"
    )
