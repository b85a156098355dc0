"""Three processes sharing events through Redis: ``python -m examples.redis_nodes``."""
