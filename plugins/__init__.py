"""The features: each subpackage is one plugin and exposes `PLUGIN`."""
