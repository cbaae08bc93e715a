"""Sign-in, tokens and sessions, SMART scopes, break-the-glass, care relationships."""
