"""The Stripe processor: live payments through PaymentIntents, settled by Stripe's notifications too."""
