"""freeze = \"auto\" and tlhub advise: measuring the data and backbone to plan phases."""
