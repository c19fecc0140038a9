"""The platform-neutral model. Nothing in this package performs I/O."""
