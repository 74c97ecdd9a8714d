"""REST APIs as a source: connection options, HTTP with retries and auth, pagination."""
