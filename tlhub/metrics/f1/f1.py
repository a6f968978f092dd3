"""tlhub's offline 'f1' metric as an evaluate module (the Hub copy needs the network)."""
from tlhub.metrics.classification import metric_class

Metric = metric_class("f1")
