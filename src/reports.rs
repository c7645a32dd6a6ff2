//! Delivery status notifications (RFC 3464). Being written.
