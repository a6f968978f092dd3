"""Text data sources; each module is imported only when its source loads."""
