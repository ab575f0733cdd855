"""visio-relais gateway: SIP B2BUA and SIP/H.323 interworking for public-service video kiosks."""
