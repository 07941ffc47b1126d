"""The sandbox processor: test cards and chosen outcomes, settled like a real processor's."""
