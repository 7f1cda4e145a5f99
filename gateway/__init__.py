"""HTTP submission gateway (Starlette)."""
