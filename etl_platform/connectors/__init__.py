"""Sources and destinations. One module per kind; each registers itself by name."""
