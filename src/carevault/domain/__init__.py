"""Plain types and rules of the clinic group: no I/O, no framework imports."""
