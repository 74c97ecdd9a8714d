"""Data quality: Great Expectations suites as asset checks, and safe files for humans."""

# The pipeline spec imports this package's spec, which builds on the pipeline spec's base
# model: importing the pipeline spec first keeps that order whichever module is imported first.
import etl_platform.spec  # noqa: E402,F401
