"""stream-scorer: Kafka-native real-time scoring for card fraud and personalization."""

__version__ = "0.1.0"
