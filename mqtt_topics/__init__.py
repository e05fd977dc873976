"""traceway mqtt_topics."""
