"""What operators watch: Prometheus metrics, their exporter, and request ids in logs."""
