"""ConfigurableResources: clients and credentials only."""
