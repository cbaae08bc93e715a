"""The console's own state: who is signed in to it, and each account's preferences."""
