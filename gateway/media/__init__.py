"""Media: the engine interface (engine.py) and the built-in RTP/RTCP relay behind it
(relay.py, ports.py, forwarding.py, player.py), RTP packets (rtp.py), G.711 prompts
(prompts.py) and the codec catalogue loader (codecs.py). Imports only gateway.model."""
