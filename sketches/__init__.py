"""Pure statistics: column profiles, drift metrics, references. No Kafka, no Redis, no clock."""
