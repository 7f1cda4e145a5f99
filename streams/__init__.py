"""Faust stream processors: split, batch, route tiers, materialize the job view."""
