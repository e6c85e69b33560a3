"""Transports: the only code that reads device traffic off sockets."""
