"""datapilot: the command-line client of the DataPilot REST API."""
