"""Data quality: Great Expectations suites as asset checks, and safe files for humans."""
