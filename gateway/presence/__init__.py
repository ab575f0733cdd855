"""Presence: SIP SUBSCRIBE/NOTIFY documents and subscriptions (RFC 6665)."""
