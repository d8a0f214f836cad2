"""The only code that touches ctypes and bpf(2): attr structs, commands, errno mapping, fds.

Nothing here imports pydantic or construct.
"""
