"""The application layer: use cases that span contexts, called alike by every door.

The CLI, the REST routers and the file import parse their input, call one function here
inside a unit of work, and render its result; each rule (an order's identity, the
later-state rule, the loyalty effects of an order event) is therefore enforced once, and
the same input gives the same store whichever door it came through.
"""
