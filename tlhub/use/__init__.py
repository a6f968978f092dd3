"""Using a trained model: load, predict, evaluate on a data source."""
