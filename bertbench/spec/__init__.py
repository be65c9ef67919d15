"""What a run is, as plain data: names, the run configuration, the CSV schema, derived figures. No torch."""
