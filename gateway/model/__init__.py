"""The neutral call model: sides, call-control events, Q.850 causes, media descriptions.

Everything here is shared by the protocol packages (``sip``, ``h323``), the media
engines and the controller, and imports nothing else of the gateway: it is the bottom
layer (see docs/architecture.md).
"""
