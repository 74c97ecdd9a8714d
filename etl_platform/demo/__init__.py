"""The demo pipelines' data and the demo servers' tables: sample material, not product logic."""
