"""ToffeePay server: payment sessions, hosted checkout and signed webhooks for games."""
