"""doce's model gateway: agents reach model providers only through it.

`gateway.proxy.application` is an ASGI app mounted by `doce.asgi` under `/gw/` on the
gateway listener only (`DOCE_GATEWAY_PORT`, bound to the Docker bridge's gateway address
and loopback); the public listener answers 404 there. See `gateway.proxy` for the request
path and `gateway.metering` for the usage read from the streams.
"""
