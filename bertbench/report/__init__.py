"""Reading results back: load, charts, standings, the report, and comparing two runs."""
