"""Media: the engine interface (engine.py) and the built-in RTP/RTCP relay behind it
(relay.py, ports.py, forwarding.py, player.py), RTP packets (rtp.py), G.711 prompts
(prompts.py). The codec catalogue's loader is gateway.model.codecs. Imports only
gateway.model."""
