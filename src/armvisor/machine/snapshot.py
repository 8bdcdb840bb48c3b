"""Snapshots of a whole machine: what each part saves, and the file that holds them.

Conventions every stateful object follows (devices, firmware, cores, RAM,
the boards, the hypervisor):

- `save_state() -> dict` returns plain data only: None, bool, int (within
  64 bits, signed or not), float, str, bytes, and lists and dicts of those
  (dict keys are str). No objects, enums (save `.value`), tuples that must
  come back as tuples (they come back as lists), callables or file handles.
- `restore_state(state)` is called on an object freshly built from the same
  configuration (the same command line), never booted. It replaces every
  piece of guest-visible and scheduling state, keeps the wiring it was built
  with (callbacks, trace bus, clock), and emits no trace event and raises no
  interrupt line: the lines' levels are part of the saved state of whoever
  drives them, and the receiver restores its own view.
- A part saves what it owns and asks its parts for theirs: a board saves
  `{"ram": ..., "devices": ..., "cores": [...], ...}`; nothing reaches into
  another object's private fields.
- Restoring a state that does not fit (another shape of machine) raises
  ValueError with a sentence that says what differs.
"""
