"""The read side: what the API and the pages show, as a caller may see it."""
