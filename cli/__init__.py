"""The ``cnsvol`` command-line front end (argument parsing, formatting, exit codes)."""
