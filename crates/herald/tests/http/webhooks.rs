//! Webhook subscriptions.
