"""Built-in job files (YAML) shipped inside the package."""
