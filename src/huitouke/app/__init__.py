"""The application layer: use cases that span contexts, called by every door (CLI, REST)."""
