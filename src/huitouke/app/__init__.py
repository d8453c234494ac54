"""Use cases every door (CLI, REST, console, connectors, scheduler) calls, each rule once."""
