"""Activation domain: plain Python rules (no gRPC, no SQL)."""
