"""tlhub's offline 'precision' metric as an evaluate module (the Hub copy needs the network)."""
from tlhub.metrics.classification import metric_class

Metric = metric_class("precision")
