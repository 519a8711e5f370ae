"""Config domain: plain Python rules over AgentConfig (no gRPC, no SQL)."""
