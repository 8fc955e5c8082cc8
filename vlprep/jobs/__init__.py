"""Job files, manifests and the converters that produce them."""
