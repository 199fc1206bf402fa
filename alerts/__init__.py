"""Rules, evaluation, the alert state machine and publishers."""
