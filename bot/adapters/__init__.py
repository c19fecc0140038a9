"""Platform adapters: one package or module per platform."""
