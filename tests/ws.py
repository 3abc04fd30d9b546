"""WebSocket test helpers."""

from __future__ import annotations

from channels.testing import WebsocketCommunicator


async def refusal_code(communicator: WebsocketCommunicator) -> int | None:
    """Connect and return the close code the consumer refused with (doce's consumers accept
    and then close, so browsers see the code), or None when the socket stayed open."""
    connected, code = await communicator.connect()
    if not connected:
        return code
    message = await communicator.receive_output(timeout=2)
    return message.get("code") if message["type"] == "websocket.close" else None
