"""armvisor: a multi-core ARMv8-A system (EL3 firmware, virt board, Unicorn cores)."""

__version__ = "0.1.0"
