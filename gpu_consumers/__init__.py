"""GPU consumer groups: tier-weighted batches, diffusers pipelines, result events."""
