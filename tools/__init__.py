"""Tools: benchmark, validation and maintenance scripts (``python -m spikeedge.tools.NAME``)."""
