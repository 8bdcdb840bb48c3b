"""Debugging a running machine from outside: the GDB remote serial protocol stub.

gdbstub.py serves the protocol, target.py is the machine as a debugger sees
it (threads, stops, resumption), and the other modules do one job each.
"""
