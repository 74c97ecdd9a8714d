"""Data quality: Great Expectations suites run as asset checks, in one SQL pass where they allow it."""
