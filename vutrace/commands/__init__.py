"""One module per ``vutrace`` sub-command; each defines ``register(subparsers)``.

The command line finds them here by name, so adding a command means adding a module.
"""
