// The "not found" page has nothing to load: the server said what is missing.
