"""tlhub's offline 'confusion_matrix' metric as an evaluate module (the Hub copy needs the network)."""
from tlhub.metrics.classification import metric_class

Metric = metric_class("confusion_matrix")
