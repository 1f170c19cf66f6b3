"""The perc command line; one module per command, no logic (logic lives in the library)."""
