"""Kafka in and out: decoding, validation, the processor core, runners, producer, simulator."""
