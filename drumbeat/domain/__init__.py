"""Pure rules of Drumbeat (DESIGN.md): no I/O, imports only the standard library.

Time is always passed in (`now`), never read here.
"""
